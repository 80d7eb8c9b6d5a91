// The connection verdict of the device check in plain words: the same rules as the box's
// rtc/connection_verdict.py, with the thresholds the box sends along with its answer and the
// texts from its catalog (device_check.*), so page and box never disagree.

import { t, currentLanguage } from '/static/common/i18n.js';

const RANK = { good: 0, ok: 1, poor: 2 };
const FIGURES = ['download_kbps', 'upload_kbps', 'rtt_ms', 'loss_percent'];
const VERDICT = {
  good: 'device_check.verdict.good', ok: 'device_check.verdict.ok', poor: 'device_check.verdict.poor',
};
const REASON = {
  download_kbps: 'device_check.reason.download_kbps', upload_kbps: 'device_check.reason.upload_kbps',
  rtt_ms: 'device_check.reason.rtt_ms', loss_percent: 'device_check.reason.loss_percent',
};

/** The level of `value` against {good, ok, better}; bounds are inclusive. */
function levelOf(limit, value) {
  const sign = limit.better === 'higher' ? 1 : -1;
  if (sign * value >= sign * limit.good) return 'good';
  if (sign * value >= sign * limit.ok) return 'ok';
  return 'poor';
}

function number(value, decimals) {
  const digits = Number.isInteger(value) ? 0 : decimals;
  return new Intl.NumberFormat(currentLanguage() === 'en' ? 'en-GB' : 'de-DE', {
    minimumFractionDigits: digits, maximumFractionDigits: digits,
  }).format(value);
}

function join(phrases) {
  if (phrases.length < 2) return phrases.join('');
  return `${phrases.slice(0, -1).join(', ')} ${t('device_check.and')} ${phrases[phrases.length - 1]}`;
}

/**
 * {level, text, reasons} for the measured `figures` ({rtt_ms, loss_percent, download_kbps,
 * upload_kbps, relay_protocol}; null = not measured) against the box's `thresholds`.
 */
export function assess(figures, thresholds) {
  const measured = FIGURES.filter((name) => typeof figures[name] === 'number' && Number.isFinite(figures[name])
    && thresholds[name]);
  if (measured.length === 0) {
    return { level: 'poor', text: t('device_check.verdict.none'), reasons: ['no_connection'] };
  }
  const levels = new Map(measured.map((name) => [name, levelOf(thresholds[name], figures[name])]));
  if ((thresholds.tcp_relays || []).includes(figures.relay_protocol)) {
    levels.set('tcp_relay', thresholds.tcp_relay_level || 'ok');
  }
  const level = [...levels.values()].reduce((a, b) => (RANK[b] > RANK[a] ? b : a), 'good');
  if (level === 'good') return { level, text: t(VERDICT.good), reasons: [] };
  const reasons = [...levels.entries()]
    .filter(([, value]) => (level === 'poor' ? value === 'poor' : value !== 'good'))
    .map(([name]) => name);
  const phrases = reasons.map((name) => {
    if (name === 'tcp_relay') return t('device_check.reason.tcp_relay');
    const limit = thresholds[name];
    // a poor figure is told what "usable" needs, an ok figure what "good" needs
    const needed = level === 'poor' ? limit.ok : limit.good;
    const decimals = name === 'loss_percent' ? 1 : 0;
    return t(REASON[name], { value: number(figures[name], decimals), needed: number(needed, decimals) });
  });
  return { level, text: t(VERDICT[level], { reasons: join(phrases) }), reasons };
}
