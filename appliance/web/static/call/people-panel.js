// The doctor's list of who belongs to this appointment's room (O3): the patient and guests,
// whether they wait or are away, and the buttons that let one in or take one out of the call.

import { h } from '/static/common/dom.js';
import { t } from '/static/common/i18n.js';
import { confirm } from './call-dialogs.js';

/** The list for `call`, kept in step with the room; `view` holds the removal's question. */
export function peoplePanel({ call, view }) {
  const list = h('ul', { class: 'call-people', 'data-test': 'call-people' });

  function show() {
    list.replaceChildren();
    for (const p of call.others) {
      const action = p.admitted
        ? h('button', { type: 'button', class: 'small', 'data-test': 'remove-participant',
          onclick: async () => {
            const ok = await confirm(view, { title: t('ui.call.remove_title', { name: p.name }),
              text: t('ui.call.remove_text'), confirm: t('ui.call.remove') });
            if (ok) call.remove(p.id);
          } }, t('ui.call.remove'))
        : h('button', { type: 'button', class: 'small primary', 'data-test': 'admit-participant',
          disabled: !p.present, onclick: () => call.admit(p.id) }, t('ui.call.admit', { name: p.name }));
      const status = p.admitted ? (p.present ? '' : t('ui.call.p_away')) : t('ui.call.p_waiting');
      list.append(h('li', { 'data-participant': p.id },
        h('span', { class: 'person-name' }, p.name), status ? h('span', { class: 'person-state' }, ` ${status}`) : null, action));
    }
  }

  call.addEventListener('room', show);
  show();

  return {
    elements: [h('h2', {}, t('ui.call.people')), list],
    destroy() {
      call.removeEventListener('room', show);
    },
  };
}
