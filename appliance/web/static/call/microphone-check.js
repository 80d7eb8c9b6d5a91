// The device check's microphone: a level meter fed ten times a second, and the finding that
// the microphone hears something once the person spoke.

import { h } from '/static/common/dom.js';
import { t } from '/static/common/i18n.js';
import { sharedAudioContext } from './audio.js';
import { checkItem } from './check-item.js';

const METER_MS = 100;
/** RMS level at which the microphone clearly hears something (speech is ~0.05–0.3). */
const HEARD = 0.02;

/** The list line and the meter for `media`'s microphone; start() after the microphone changed. */
export function microphoneCheck(media) {
  let heard = false;
  let timer = null;
  let source = null;
  const item = checkItem('check-microphone', t('ui.check.microphone'));
  const meter = h('meter', { min: 0, max: 1, low: 0.02, high: 0.6, optimum: 0.3, value: 0, 'data-test': 'mic-level',
    'aria-label': t('ui.check.mic_level') });

  function start() {
    clearInterval(timer);
    if (source) source.disconnect();
    source = null;
    if (!media.audio) {
      item.set('bad', t('ui.check.mic_missing'));
      return;
    }
    item.set(heard ? 'good' : 'pending', heard ? t('ui.check.mic_ok') : t('ui.check.mic_speak'));
    const ctx = sharedAudioContext();
    if (!ctx) return;
    source = ctx.createMediaStreamSource(new MediaStream([media.audio]));
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 1024;
    source.connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    timer = setInterval(() => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) sum += s * s;
      const rms = Math.sqrt(sum / samples.length);
      meter.value = Math.min(1, rms * 3);
      if (rms >= HEARD && !heard && media.micOn) {
        heard = true;
        item.set('good', t('ui.check.mic_ok'));
      }
    }, METER_MS);
  }

  return {
    item: item.el,
    meter: h('div', { class: 'check-meter' }, h('span', { class: 'check-meter-label' }, t('ui.check.speak')), meter),
    start,
    destroy() {
      clearInterval(timer);
      if (source) source.disconnect();
    },
  };
}
