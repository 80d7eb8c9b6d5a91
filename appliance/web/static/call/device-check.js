// The device check before the call (R13), for patients and practice PCs alike: camera
// preview and resolution (≥ 640×480), microphone level, loudspeaker test tone, device choice,
// and the real connection test against the box's echo peer with a verdict in plain words.

import { h } from '/static/common/dom.js';
import { t, currentLanguage } from '/static/common/i18n.js';
import { canChooseOutput } from './media.js';
import { echoTest, EchoBusyError, EchoUnavailableError } from './echo-test.js';
import { assess } from './verdict.js';
import { register } from './debug.js';

const MIN_WIDTH = 640;
const MIN_HEIGHT = 480;
const METER_MS = 100;
/** RMS level at which the microphone clearly hears something (speech is ~0.05–0.3). */
const HEARD = 0.02;

let audioContext = null;
/** One AudioContext per page (browsers limit them); resumed on the person's click. */
export function sharedAudioContext() {
  const Ctor = window.AudioContext || window.webkitAudioContext;
  if (!Ctor) return null;
  if (!audioContext) audioContext = new Ctor();
  if (audioContext.state === 'suspended') audioContext.resume().catch(() => {});
  return audioContext;
}

function item(test, label) {
  const value = h('span', { class: 'check-value' });
  const el = h('li', { class: 'check-item pending', 'data-test': test }, h('span', { class: 'check-label' }, label), value);
  return {
    el,
    set(state, text) {
      el.className = `check-item ${state}`;
      el.dataset.state = state;
      value.textContent = text;
    },
  };
}

/**
 * Render the check into `root`. Options: `media` (LocalMedia), `url` (device-check route),
 * `headers` (e.g. CSRF), `iceServers`, `doneLabel`, `onDone()`, `intro` (text above).
 * Returns {destroy(), result} where `result` holds the latest figures and verdict.
 */
export function renderDeviceCheck(root, { media, url, headers = {}, iceServers = [], doneLabel, onDone, intro }) {
  const state = { destroyed: false, result: null, heard: false };
  const preview = h('video', { class: 'mirror', autoplay: true, playsinline: true, 'data-test': 'check-preview' });
  preview.muted = true;
  const cameraItem = item('check-camera', t('ui.check.camera'));
  const micItem = item('check-microphone', t('ui.check.microphone'));
  const netItem = item('check-connection', t('ui.check.connection'));
  const meter = h('meter', { min: 0, max: 1, low: 0.02, high: 0.6, optimum: 0.3, value: 0, 'data-test': 'mic-level',
    'aria-label': t('ui.check.mic_level') });
  const selects = h('div', { class: 'check-devices' });
  const tone = h('button', { type: 'button', 'data-test': 'check-tone' }, t('ui.check.play_tone'));
  const verdict = h('p', { class: 'check-verdict', role: 'status', 'data-test': 'check-verdict' });
  const details = h('p', { class: 'check-details muted', 'data-test': 'check-details' });
  const retry = h('button', { type: 'button', hidden: true, 'data-test': 'check-retry' }, t('ui.check.retry'));
  const done = h('button', { type: 'button', class: 'primary big-button', 'data-test': 'check-done' }, doneLabel || t('ui.check.done'));
  const problem = h('p', { class: 'form-error', role: 'alert', hidden: true, 'data-test': 'check-problem' });

  const section = h('section', { class: 'device-check', 'data-test': 'device-check', 'aria-labelledby': 'check-title' },
    h('h2', { id: 'check-title', tabindex: '-1' }, t('ui.check.title')),
    intro ? h('p', {}, intro) : null,
    h('div', { class: 'check-grid' },
      h('div', { class: 'check-preview' }, preview),
      h('div', { class: 'check-panel' },
        h('ul', { class: 'check-list' }, cameraItem.el, micItem.el, netItem.el),
        h('div', { class: 'check-meter' }, h('span', { class: 'check-meter-label' }, t('ui.check.speak')), meter),
        selects,
        h('div', { class: 'check-tone' }, tone, h('span', { class: 'muted' }, t('ui.check.tone_hint'))),
        verdict, details, problem)),
    h('div', { class: 'actions check-actions' }, done, retry));
  root.append(section);

  // --- camera and microphone ------------------------------------------------------------------
  async function startMedia() {
    await media.start();
    problem.hidden = true;
    if (media.error && !media.camera) {
      problem.textContent = media.error.name === 'NotAllowedError' ? t('ui.check.blocked') : t('ui.check.no_camera');
      problem.hidden = false;
    }
    showDevices();
    showCamera();
    meterOn();
    await fillSelects();
  }

  function showDevices() {
    preview.srcObject = media.camera ? new MediaStream([media.camera]) : null;
  }

  function showCamera() {
    if (!media.camera) {
      cameraItem.set('bad', t('ui.check.camera_missing'));
      return;
    }
    const { width = 0, height = 0 } = media.camera.getSettings();
    const text = t('ui.check.resolution', { width, height });
    // R13: the practice equipment needs at least 640×480 (either orientation on a phone)
    const big = Math.max(width, height) >= MIN_WIDTH && Math.min(width, height) >= MIN_HEIGHT;
    cameraItem.set(big ? 'good' : 'warn', big ? text : `${text} – ${t('ui.check.resolution_low')}`);
    cameraItem.el.dataset.width = String(width);
    cameraItem.el.dataset.height = String(height);
  }

  let meterTimer = null;
  let source = null;
  function meterOn() {
    clearInterval(meterTimer);
    if (source) source.disconnect();
    source = null;
    if (!media.audio) {
      micItem.set('bad', t('ui.check.mic_missing'));
      return;
    }
    micItem.set(state.heard ? 'good' : 'pending', state.heard ? t('ui.check.mic_ok') : t('ui.check.mic_speak'));
    const ctx = sharedAudioContext();
    if (!ctx) return;
    source = ctx.createMediaStreamSource(new MediaStream([media.audio]));
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 1024;
    source.connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    meterTimer = setInterval(() => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) sum += s * s;
      const rms = Math.sqrt(sum / samples.length);
      meter.value = Math.min(1, rms * 3);
      if (rms >= HEARD && !state.heard && media.micOn) {
        state.heard = true;
        micItem.set('good', t('ui.check.mic_ok'));
      }
    }, METER_MS);
  }

  async function fillSelects() {
    const list = await media.devices();
    selects.replaceChildren();
    const add = (id, label, devices, current, change) => {
      if (devices.length === 0) return;
      const select = h('select', { id, 'data-test': id },
        devices.map((d, i) => h('option', { value: d.deviceId, selected: d.deviceId === current }, d.label || `${label} ${i + 1}`)));
      select.addEventListener('change', async () => {
        problem.hidden = true;
        try {
          await change(select.value);
          showDevices();
          showCamera();
          meterOn();
        } catch {
          problem.textContent = t('ui.check.device_failed');
          problem.hidden = false;
        }
      });
      selects.append(h('div', { class: 'field' }, h('label', { for: id }, label), select));
    };
    add('check-camera-select', t('ui.check.camera'), list.video, media.videoDevice, (v) => media.setCamera(v));
    add('check-mic-select', t('ui.check.microphone'), list.audio, media.audioDevice, (v) => media.setMicrophone(v));
    if (canChooseOutput()) {
      add('check-output-select', t('ui.check.speaker'), list.output, media.outputDevice, (v) => media.setOutput(v));
    }
  }

  // --- loudspeaker: a short two-tone chime made right here (no audio file) ------------------------
  tone.addEventListener('click', async () => {
    const ctx = sharedAudioContext();
    if (!ctx) return;
    if (media.outputDevice && typeof ctx.setSinkId === 'function') {
      await ctx.setSinkId(media.outputDevice).catch(() => {});
    }
    chime(ctx);
  });

  // --- the connection test ----------------------------------------------------------------------
  let controller = null;
  let retryTimer = null;
  let countdown = null;
  async function runTest() {
    clearTimeout(retryTimer);
    clearInterval(countdown);
    retry.hidden = true;
    if (controller) controller.abort();
    controller = new AbortController();
    const mine = controller;
    netItem.set('pending', t('ui.check.testing'));
    verdict.textContent = '';
    verdict.dataset.level = '';
    details.textContent = '';
    try {
      const result = await echoTest({
        url, headers, media, iceServers, signal: mine.signal,
        onStep: (step) => { if (!state.destroyed) netItem.set('pending', t(STEP_TEXT[step] || 'ui.check.testing')); },
      });
      if (state.destroyed || mine !== controller) return;
      const judged = assess(result.figures, result.thresholds);
      state.result = { ...result, verdict: judged };
      register('deviceCheck', state.result);
      netItem.set(judged.level === 'good' ? 'good' : judged.level === 'ok' ? 'warn' : 'bad', t(LEVEL_TEXT[judged.level]));
      verdict.textContent = judged.text;
      verdict.dataset.level = judged.level;
      details.textContent = describe(result.figures);
      retry.hidden = false;
    } catch (error) {
      if (state.destroyed || mine !== controller) return;
      if (error instanceof EchoBusyError) {
        // a patient who must wait for a slot sees so, and the page asks again by itself
        let left = error.retryAfter;
        netItem.set('waiting', t('ui.check.busy_short'));
        const show = () => { verdict.textContent = t('ui.check.busy', { position: error.position, seconds: left }); };
        verdict.dataset.level = 'waiting';
        show();
        countdown = setInterval(() => { left = Math.max(0, left - 1); show(); }, 1000);
        retryTimer = setTimeout(runTest, error.retryAfter * 1000);
      } else if (error instanceof EchoUnavailableError) {
        netItem.set('skipped', t('ui.check.test_unavailable'));
      } else {
        netItem.set('bad', t('ui.check.test_failed'));
        verdict.textContent = t('device_check.verdict.none');
        verdict.dataset.level = 'poor';
        retry.hidden = false;
      }
    }
  }

  retry.addEventListener('click', runTest);
  done.addEventListener('click', () => onDone(state.result));

  (async () => {
    await startMedia();
    if (!state.destroyed && url) runTest();
    else if (!url) netItem.set('skipped', t('ui.check.test_unavailable'));
  })();

  return {
    get result() { return state.result; },
    focus() { section.querySelector('h2').focus(); },
    destroy() {
      state.destroyed = true;
      if (controller) controller.abort();
      clearTimeout(retryTimer);
      clearInterval(countdown);
      clearInterval(meterTimer);
      if (source) source.disconnect();
      preview.srcObject = null;
      section.remove();
    },
  };
}

const STEP_TEXT = {
  connecting: 'ui.check.step_connecting', rtt: 'ui.check.step_rtt',
  download: 'ui.check.step_download', upload: 'ui.check.step_upload',
};
const LEVEL_TEXT = { good: 'ui.check.level_good', ok: 'ui.check.level_ok', poor: 'ui.check.level_poor' };

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

/** A soft two-tone chime (E5, then A5) from oscillators: for the test and for alerts. */
export function chime(ctx, { volume = 0.2 } = {}) {
  const now = ctx.currentTime;
  [[659.25, 0], [880, 0.18]].forEach(([frequency, offset]) => {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = 'sine';
    osc.frequency.value = frequency;
    gain.gain.setValueAtTime(0.0001, now + offset);
    gain.gain.exponentialRampToValueAtTime(volume, now + offset + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + offset + 0.6);
    osc.connect(gain).connect(ctx.destination);
    osc.start(now + offset);
    osc.stop(now + offset + 0.65);
  });
}
