// The device check's connection test: the real thing against the box's echo peer
// (echo-test.js), with its steps on the list line, the verdict in plain words (verdict.js),
// the figures, a wait for a free slot when the box is busy, and "try again".

import { h } from '/static/common/dom.js';
import { t, currentLanguage } from '/static/common/i18n.js';
import { echoTest, EchoBusyError, EchoUnavailableError } from './echo-test.js';
import { assess } from './verdict.js';
import { register } from './debug.js';
import { checkItem } from './check-item.js';

const STEP_TEXT = {
  connecting: 'ui.check.step_connecting', rtt: 'ui.check.step_rtt',
  download: 'ui.check.step_download', upload: 'ui.check.step_upload',
};
const LEVEL_TEXT = { good: 'ui.check.level_good', ok: 'ui.check.level_ok', poor: 'ui.check.level_poor' };

/**
 * The test against `url` (the device-check route) with `headers`, `media` and `iceServers`,
 * started by run(); `result` holds the latest figures and verdict.
 */
export function connectionTest({ url, headers, media, iceServers }) {
  let destroyed = false;
  let latest = null;
  let controller = null;
  let retryTimer = null;
  let countdown = null;
  const item = checkItem('check-connection', t('ui.check.connection'));
  const verdict = h('p', { class: 'check-verdict', role: 'status', 'data-test': 'check-verdict' });
  const details = h('p', { class: 'check-details muted', 'data-test': 'check-details' });
  const retry = h('button', { type: 'button', hidden: true, 'data-test': 'check-retry' }, t('ui.check.retry'));

  async function run() {
    clearTimeout(retryTimer);
    clearInterval(countdown);
    retry.hidden = true;
    if (controller) controller.abort();
    controller = new AbortController();
    const mine = controller;
    item.set('pending', t('ui.check.testing'));
    verdict.textContent = '';
    verdict.dataset.level = '';
    details.textContent = '';
    try {
      const result = await echoTest({
        url, headers, media, iceServers, signal: mine.signal,
        onStep: (step) => { if (!destroyed) item.set('pending', t(STEP_TEXT[step] || 'ui.check.testing')); },
      });
      if (destroyed || mine !== controller) return;
      const judged = assess(result.figures, result.thresholds);
      latest = { ...result, verdict: judged };
      register('deviceCheck', latest);
      item.set(judged.level === 'good' ? 'good' : judged.level === 'ok' ? 'warn' : 'bad', t(LEVEL_TEXT[judged.level]));
      verdict.textContent = judged.text;
      verdict.dataset.level = judged.level;
      details.textContent = describe(result.figures);
      retry.hidden = false;
    } catch (error) {
      if (destroyed || mine !== controller) return;
      if (error instanceof EchoBusyError) {
        // a patient who must wait for a slot sees so, and the page asks again by itself
        let left = error.retryAfter;
        item.set('waiting', t('ui.check.busy_short'));
        const show = () => { verdict.textContent = t('ui.check.busy', { position: error.position, seconds: left }); };
        verdict.dataset.level = 'waiting';
        show();
        countdown = setInterval(() => { left = Math.max(0, left - 1); show(); }, 1000);
        retryTimer = setTimeout(run, error.retryAfter * 1000);
      } else if (error instanceof EchoUnavailableError) {
        item.set('skipped', t('ui.check.test_unavailable'));
      } else {
        item.set('bad', t('ui.check.test_failed'));
        verdict.textContent = t('device_check.verdict.none');
        verdict.dataset.level = 'poor';
        retry.hidden = false;
      }
    }
  }

  retry.addEventListener('click', run);

  return {
    item: item.el,
    elements: [verdict, details],
    retry,
    get result() { return latest; },
    run,
    /** No test on this page (no device-check route): the line says so. */
    skip() {
      item.set('skipped', t('ui.check.test_unavailable'));
    },
    destroy() {
      destroyed = true;
      if (controller) controller.abort();
      clearTimeout(retryTimer);
      clearInterval(countdown);
    },
  };
}

function describe(figures) {
  const n = (value) => new Intl.NumberFormat(currentLanguage() === 'en' ? 'en-GB' : 'de-DE',
    { maximumFractionDigits: 1 }).format(value);
  const parts = [];
  if (figures.download_kbps !== null) parts.push(t('ui.check.fig_download', { kbps: n(figures.download_kbps) }));
  if (figures.upload_kbps !== null) parts.push(t('ui.check.fig_upload', { kbps: n(figures.upload_kbps) }));
  if (figures.rtt_ms !== null) parts.push(t('ui.check.fig_rtt', { ms: n(figures.rtt_ms) }));
  if (figures.loss_percent !== null) parts.push(t('ui.check.fig_loss', { percent: n(figures.loss_percent) }));
  return parts.join(' · ');
}
