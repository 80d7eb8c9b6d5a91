// The call's chat and file transfer: its own DOM and state (messages, transfers, the count of
// unread messages). Text goes peer to peer over the data channel and files likewise
// (files.js); nothing of either passes the box.

import { h } from '/static/common/dom.js';
import { t, currentLanguage } from '/static/common/i18n.js';
import { MAX_FILE_BYTES } from './files.js';

const TRANSFER_TEXT = { failed: 'ui.call.file_failed', cancelled: 'ui.call.file_cancelled' };
const MAX_CHAT_CHARS = 2000;

function locale() {
  return currentLanguage() === 'en' ? 'en-GB' : 'de-DE';
}

/**
 * The panel for `call`. `names()` maps participant ids to names; `unseen()` says whether the
 * panel is out of sight (a phone with the panel closed), and `onUnread(count)` hears how many
 * messages came in meanwhile.
 */
export function chatPanel({ call, names, unseen, onUnread }) {
  let unread = 0;
  const heading = h('h2', { tabindex: '-1' }, t('ui.call.chat_title'));
  const log = h('ol', { class: 'chat-log', 'aria-live': 'polite', 'data-test': 'chat-log' });
  const input = h('input', { type: 'text', maxlength: MAX_CHAT_CHARS, autocomplete: 'off', id: 'chat-input',
    'data-test': 'chat-input', 'aria-label': t('ui.call.chat_label') });
  const form = h('form', { class: 'chat-form' }, input,
    h('button', { type: 'submit', class: 'primary', 'data-test': 'chat-send' }, t('ui.call.chat_send')));
  const fileInput = h('input', { type: 'file', id: 'call-file', class: 'visually-hidden', 'data-test': 'file-input' });
  const fileLabel = h('label', { for: 'call-file', class: 'button file-button' }, t('ui.call.file_send'));
  const fileNote = h('p', { class: 'hint muted' }, t('ui.call.file_hint'));
  const transfers = h('ul', { class: 'transfers', 'data-test': 'transfers' });
  const transferRows = new Map();

  /** A line in the chat: from whom, what, when (ms), and whether it is this page's own. */
  function say(fromName, text, at, mine) {
    const time = new Intl.DateTimeFormat(locale(), { hour: '2-digit', minute: '2-digit' }).format(new Date(at));
    log.append(h('li', { class: mine ? 'mine' : 'theirs', 'data-test': 'chat-message' },
      h('span', { class: 'chat-meta' }, `${fromName} · ${time}`),
      h('span', { class: 'chat-text' }, text)));
    log.scrollTop = log.scrollHeight;
    if (!mine && unseen()) {
      unread += 1;
      onUnread(unread);
    }
  }

  /** A note of the box's own in the chat (a message that could not go out, a camera failure). */
  function note(text) {
    say(t('ui.call.system'), text, Date.now(), true);
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    const { message, sent } = call.sendChat(text);
    if (sent === 0) {
      note(t('ui.call.chat_not_sent'));
      return;
    }
    say(t('ui.call.you'), message.text, message.at, true);
    input.value = '';
  });

  fileInput.addEventListener('change', () => {
    const file = fileInput.files && fileInput.files[0];
    fileInput.value = '';
    if (!file) return;
    if (file.size > MAX_FILE_BYTES) {
      note(t('ui.call.file_too_big', { mb: MAX_FILE_BYTES / 1_000_000 }));
      return;
    }
    if (call.peers.size === 0) {
      note(t('ui.call.chat_not_sent'));
      return;
    }
    call.sendFile(file);
  });

  function showTransfer(transfer) {
    let row = transferRows.get(transfer.id);
    if (!row) {
      const progress = h('progress', { max: transfer.size || 1, value: 0 });
      const label = h('span', { class: 'transfer-name' });
      const state = h('span', { class: 'transfer-state' });
      const cancel = h('button', { type: 'button', class: 'small quiet', onclick: () => call.files.cancel(transfer.id) }, t('ui.call.file_cancel'));
      const el = h('li', { class: `transfer ${transfer.direction}`, 'data-test': 'transfer' }, label, progress, state, cancel);
      row = { el, progress, label, state, cancel };
      transferRows.set(transfer.id, row);
      transfers.prepend(el);
    }
    const who = names().get(transfer.peer) || '';
    row.label.textContent = transfer.direction === 'out'
      ? t('ui.call.file_to', { name: transfer.name, who }) : t('ui.call.file_from', { name: transfer.name, who });
    row.progress.max = transfer.size || 1;
    row.progress.value = transfer.done;
    row.el.dataset.state = transfer.state;
    row.cancel.hidden = transfer.state !== 'running';
    if (transfer.state === 'running') {
      row.state.textContent = `${Math.floor((transfer.done / (transfer.size || 1)) * 100)} %`;
    } else if (transfer.state === 'complete' && transfer.url && !row.el.querySelector('a')) {
      row.state.textContent = '';
      row.state.append(h('a', { href: transfer.url, download: transfer.name, class: 'button small primary', 'data-test': 'file-save' },
        t('ui.call.file_save')));
    } else if (transfer.state !== 'complete') {
      row.state.textContent = t(TRANSFER_TEXT[transfer.state] || 'ui.call.file_failed');
    } else if (transfer.direction === 'out') {
      row.state.textContent = t('ui.call.file_sent');
    }
  }

  const onTransfer = (e) => showTransfer(e.detail);
  const onMessage = (e) => {
    const { from, message } = e.detail;
    if (message.t === 'chat' && typeof message.text === 'string') {
      say(names().get(from) || '?', message.text.slice(0, MAX_CHAT_CHARS), Number(message.at) || Date.now(), false);
    }
  };
  call.files.addEventListener('transfer', onTransfer);
  call.addEventListener('message', onMessage);

  return {
    elements: [heading, log, form, h('div', { class: 'file-row' }, fileInput, fileLabel), fileNote, transfers],
    note,
    /** The panel came into sight: nothing unread any more; the focus goes where it helps. */
    opened() {
      unread = 0;
      onUnread(0);
      // on a touch screen focusing the input would pop up the keyboard over the messages the
      // person wanted to read: there the focus goes to the panel's heading
      if (window.matchMedia('(pointer: coarse)').matches) heading.focus();
      else input.focus();
    },
    destroy() {
      call.files.removeEventListener('transfer', onTransfer);
      call.removeEventListener('message', onMessage);
    },
  };
}
