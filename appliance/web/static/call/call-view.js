// The call on screen, the same for doctor and patient: videos, controls, quality, data used,
// chat and files. Phones get one column with big buttons; practice PCs video and chat side
// by side (call.css). Nothing here talks to the hub directly: it drives a Call (call.js).

import { h, clear } from '/static/common/dom.js';
import { t, currentLanguage } from '/static/common/i18n.js';
import { formatBytes, formatBitrate } from './stats.js';
import { canChooseOutput } from './media.js';
import { chatPanel } from './chat-panel.js';

const LEVELS = { good: 0, ok: 1, poor: 2 };
const QUALITY_TEXT = { good: 'ui.call.quality_good', ok: 'ui.call.quality_ok', poor: 'ui.call.quality_poor' };
const QUALITY_HINT = {
  good: 'ui.call.quality_good_hint', ok: 'ui.call.quality_ok_hint', poor: 'ui.call.quality_poor_hint',
};
const TICK_MS = 1000;

function locale() {
  return currentLanguage() === 'en' ? 'en-GB' : 'de-DE';
}

function button(label, props = {}) {
  return h('button', { type: 'button', class: 'call-button', ...props }, h('span', { class: 'call-button-label' }, label));
}

function setLabel(el, text) {
  el.querySelector('.call-button-label').textContent = text;
}

/**
 * Render the call into `root`. `role` is 'doctor' or 'patient'; `onEnd` is called after the
 * doctor confirmed "Beenden", `onLeave` after a guest confirmed leaving.
 * Returns {destroy()}.
 */
export function renderCallView(root, { call, media, role, onEnd, onLeave }) {
  const isDoctor = role === 'doctor';
  const tiles = new Map();
  const names = () => new Map([...call.participants.values()].map((p) => [p.id, p.name]));
  let startedAt = null;

  // --- top bar -----------------------------------------------------------------------------------
  const status = h('p', { class: 'call-status', role: 'status', 'data-test': 'call-status' }, t('ui.call.connecting'));
  const qualityText = h('span', { class: 'quality-text' }, t('ui.call.quality_unknown'));
  const qualityDetails = h('span', { class: 'quality-details', 'data-test': 'call-quality-details' });
  const qualityEl = h('p', { class: 'call-quality level-unknown', 'data-test': 'call-quality' },
    h('span', { class: 'quality-dot', 'aria-hidden': 'true' }), qualityText, qualityDetails);
  const dataUsed = h('p', { class: 'call-data', 'data-test': 'call-data' });
  // role=timer: its name is read (aria-label on a plain <p> is not), and it is never announced
  const timer = h('p', { class: 'call-timer', role: 'timer', 'aria-label': t('ui.call.duration') }, '00:00');
  const top = h('div', { class: 'call-top' }, status, qualityEl, dataUsed, timer);

  // --- rules (O2, R7): before and at the start of every call ---------------------------------------
  const rules = h('div', { class: 'call-rules', 'data-test': 'call-rules', role: 'note' },
    h('p', { class: 'call-rules-title' }, t('ui.call.rules_title')),
    h('ul', {},
      h('li', {}, t('ui.call.rule_room')),
      h('li', {}, t('ui.call.rule_introduce')),
      h('li', {}, t('ui.call.rule_recording'))),
    h('button', { type: 'button', class: 'small', 'data-test': 'call-rules-ok',
      onclick: () => {
        rules.hidden = true;
        // the button just pressed is gone: keep the keyboard in the call
        (micButton.disabled ? camButton : micButton).focus();
      } }, t('ui.call.rules_ok')));

  // --- stage ---------------------------------------------------------------------------------------
  const empty = h('p', { class: 'stage-empty', 'data-test': 'call-empty' },
    isDoctor ? t('ui.call.waiting_for_patient') : t('ui.call.waiting_for_doctor'));
  const selfVideo = h('video', { class: 'mirror', autoplay: true, playsinline: true, 'data-test': 'self-video' });
  selfVideo.muted = true;
  const selfTile = h('figure', { class: 'tile self' }, selfVideo,
    h('p', { class: 'tile-off', 'aria-hidden': 'true' }, t('ui.call.camera_is_off')),
    h('figcaption', {}, t('ui.call.you')));
  const remotes = h('div', { class: 'remotes tiles-0' }, empty);
  const stage = h('div', { class: 'call-stage' }, remotes, selfTile);
  const soundHint = button(t('ui.call.enable_sound'), { class: 'call-button sound-hint', hidden: true });

  // --- side panel: chat and files --------------------------------------------------------------------
  // the doctor sees who belongs to this appointment's room and lets extra people in (O3)
  const people = isDoctor ? h('ul', { class: 'call-people', 'data-test': 'call-people' }) : null;
  const chat = chatPanel({
    call, names,
    unseen: () => !view.classList.contains('chat-open') && view.classList.contains('chat-collapsible'),
    onUnread: (count) => {
      unreadBadge.textContent = String(count);
      unreadBadge.hidden = count === 0;
    },
  });
  const side = h('aside', { class: 'call-side', 'aria-label': t('ui.call.chat_title') },
    people ? [h('h2', {}, t('ui.call.people')), people] : null, chat.elements);

  // --- controls --------------------------------------------------------------------------------------
  // mic, camera and screen say what a tap does ("Kamera einschalten"); a changing label and
  // aria-pressed together would be read as a double negation, so these show their state by look
  const micButton = button(t('ui.call.mic_off'), { 'data-test': 'toggle-mic' });
  const camButton = button(t('ui.call.camera_off'), { 'data-test': 'toggle-camera' });
  const screenButton = isDoctor && navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia
    ? button(t('ui.call.screen_share'), { 'data-test': 'toggle-screen' }) : null;
  const savingButton = button(t('ui.call.saving'), { 'data-test': 'toggle-saving', 'aria-pressed': 'false' });
  const chatButton = button(t('ui.call.chat'), { 'data-test': 'toggle-chat', 'aria-expanded': 'false', class: 'call-button chat-toggle' });
  const unreadBadge = h('span', { class: 'unread', hidden: true });
  chatButton.append(unreadBadge);
  const devicesButton = button(t('ui.call.devices'), { 'data-test': 'open-devices' });
  const fullButton = document.fullscreenEnabled
    ? button(t('ui.call.fullscreen'), { 'data-test': 'toggle-fullscreen' }) : null;
  const endButton = button(isDoctor ? t('ui.call.end') : t('ui.call.leave'),
    { class: 'call-button end', 'data-test': isDoctor ? 'end-call' : 'leave-call' });
  const controls = h('div', { class: 'call-controls', role: 'toolbar', 'aria-label': t('ui.call.controls') },
    micButton, camButton, screenButton, savingButton, chatButton, devicesButton, fullButton, endButton);

  const view = h('section', { class: 'call', 'data-test': 'call-view' },
    top, rules, h('div', { class: 'call-body' }, h('div', { class: 'call-main' }, stage, soundHint), side), controls);
  root.append(view);

  // --- self view ---------------------------------------------------------------------------------
  function showSelf() {
    const track = media.videoTrack;
    selfVideo.srcObject = track ? new MediaStream([track]) : null;
    selfVideo.classList.toggle('mirror', Boolean(track && track !== media.screen));
    selfTile.classList.toggle('camera-off', !track);
  }

  function showFlags() {
    const flags = media.flags();
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
    view.classList.toggle('sharing', flags.screen);
    for (const tile of tiles.values()) setSink(tile.video);
  }

  // --- remote tiles ------------------------------------------------------------------------------
  function tileFor(peer) {
    let tile = tiles.get(peer.remote.id);
    if (tile) return tile;
    const video = h('video', { autoplay: true, playsinline: true, 'data-test': 'remote-video' });
    const caption = h('figcaption', {}, peer.remote.name || '');
    const state = h('p', { class: 'tile-state', role: 'status' }, t('ui.call.connecting'));
    const el = h('figure', { class: 'tile remote connecting', 'data-participant': peer.remote.id },
      video, h('p', { class: 'tile-off', 'aria-hidden': 'true' }, t('ui.call.camera_is_off')),
      h('p', { class: 'tile-muted', hidden: true }, t('ui.call.muted')), state, caption);
    tile = { el, video, caption, state, peer };
    tiles.set(peer.remote.id, tile);
    empty.before(el);
    layout();
    peer.addEventListener('stream', (e) => play(tile, e.detail.stream));
    peer.addEventListener('state', (e) => showPeerState(tile, e.detail.state));
    peer.addEventListener('quality', () => showQuality());
    peer.addEventListener('message', (e) => {
      if (e.detail.t === 'state') {
        el.classList.toggle('camera-off', !e.detail.camera && !e.detail.screen);
        el.querySelector('.tile-muted').hidden = Boolean(e.detail.mic);
      }
    });
    if (peer.stream) play(tile, peer.stream);
    return tile;
  }

  function play(tile, stream) {
    if (tile.video.srcObject !== stream) tile.video.srcObject = stream;
    setSink(tile.video);
    tile.video.play().catch((error) => {
      // autoplay with sound needs a gesture on some phones: one tap on "Ton einschalten"
      if (error && error.name === 'NotAllowedError') soundHint.hidden = false;
    });
  }

  function setSink(video) {
    if (media.outputDevice && canChooseOutput() && video.sinkId !== media.outputDevice) {
      video.setSinkId(media.outputDevice).catch(() => {});
    }
  }

  function showPeerState(tile, state) {
    tile.el.classList.toggle('connecting', state === 'connecting');
    tile.el.classList.toggle('reconnecting', state === 'reconnecting');
    tile.state.textContent = state === 'reconnecting' ? t('ui.call.reconnecting') : t('ui.call.connecting');
    if (state === 'connected' && startedAt === null) startedAt = Date.now();
    showStatus();
  }

  function layout() {
    remotes.className = `remotes tiles-${Math.min(tiles.size, 3)}`;
    empty.hidden = tiles.size > 0;
  }

  function removeTile(id) {
    const tile = tiles.get(id);
    if (!tile) return;
    tile.video.srcObject = null;
    tile.el.remove();
    tiles.delete(id);
    layout();
    showStatus();
  }

  // --- status, quality, data used ------------------------------------------------------------------
  function showStatus() {
    const peers = [...call.peers.values()];
    let text;
    if (call.signaling.connected === 0 && peers.every((p) => p.state !== 'connected')) {
      text = t(isDoctor ? 'ui.call.box_unreachable' : 'ui.call.box_unreachable_patient');
    } else if (peers.length === 0) {
      text = isDoctor ? t('ui.call.waiting_for_patient') : t('ui.call.waiting_for_doctor');
    } else if (peers.some((p) => p.state === 'reconnecting')) {
      text = t('ui.call.reconnecting');
    } else if (peers.some((p) => p.state === 'connecting')) {
      text = t('ui.call.connecting');
    } else {
      const list = peers.map((p) => p.remote.name).filter(Boolean).join(', ');
      text = t('ui.call.connected_with', { names: list });
    }
    // tick() asks every second: rewriting the same words would make screen readers repeat them
    if (status.textContent !== text) status.textContent = text;
    const reconnecting = peers.some((p) => p.state === 'reconnecting');
    view.dataset.state = reconnecting ? 'reconnecting'
      : peers.some((p) => p.state === 'connected') ? 'connected' : 'connecting';
    // "Verbindung gut" next to "Verbindung unterbrochen" would contradict it: the last reading is
    // stale until the connection is back
    qualityEl.hidden = reconnecting;
  }

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
    showStatus();
  }

  // --- controls ----------------------------------------------------------------------------------
  micButton.addEventListener('click', () => media.setMicOn(!media.micOn));
  camButton.addEventListener('click', async () => {
    camButton.disabled = true;
    try {
      await media.setCameraOn(!media.cameraOn);
    } catch {
      chat.note(t('ui.call.camera_failed'));
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
    if (open) chat.opened();
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
  soundHint.addEventListener('click', () => {
    for (const tile of tiles.values()) tile.video.play().catch(() => {});
    soundHint.hidden = true;
  });
  endButton.addEventListener('click', async () => {
    const ok = await confirm(view, isDoctor
      ? { title: t('ui.call.end_title'), text: t('ui.call.end_text'), confirm: t('ui.call.end_confirm') }
      : { title: t('ui.call.leave_title'), text: t('ui.call.leave_text'), confirm: t('ui.call.leave_confirm') });
    if (!ok) return;
    endButton.disabled = true;
    if (isDoctor) onEnd();
    else onLeave();
  });

  // --- wiring to the call ----------------------------------------------------------------------------
  const onPeer = (e) => tileFor(e.detail.peer);
  const onPeerGone = (e) => removeTile(e.detail.id);
  const onRoom = () => {
    for (const tile of tiles.values()) tile.caption.textContent = names().get(tile.peer.remote.id) || tile.caption.textContent;
    showPeople();
  };

  function showPeople() {
    if (!people) return;
    people.replaceChildren();
    for (const p of call.others) {
      const action = p.admitted
        ? h('button', { type: 'button', class: 'small', 'data-test': 'remove-participant',
          onclick: async () => {
            const ok = await confirm(view, { title: t('ui.call.remove_title', { name: p.name }),
              text: t('ui.call.remove_text'), confirm: t('ui.call.remove') });
            if (ok) call.remove(p.id);
          } }, t('ui.call.remove'))
        : h('button', { type: 'button', class: 'small primary', 'data-test': 'admit-participant',
          disabled: !p.present, onclick: () => call.admit(p.id) }, t('ui.call.admit', { name: p.name }));
      const status = p.admitted ? (p.present ? '' : t('ui.call.p_away')) : t('ui.call.p_waiting');
      people.append(h('li', { 'data-participant': p.id },
        h('span', { class: 'person-name' }, p.name), status ? h('span', { class: 'person-state' }, ` ${status}`) : null, action));
    }
  }
  const onMedia = () => { showSelf(); showFlags(); };
  call.addEventListener('peer', onPeer);
  call.addEventListener('peer-gone', onPeerGone);
  call.addEventListener('room', onRoom);
  media.addEventListener('change', onMedia);
  media.addEventListener('state', onMedia);
  const onSignalStatus = () => showStatus();
  call.signaling.addEventListener('status', onSignalStatus);
  for (const peer of call.peers.values()) tileFor(peer);
  showPeople();
  // on wide screens the chat is always there; on phones it is a panel to open
  const wide = window.matchMedia('(min-width: 60rem)');
  const onWide = () => view.classList.toggle('chat-collapsible', !wide.matches);
  onWide();
  wide.addEventListener('change', onWide);
  showSelf();
  showFlags();
  tick();
  const ticker = setInterval(tick, TICK_MS);

  return {
    element: view,
    destroy() {
      clearInterval(ticker);
      call.removeEventListener('peer', onPeer);
      call.removeEventListener('peer-gone', onPeerGone);
      chat.destroy();
      call.removeEventListener('room', onRoom);
      call.signaling.removeEventListener('status', onSignalStatus);
      media.removeEventListener('change', onMedia);
      media.removeEventListener('state', onMedia);
      wide.removeEventListener('change', onWide);
      document.removeEventListener('fullscreenchange', onFullscreen);
      if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
      for (const tile of tiles.values()) tile.video.srcObject = null;
      selfVideo.srcObject = null;
      clear(root);
    },
  };
}

/** A small modal question inside the call (the staff site's dialogs are not on the public site). */
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
async function openDevices(parent, media) {
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
