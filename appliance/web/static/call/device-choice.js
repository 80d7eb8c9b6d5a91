// The device check's choice of camera, microphone and (where the browser allows) loudspeaker,
// as drop-downs filled from the devices the browser lists.

import { h } from '/static/common/dom.js';
import { t } from '/static/common/i18n.js';
import { canChooseOutput } from './media.js';

/**
 * The drop-downs for `media`, filled by fill(). `choose(change)` gets each change the person
 * makes as a function that applies it (and returns a promise), to run and show the outcome.
 */
export function deviceChoice({ media, choose }) {
  const element = h('div', { class: 'check-devices' });

  async function fill() {
    const list = await media.devices();
    element.replaceChildren();
    const add = (id, label, devices, current, change) => {
      if (devices.length === 0) return;
      const select = h('select', { id, 'data-test': id },
        devices.map((d, i) => h('option', { value: d.deviceId, selected: d.deviceId === current }, d.label || `${label} ${i + 1}`)));
      select.addEventListener('change', () => choose(() => change(select.value)));
      element.append(h('div', { class: 'field' }, h('label', { for: id }, label), select));
    };
    add('check-camera-select', t('ui.check.camera'), list.video, media.videoDevice, (v) => media.setCamera(v));
    add('check-mic-select', t('ui.check.microphone'), list.audio, media.audioDevice, (v) => media.setMicrophone(v));
    if (canChooseOutput()) {
      add('check-output-select', t('ui.check.speaker'), list.output, media.outputDevice, (v) => media.setOutput(v));
    }
  }

  return { element, fill };
}
