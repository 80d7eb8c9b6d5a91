// The call's stage: a video tile per remote participant (with its connection state, camera and
// microphone flags), this page's own picture, and the "Ton einschalten" button for phones that
// block sound until a tap.

import { h } from '/static/common/dom.js';
import { t } from '/static/common/i18n.js';
import { canChooseOutput } from './media.js';
import { callButton } from './call-controls.js';

/**
 * The stage for `media`. `onPeerState(state)` hears each peer's connection state after its
 * tile shows it; `onQuality()` hears each new quality reading of a peer.
 */
export function videoTiles({ media, isDoctor, onPeerState, onQuality }) {
  const tiles = new Map();
  const empty = h('p', { class: 'stage-empty', 'data-test': 'call-empty' },
    isDoctor ? t('ui.call.waiting_for_patient') : t('ui.call.waiting_for_doctor'));
  const selfVideo = h('video', { class: 'mirror', autoplay: true, playsinline: true, 'data-test': 'self-video' });
  selfVideo.muted = true;
  const selfTile = h('figure', { class: 'tile self' }, selfVideo,
    h('p', { class: 'tile-off', 'aria-hidden': 'true' }, t('ui.call.camera_is_off')),
    h('figcaption', {}, t('ui.call.you')));
  const remotes = h('div', { class: 'remotes tiles-0' }, empty);
  const stage = h('div', { class: 'call-stage' }, remotes, selfTile);
  const soundHint = callButton(t('ui.call.enable_sound'), { class: 'call-button sound-hint', hidden: true });

  soundHint.addEventListener('click', () => {
    for (const tile of tiles.values()) tile.video.play().catch(() => {});
    soundHint.hidden = true;
  });

  /** The tile of `peer`, made on first sight. */
  function add(peer) {
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
    peer.addEventListener('quality', () => onQuality());
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
    onPeerState(state);
  }

  function layout() {
    remotes.className = `remotes tiles-${Math.min(tiles.size, 3)}`;
    empty.hidden = tiles.size > 0;
  }

  return {
    elements: [stage, soundHint],
    add,
    /** Take away the tile of participant `id`; says whether there was one. */
    remove(id) {
      const tile = tiles.get(id);
      if (!tile) return false;
      tile.video.srcObject = null;
      tile.el.remove();
      tiles.delete(id);
      layout();
      return true;
    },
    /** Caption each tile with the participant's current name (`names`: id → name). */
    rename(names) {
      for (const tile of tiles.values()) tile.caption.textContent = names.get(tile.peer.remote.id) || tile.caption.textContent;
    },
    /** This page's own picture: the camera (mirrored) or the shared screen, or "Kamera ist aus". */
    showSelf() {
      const track = media.videoTrack;
      selfVideo.srcObject = track ? new MediaStream([track]) : null;
      selfVideo.classList.toggle('mirror', Boolean(track && track !== media.screen));
      selfTile.classList.toggle('camera-off', !track);
    },
    /** Play every remote video on the chosen loudspeaker. */
    setSinks() {
      for (const tile of tiles.values()) setSink(tile.video);
    },
    destroy() {
      for (const tile of tiles.values()) tile.video.srcObject = null;
      selfVideo.srcObject = null;
    },
  };
}
