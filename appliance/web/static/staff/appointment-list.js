// The dashboard's appointments of one day, a table per doctor (the signed-in doctor's first):
// the appointments it holds, changes put in place as they come, arrivals announced, and the
// count of waiting patients in the page's title.

import { h, clear } from '/static/common/dom.js';
import { t, instant, wallClock } from '/static/common/i18n.js';
import { appointmentRow, updateWaitingTime } from './appointment-row.js';

/**
 * The list. `day()` is the day the dashboard shows (YYYY-MM-DD); `onArrived(appt, all)` hears
 * a patient who just came into the waiting room, with all the day's appointments.
 */
export function appointmentList({ ctx, day, onArrived }) {
  const appointments = new Map();
  const baseTitle = document.title;
  let stopped = false;
  const announcer = h('p', { class: 'visually-hidden', 'aria-live': 'assertive' });
  const list = h('div', { class: 'appointment-groups', 'data-test': 'appointments' });

  function renderAll() {
    clear(list);
    const byDoctor = new Map();
    for (const appt of [...appointments.values()].sort(byStart)) {
      if (!byDoctor.has(appt.doctor)) byDoctor.set(appt.doctor, []);
      byDoctor.get(appt.doctor).push(appt);
    }
    if (byDoctor.size === 0) {
      list.append(h('div', { class: 'empty' },
        h('p', {}, t('ui.dashboard.empty')),
        h('a', { href: '#/neuer-termin' }, t('ui.dashboard.empty_action'))));
    }
    const doctorsInOrder = [...byDoctor.keys()].sort((a, b) => {
      if (a === ctx.user.username) return -1;
      if (b === ctx.user.username) return 1;
      return byDoctor.get(a)[0].doctor_name.localeCompare(byDoctor.get(b)[0].doctor_name);
    });
    for (const doctor of doctorsInOrder) list.append(doctorGroup(doctor, byDoctor.get(doctor)));
    updateTitle();
  }

  function doctorGroup(doctor, items) {
    const titleId = `group-${doctor}`;
    return h('section', { class: 'doctor-group', 'data-doctor': doctor, 'aria-labelledby': titleId },
      h('h2', { id: titleId }, items[0].doctor_name,
        h('span', { class: 'group-count' }, items.length === 1 ? t('ui.dashboard.count_one') : t('ui.dashboard.count', { count: items.length }))),
      h('table', { class: 'appointments' },
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, t('ui.dashboard.col_time')),
          h('th', { scope: 'col' }, t('ui.dashboard.col_patient')),
          h('th', { scope: 'col' }, t('ui.dashboard.col_state')),
          h('th', { scope: 'col' }, t('ui.dashboard.col_checked_in')),
          h('th', { scope: 'col' }, t('ui.dashboard.col_actions')))),
        h('tbody', {}, items.map(row))));
  }

  function row(appt) {
    return appointmentRow(appt, ctx, upsert);
  }

  /** Put a changed appointment into the list: the row is replaced in place where possible. */
  function upsert(appt) {
    if (!appt || stopped) return;
    const previous = appointments.get(appt.id);
    if (wallClock(appt.start).date !== day()) {
      if (appointments.delete(appt.id)) renderAll();
      return;
    }
    appointments.set(appt.id, appt);
    const rowEl = list.querySelector(`tr[data-id="${CSS.escape(appt.id)}"]`);
    const fresh = row(appt);
    if (previous && rowEl && previous.doctor === appt.doctor && previous.start === appt.start) {
      const hadFocus = rowEl.contains(document.activeElement);
      rowEl.replaceWith(fresh);
      if (hadFocus) fresh.querySelector('button')?.focus();
      updateTitle();
    } else {
      renderAll();
    }
    if (appt.state === 'waiting' && (!previous || previous.state !== 'waiting')) {
      list.querySelector(`tr[data-id="${CSS.escape(appt.id)}"]`)?.classList.add('just-arrived');
      announcer.textContent = t('ui.dashboard.arrived', { name: appt.checked_in_name || appt.patient_name });
      onArrived(appt, [...appointments.values()]);
    }
  }

  function updateTitle() {
    const waiting = [...appointments.values()].filter((a) => a.state === 'waiting').length;
    document.title = waiting ? `(${waiting}) ${baseTitle}` : baseTitle;
  }

  return {
    elements: [announcer, list],
    /** Show `items`, the day's appointments as the box listed them. */
    show(items) {
      appointments.clear();
      for (const appt of items) appointments.set(appt.id, appt);
      renderAll();
    },
    upsert,
    remove(id) {
      if (appointments.delete(id)) renderAll();
    },
    /** Bring the waiting times up to date. */
    tick() {
      for (const rowEl of list.querySelectorAll('tr[data-id]')) {
        const appt = appointments.get(rowEl.dataset.id);
        if (appt) updateWaitingTime(rowEl, appt);
      }
    },
    destroy() {
      stopped = true;
      document.title = baseTitle;
    },
  };
}

function byStart(a, b) {
  return instant(a.start) - instant(b.start) || a.id.localeCompare(b.id);
}
