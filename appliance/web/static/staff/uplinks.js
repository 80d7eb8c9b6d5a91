// The practice's internet lines (admins): each line's state in plain words, since when, round
// trip, loss, what the box probes and, when a probe fails, why and what to do; the last 24 hours
// as the box draws them. It follows the `uplinks` event and looks again every half minute (round
// trip and loss change without an event; the image gains a minute every minute).

import { api } from '/static/common/api.js';
import { h, clear } from '/static/common/dom.js';
import { t } from '/static/common/i18n.js';
import { liveEvents } from './live-events.js';
import { clockText, faultText, sinceText, stateText } from './uplink-texts.js';

const REFRESH_MS = 30000;
const TIMELINE = '/api/uplinks/timeline.svg';

export async function render(root, ctx) {
  const list = h('div', { class: 'uplink-list', 'data-test': 'uplink-list' });
  const loadError = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const image = h('img', {
    class: 'uplink-timeline', 'data-test': 'uplink-timeline', alt: t('ui.uplinks.timeline_alt'),
  });
  const timeline = h('section', { class: 'panel', 'aria-labelledby': 'uplinks-timeline', hidden: true },
    h('h2', { id: 'uplinks-timeline' }, t('ui.uplinks.timeline_heading')), image);
  const live = liveEvents({ onUplinks: (lines) => show(lines), onReconnected: () => load() });

  root.append(
    h('div', { class: 'view-head' },
      h('h1', { tabindex: '-1' }, t('ui.uplinks.title')), live.element),
    h('p', { class: 'muted' }, t('ui.uplinks.intro')),
    loadError, list, timeline);

  function show(lines) {
    clear(list);
    if (lines.length === 0) {
      list.append(h('p', { class: 'notice', 'data-test': 'uplinks-none' }, t('ui.uplinks.none_configured')));
      timeline.hidden = true;
      return;
    }
    list.append(...lines.map((line) => lineCard(line, ctx)));
    timeline.hidden = false;
    // a new address each time: the browser fetches the image afresh (the box sends no-store)
    image.src = `${TIMELINE}?at=${Date.now()}`;
  }

  async function load() {
    try {
      const answer = await api('/api/uplinks');
      loadError.hidden = true;
      show(answer.lines);
    } catch (error) {
      loadError.textContent = error.message;
      loadError.hidden = false;
    }
  }

  await load();
  live.connect();
  const refresher = setInterval(load, REFRESH_MS);
  return () => {
    clearInterval(refresher);
    live.close();
  };
}

/** One line: name, state and since when as the heading, then the facts, then the fault. */
function lineCard(line, ctx) {
  const none = t('ui.uplinks.no_value');
  const fact = (label, value, test) => [h('dt', {}, label), h('dd', { 'data-test': test }, value)];
  const fault = faultText(line);
  return h('section', { class: `panel uplink uplink-${line.state}`, 'data-test': 'uplink', 'data-state': line.state },
    h('h2', { class: 'uplink-head' },
      h('span', { class: 'uplink-name' }, line.name),
      h('span', { class: `uplink-state uplink-state-${line.state}`, 'data-test': 'uplink-state' }, stateText(line)),
      h('span', { class: 'uplink-since muted', 'data-test': 'uplink-since' }, sinceText(line, ctx.timezone))),
    h('dl', { class: 'facts' },
      fact(t('ui.uplinks.public_host'), `${line.public_host} (${line.public_address})`, 'uplink-host'),
      // a dead line's last round trips say nothing about it now
      fact(t('ui.uplinks.rtt'), line.rtt_ms === null || line.state === 'down' ? none
        : t('ui.uplinks.rtt_value', { ms: Math.round(line.rtt_ms) }), 'uplink-rtt'),
      fact(t('ui.uplinks.loss'), t('ui.uplinks.loss_value', { percent: Math.round(line.loss * 100) }), 'uplink-loss'),
      fact(t('ui.uplinks.target'), t(line.by_loopback ? 'ui.uplinks.target_loopback' : 'ui.uplinks.target_external',
        { target: line.target }), 'uplink-target'),
      fact(t('ui.uplinks.lan_address'), line.lan_address, 'uplink-lan'),
      fact(t('ui.uplinks.last_answer'), line.last_answer ? clockText(line.last_answer, ctx.timezone)
        : t('ui.uplinks.never'), 'uplink-last-answer')),
    fault ? h('div', { class: 'notice warn uplink-fault', 'data-test': 'uplink-fault' },
      h('strong', {}, `${t('ui.uplinks.fault')}: `), fault) : null);
}
