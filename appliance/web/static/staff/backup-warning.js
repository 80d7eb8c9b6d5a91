// The dashboard's warning when the practice's backup needs attention: a target failed, has no
// copy yet or only an old one, a verification found a fault, or the box does not know the
// password of its backups yet. Every member of the staff sees it; admins get a link to the page
// "Datensicherung". It follows the `backup` event of the live connection (show(warnings)).

import { h, clear } from '/static/common/dom.js';
import { t } from '/static/common/i18n.js';

/** The banner; `ctx` says whether the person is an admin. */
export function backupWarning(ctx) {
  const list = h('ul', { class: 'backup-warning-list', 'data-test': 'backup-warning-text' });
  const element = h('div', {
    class: 'notice warn backup-warning', id: 'backup-warning', 'data-test': 'backup-warning',
    role: 'alert', hidden: true,
  }, h('strong', {}, t('ui.backup.warning.title')), list);
  let details = null;

  function show(warnings) {
    clear(list);
    if (!warnings || warnings.length === 0) {
      element.hidden = true;
      return;
    }
    list.append(...warnings.map((warning) => h('li', {}, warning)));
    if (ctx.isAdmin && !details) {
      details = h('a', { href: '#/datensicherung', class: 'backup-warning-link' }, t('ui.backup.warning.details'));
      element.append(details);
    }
    element.hidden = false;
  }

  return {
    element,
    show,
    destroy() { element.remove(); },
  };
}
