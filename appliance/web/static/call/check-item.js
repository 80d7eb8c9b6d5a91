// A line of the device check's list: what is checked (camera, microphone, connection), its
// state ('pending', 'good', 'warn', 'bad', 'waiting', 'skipped') and the finding in words.

import { h } from '/static/common/dom.js';

/** The line for `test` (its data-test name); set(state, text) shows a finding. */
export function checkItem(test, label) {
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
