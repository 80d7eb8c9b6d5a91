// The call's own small dialogs: a yes/no question and the choice of camera, microphone and
// loudspeaker during the call (the staff site's dialogs are not on the public site).

import { h } from '/static/common/dom.js';
import { t } from '/static/common/i18n.js';
import { canChooseOutput } from './media.js';

/** A small modal question inside the call. Resolves true for yes, false for no or Escape. */
export function confirm(parent, { title, text, confirm: yes }) {
  return new Promise((resolve) => {
    const ok = h('button', { type: 'button', class: 'danger primary', 'data-test': 'confirm-yes' }, yes);
    const no = h('button', { type: 'button', 'data-test': 'confirm-no' }, t('ui.action.cancel_dialog'));
    const dialog = h('dialog', { class: 'call-dialog', 'aria-labelledby': 'call-dialog-title' },
      h('h2', { id: 'call-dialog-title' }, title), h('p', {}, text), h('div', { class: 'actions' }, ok, no));
    const done = (value) => {
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    ok.addEventListener('click', () => done(true));
    no.addEventListener('click', () => done(false));
    dialog.addEventListener('cancel', (event) => { event.preventDefault(); done(false); });
    parent.append(dialog);
    dialog.showModal();
    no.focus();
  });
}

/** Camera, microphone and loudspeaker during the call. */
export async function openDevices(parent, media) {
  const list = await media.devices();
  const select = (id, label, devices, current, onChange) => {
    if (devices.length === 0) return null;
    const el = h('select', { id }, devices.map((d, i) => h('option', { value: d.deviceId, selected: d.deviceId === current },
      d.label || `${label} ${i + 1}`)));
    el.addEventListener('change', () => onChange(el.value));
    return h('div', { class: 'field' }, h('label', { for: id }, label), el);
  };
  const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const guard = (fn) => async (value) => {
    error.hidden = true;
    try {
      await fn(value);
    } catch {
      error.textContent = t('ui.check.device_failed');
      error.hidden = false;
    }
  };
  const close = h('button', { type: 'button', class: 'primary' }, t('ui.action.close'));
  const dialog = h('dialog', { class: 'call-dialog', 'aria-labelledby': 'devices-title', 'data-test': 'devices-dialog' },
    h('h2', { id: 'devices-title' }, t('ui.call.devices')),
    select('call-camera', t('ui.check.camera'), list.video, media.videoDevice, guard((v) => media.setCamera(v))),
    select('call-mic', t('ui.check.microphone'), list.audio, media.audioDevice, guard((v) => media.setMicrophone(v))),
    canChooseOutput() ? select('call-output', t('ui.check.speaker'), list.output, media.outputDevice, guard((v) => media.setOutput(v))) : null,
    error, h('div', { class: 'actions' }, close));
  close.addEventListener('click', () => { dialog.close(); dialog.remove(); });
  dialog.addEventListener('close', () => dialog.remove());
  parent.append(dialog);
  dialog.showModal();
}
