// The call's toolbar: microphone, camera, screen sharing (doctor), data saving, chat (phones),
// devices, full screen and end or leave. Each button drives the LocalMedia or the Call; the
// view shows the media's state on them (showFlags).

import { h } from '/static/common/dom.js';
import { t } from '/static/common/i18n.js';
import { confirm, openDevices } from './call-dialogs.js';

/** A big call button; its label is a span of its own, so a badge can sit beside it. */
export function callButton(label, props = {}) {
  return h('button', { type: 'button', class: 'call-button', ...props }, h('span', { class: 'call-button-label' }, label));
}

function setLabel(el, text) {
  el.querySelector('.call-button-label').textContent = text;
}

/**
 * The toolbar. `view` is the call's element: it goes full screen, holds the dialogs and
 * carries the chat panel's open state. `onCameraFailed()` hears a camera that would not
 * switch, `onChatOpened()` that the chat panel came into sight; `onEnd()` (doctor) and
 * `onLeave()` (patient, guest) come after the person confirmed.
 */
export function callControls({ call, media, isDoctor, view, onCameraFailed, onChatOpened, onEnd, onLeave }) {
  // mic, camera and screen say what a tap does ("Kamera einschalten"); a changing label and
  // aria-pressed together would be read as a double negation, so these show their state by look
  const micButton = callButton(t('ui.call.mic_off'), { 'data-test': 'toggle-mic' });
  const camButton = callButton(t('ui.call.camera_off'), { 'data-test': 'toggle-camera' });
  const screenButton = isDoctor && navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia
    ? callButton(t('ui.call.screen_share'), { 'data-test': 'toggle-screen' }) : null;
  const savingButton = callButton(t('ui.call.saving'), { 'data-test': 'toggle-saving', 'aria-pressed': 'false' });
  const chatButton = callButton(t('ui.call.chat'), { 'data-test': 'toggle-chat', 'aria-expanded': 'false', class: 'call-button chat-toggle' });
  const unreadBadge = h('span', { class: 'unread', hidden: true });
  chatButton.append(unreadBadge);
  const devicesButton = callButton(t('ui.call.devices'), { 'data-test': 'open-devices' });
  const fullButton = document.fullscreenEnabled
    ? callButton(t('ui.call.fullscreen'), { 'data-test': 'toggle-fullscreen' }) : null;
  const endButton = callButton(isDoctor ? t('ui.call.end') : t('ui.call.leave'),
    { class: 'call-button end', 'data-test': isDoctor ? 'end-call' : 'leave-call' });
  const element = h('div', { class: 'call-controls', role: 'toolbar', 'aria-label': t('ui.call.controls') },
    micButton, camButton, screenButton, savingButton, chatButton, devicesButton, fullButton, endButton);

  micButton.addEventListener('click', () => media.setMicOn(!media.micOn));
  camButton.addEventListener('click', async () => {
    camButton.disabled = true;
    try {
      await media.setCameraOn(!media.cameraOn);
    } catch {
      onCameraFailed();
    } finally {
      camButton.disabled = false;
    }
  });
  if (screenButton) {
    screenButton.addEventListener('click', async () => {
      if (media.screen) {
        media.stopScreen();
        return;
      }
      try {
        await media.shareScreen();
      } catch {
        // the doctor cancelled the browser's picker: nothing to say
      }
    });
  }
  savingButton.addEventListener('click', () => call.setSaving(!media.saving));
  chatButton.addEventListener('click', () => {
    const open = !view.classList.contains('chat-open');
    view.classList.toggle('chat-open', open);
    chatButton.setAttribute('aria-expanded', String(open));
    if (open) onChatOpened();
  });
  devicesButton.addEventListener('click', () => openDevices(view, media));
  if (fullButton) {
    fullButton.addEventListener('click', () => {
      if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
      else view.requestFullscreen().catch(() => {});
    });
  }
  const onFullscreen = () => {
    if (fullButton) setLabel(fullButton, document.fullscreenElement ? t('ui.call.fullscreen_exit') : t('ui.call.fullscreen'));
  };
  document.addEventListener('fullscreenchange', onFullscreen);
  endButton.addEventListener('click', async () => {
    const ok = await confirm(view, isDoctor
      ? { title: t('ui.call.end_title'), text: t('ui.call.end_text'), confirm: t('ui.call.end_confirm') }
      : { title: t('ui.call.leave_title'), text: t('ui.call.leave_text'), confirm: t('ui.call.leave_confirm') });
    if (!ok) return;
    endButton.disabled = true;
    if (isDoctor) onEnd();
    else onLeave();
  });

  return {
    element,
    /** Show the media's state (`media.flags()`) on the buttons. */
    showFlags(flags) {
      micButton.dataset.highlight = String(!flags.mic);
      setLabel(micButton, flags.mic ? t('ui.call.mic_off') : t('ui.call.mic_on'));
      micButton.disabled = !flags.hasAudio;
      camButton.dataset.highlight = String(!media.cameraOn);
      setLabel(camButton, media.cameraOn ? t('ui.call.camera_off') : t('ui.call.camera_on'));
      if (screenButton) {
        screenButton.dataset.highlight = String(flags.screen);
        setLabel(screenButton, flags.screen ? t('ui.call.screen_stop') : t('ui.call.screen_share'));
      }
      savingButton.setAttribute('aria-pressed', String(flags.saving));
    },
    /** The count of chat messages that came in while the panel was out of sight. */
    showUnread(count) {
      unreadBadge.textContent = String(count);
      unreadBadge.hidden = count === 0;
    },
    /** Put the keyboard on the first control that takes it (the microphone's, else the camera's). */
    focus() {
      (micButton.disabled ? camButton : micButton).focus();
    },
    destroy() {
      document.removeEventListener('fullscreenchange', onFullscreen);
      if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    },
  };
}
