// The dashboard's warning when an internet line of the practice is down: which line, since
// when, and whether video consultations still reach patients over another one. It follows the
// `uplinks` event of the live connection (show(lines)), without a reload.

import { h, clear } from '/static/common/dom.js';
import { t } from '/static/common/i18n.js';
import { clockText, quotedNames } from './uplink-texts.js';

/** The banner; `ctx` gives the practice's time zone and whether the person is an admin. */
export function uplinkWarning(ctx) {
  const text = h('span', { 'data-test': 'uplink-warning-text' });
  const element = h('p', {
    class: 'notice danger uplink-warning', id: 'uplink-warning', 'data-test': 'uplink-warning',
    role: 'alert', hidden: true,
  }, text);
  let details = null;

  function show(lines) {
    const down = (lines || []).filter((line) => line.state === 'down');
    if (down.length === 0) {
      element.hidden = true;
      clear(text);
      return;
    }
    const working = lines.filter((line) => line.state === 'up' || line.state === 'degraded');
    const sentences = down.map((line) => (line.since
      ? t('ui.uplinks.warning.down', { name: line.name, time: clockText(line.since, ctx.timezone) })
      : t('ui.uplinks.warning.down_no_time', { name: line.name })));
    sentences.push(working.length ? t('ui.uplinks.warning.others', { names: quotedNames(working) })
      : t('ui.uplinks.warning.none_left'));
    text.textContent = sentences.join(' ');
    element.dataset.left = String(working.length);
    if (ctx.isAdmin && !details) {
      details = h('a', { href: '#/leitungen', class: 'uplink-warning-link' }, t('ui.uplinks.warning.details'));
      element.append(' ', details);
    }
    element.hidden = false;
  }

  return {
    element,
    show,
    destroy() { element.remove(); },
  };
}
