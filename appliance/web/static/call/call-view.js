// The call on screen, the same for doctor and patient: videos, controls, quality, data used,
// chat and files. Phones get one column with big buttons; practice PCs video and chat side
// by side (call.css). Nothing here talks to the hub directly: it drives a Call (call.js).
// The parts are components of their own (the top bar, the stage, the people, the chat, the
// toolbar); this module puts them together and wires them to the Call and the LocalMedia.

import { h, clear } from '/static/common/dom.js';
import { t } from '/static/common/i18n.js';
import { callStatus } from './call-status.js';
import { videoTiles } from './video-tiles.js';
import { peoplePanel } from './people-panel.js';
import { chatPanel } from './chat-panel.js';
import { callControls } from './call-controls.js';

/** The rules (O2, R7), before and at the start of every call; `onOk()` after they were read. */
function callRules(onOk) {
  const rules = h('div', { class: 'call-rules', 'data-test': 'call-rules', role: 'note' },
    h('p', { class: 'call-rules-title' }, t('ui.call.rules_title')),
    h('ul', {},
      h('li', {}, t('ui.call.rule_room')),
      h('li', {}, t('ui.call.rule_introduce')),
      h('li', {}, t('ui.call.rule_recording'))),
    h('button', { type: 'button', class: 'small', 'data-test': 'call-rules-ok',
      onclick: () => {
        rules.hidden = true;
        onOk();
      } }, t('ui.call.rules_ok')));
  return rules;
}

/**
 * Render the call into `root`. `role` is 'doctor' or 'patient'; `onEnd` is called after the
 * doctor confirmed "Beenden", `onLeave` after a guest confirmed leaving.
 * Returns {element, destroy()}.
 */
export function renderCallView(root, { call, media, role, onEnd, onLeave }) {
  const isDoctor = role === 'doctor';
  const names = () => new Map([...call.participants.values()].map((p) => [p.id, p.name]));
  const view = h('section', { class: 'call', 'data-test': 'call-view' });

  const status = callStatus({ call, isDoctor, onState: (state) => { view.dataset.state = state; } });
  const tiles = videoTiles({
    media, isDoctor, onPeerState: (state) => status.peerState(state), onQuality: () => status.showQuality(),
  });
  const controls = callControls({
    call, media, isDoctor, view, onEnd, onLeave,
    onCameraFailed: () => chat.note(t('ui.call.camera_failed')),
    onChatOpened: () => chat.opened(),
  });
  // the doctor sees who belongs to this appointment's room and lets extra people in (O3)
  const people = isDoctor ? peoplePanel({ call, view }) : null;
  const chat = chatPanel({
    call, names,
    unseen: () => !view.classList.contains('chat-open') && view.classList.contains('chat-collapsible'),
    onUnread: (count) => controls.showUnread(count),
  });
  // the button just pressed is gone: keep the keyboard in the call
  const rules = callRules(() => controls.focus());
  const side = h('aside', { class: 'call-side', 'aria-label': t('ui.call.chat_title') },
    people ? people.elements : null, chat.elements);
  view.append(status.element, rules,
    h('div', { class: 'call-body' }, h('div', { class: 'call-main' }, tiles.elements), side), controls.element);
  root.append(view);

  // --- wiring to the call and the media --------------------------------------------------------------
  const onPeer = (e) => tiles.add(e.detail.peer);
  const onPeerGone = (e) => { if (tiles.remove(e.detail.id)) status.show(); };
  const onRoom = () => tiles.rename(names());
  const onMedia = () => {
    tiles.showSelf();
    const flags = media.flags();
    controls.showFlags(flags);
    view.classList.toggle('sharing', flags.screen);
    tiles.setSinks();
  };
  const onSignalStatus = () => status.show();
  call.addEventListener('peer', onPeer);
  call.addEventListener('peer-gone', onPeerGone);
  call.addEventListener('room', onRoom);
  media.addEventListener('change', onMedia);
  media.addEventListener('state', onMedia);
  call.signaling.addEventListener('status', onSignalStatus);
  call.addEventListener('line-failover', onSignalStatus);
  for (const peer of call.peers.values()) tiles.add(peer);
  // on wide screens the chat is always there; on phones it is a panel to open
  const wide = window.matchMedia('(min-width: 60rem)');
  const onWide = () => view.classList.toggle('chat-collapsible', !wide.matches);
  onWide();
  wide.addEventListener('change', onWide);
  onMedia();
  status.start();

  return {
    element: view,
    destroy() {
      status.destroy();
      call.removeEventListener('peer', onPeer);
      call.removeEventListener('peer-gone', onPeerGone);
      chat.destroy();
      if (people) people.destroy();
      call.removeEventListener('room', onRoom);
      call.signaling.removeEventListener('status', onSignalStatus);
      call.removeEventListener('line-failover', onSignalStatus);
      media.removeEventListener('change', onMedia);
      media.removeEventListener('state', onMedia);
      wide.removeEventListener('change', onWide);
      controls.destroy();
      tiles.destroy();
      clear(root);
    },
  };
}
