// The call's top bar: how the connection stands ("Verbunden mit …"), its quality (the worst
// peer's reading), the data used so far and the call's duration, updated every second.

import { h } from '/static/common/dom.js';
import { t, currentLanguage } from '/static/common/i18n.js';
import { formatBytes, formatBitrate } from './stats.js';

const LEVELS = { good: 0, ok: 1, poor: 2 };
const QUALITY_TEXT = { good: 'ui.call.quality_good', ok: 'ui.call.quality_ok', poor: 'ui.call.quality_poor' };
const QUALITY_HINT = {
  good: 'ui.call.quality_good_hint', ok: 'ui.call.quality_ok_hint', poor: 'ui.call.quality_poor_hint',
};
const TICK_MS = 1000;
/** How long "… über die andere Leitung" stays after the box said a line died. */
const LINE_NOTE_MS = 20000;

function locale() {
  return currentLanguage() === 'en' ? 'en-GB' : 'de-DE';
}

/**
 * The top bar for `call`. `onState(state)` hears the call's overall state for the view
 * ('connecting', 'connected' or 'reconnecting') each time the status is shown.
 */
export function callStatus({ call, isDoctor, onState }) {
  let startedAt = null;
  let ticker = null;
  const status = h('p', { class: 'call-status', role: 'status', 'data-test': 'call-status' }, t('ui.call.connecting'));
  const qualityText = h('span', { class: 'quality-text' }, t('ui.call.quality_unknown'));
  const qualityDetails = h('span', { class: 'quality-details', 'data-test': 'call-quality-details' });
  const qualityEl = h('p', { class: 'call-quality level-unknown', 'data-test': 'call-quality' },
    h('span', { class: 'quality-dot', 'aria-hidden': 'true' }), qualityText, qualityDetails);
  const dataUsed = h('p', { class: 'call-data', 'data-test': 'call-data' });
  // role=timer: its name is read (aria-label on a plain <p> is not), and it is never announced
  const timer = h('p', { class: 'call-timer', role: 'timer', 'aria-label': t('ui.call.duration') }, '00:00');

  /** Say how the connection stands, from the hub's socket and every peer's state. */
  function show() {
    const peers = [...call.peers.values()];
    let text;
    if (call.signaling.connected === 0 && peers.every((p) => p.state !== 'connected')) {
      text = t(isDoctor ? 'ui.call.box_unreachable' : 'ui.call.box_unreachable_patient');
    } else if (peers.length === 0) {
      text = isDoctor ? t('ui.call.waiting_for_patient') : t('ui.call.waiting_for_doctor');
    } else if (peers.some((p) => p.state === 'reconnecting')) {
      text = t(call.lineFailedRecently() ? 'ui.call.reconnecting_other_line' : 'ui.call.reconnecting');
    } else if (peers.some((p) => p.state === 'connecting')) {
      text = t('ui.call.connecting');
    } else {
      const list = peers.map((p) => p.remote.name).filter(Boolean).join(', ');
      // the box said a line died: say for a while that the call goes on over the other one
      text = t(call.lineFailedRecently(LINE_NOTE_MS) ? 'ui.call.connected_other_line'
        : 'ui.call.connected_with', { names: list });
    }
    // tick() asks every second: rewriting the same words would make screen readers repeat them
    if (status.textContent !== text) status.textContent = text;
    const reconnecting = peers.some((p) => p.state === 'reconnecting');
    onState(reconnecting ? 'reconnecting'
      : peers.some((p) => p.state === 'connected') ? 'connected' : 'connecting');
    // "Verbindung gut" next to "Verbindung unterbrochen" would contradict it: the last reading is
    // stale until the connection is back
    qualityEl.hidden = reconnecting;
  }

  /** Show the worst of the peers' latest quality readings. */
  function showQuality() {
    const readings = [...call.peers.values()].map((p) => p.lastQuality).filter(Boolean);
    if (readings.length === 0) return;
    const worst = readings.reduce((a, b) => (LEVELS[b.level] > LEVELS[a.level] ? b : a));
    qualityEl.className = `call-quality level-${worst.level}`;
    qualityEl.dataset.level = worst.level;
    qualityText.textContent = t(QUALITY_TEXT[worst.level]);
    const parts = [];
    if (worst.rttMs !== null) parts.push(t('ui.call.rtt', { ms: worst.rttMs }));
    parts.push(t('ui.call.loss', { percent: new Intl.NumberFormat(locale(), { maximumFractionDigits: 1 }).format(worst.loss * 100) }));
    parts.push(formatBitrate(worst.bitrate, locale()));
    if (worst.relay) parts.push(t('ui.call.relayed'));
    qualityDetails.textContent = parts.join(' · ');
    qualityEl.title = t(QUALITY_HINT[worst.level]);
  }

  function tick() {
    dataUsed.textContent = t('ui.call.data_used', { amount: formatBytes(call.bytes, locale()) });
    if (startedAt !== null) {
      const seconds = Math.floor((Date.now() - startedAt) / 1000);
      const hh = Math.floor(seconds / 3600);
      const mm = String(Math.floor((seconds % 3600) / 60)).padStart(2, '0');
      const ss = String(seconds % 60).padStart(2, '0');
      timer.textContent = hh ? `${hh}:${mm}:${ss}` : `${mm}:${ss}`;
    }
    show();
  }

  return {
    element: h('div', { class: 'call-top' }, status, qualityEl, dataUsed, timer),
    show,
    showQuality,
    /** A peer's connection changed to `state`: the clock starts with the first connection. */
    peerState(state) {
      if (state === 'connected' && startedAt === null) startedAt = Date.now();
      show();
    },
    /** Show the figures now and then every second. */
    start() {
      tick();
      ticker = setInterval(tick, TICK_MS);
    },
    destroy() {
      clearInterval(ticker);
    },
  };
}
