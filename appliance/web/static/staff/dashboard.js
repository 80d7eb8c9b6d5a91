// The day's video appointments, grouped by doctor, updated live from /api/events (O4).

import { api } from '/static/common/api.js';
import { h, clear } from '/static/common/dom.js';
import {
  t, addDays, formatLongDate, instant, nowIn, wallClock,
} from '/static/common/i18n.js';
import { actionButtons, showDetails, stateBadge } from './appointments.js';
import { WaitingAlerts } from './alerts.js';
import { register } from '/static/call/debug.js';

const RECONNECT_MS = 5000;
const TICK_MS = 15000;

export async function render(root, ctx) {
  const today = nowIn(ctx.timezone).date;
  let day = ctx.memory.dashboardDay || today;
  const appointments = new Map();
  let source = null;
  let reconnectTimer = null;
  let connectedOnce = false;
  let stopped = false;
  const baseTitle = document.title;
  const alerts = new WaitingAlerts(ctx);
  register('alerts', alerts);

  const heading = h('h1', { tabindex: '-1' }, t('ui.dashboard.title'));
  const dayLabel = h('p', { class: 'day-label', 'data-test': 'day-label' });
  const dateInput = h('input', { type: 'date', id: 'dashboard-day', value: day, 'data-test': 'dashboard-day' });
  const live = h('p', { class: 'live-status', 'data-test': 'live-status', role: 'status' });
  const announcer = h('p', { class: 'visually-hidden', 'aria-live': 'assertive' });
  const list = h('div', { class: 'appointment-groups', 'data-test': 'appointments' });
  const loadError = h('p', { class: 'form-error', role: 'alert', hidden: true });

  root.append(
    h('div', { class: 'view-head' },
      h('div', {}, heading, dayLabel),
      h('a', { class: 'button primary', href: '#/neuer-termin' }, t('ui.nav.new_appointment'))),
    h('div', { class: 'toolbar' },
      h('button', { type: 'button', onclick: () => setDay(addDays(day, -1)) }, t('ui.dashboard.previous_day')),
      h('label', { for: 'dashboard-day' }, t('ui.dashboard.day')),
      dateInput,
      h('button', { type: 'button', onclick: () => setDay(addDays(day, 1)) }, t('ui.dashboard.next_day')),
      h('button', { type: 'button', onclick: () => setDay(nowIn(ctx.timezone).date) }, t('ui.dashboard.today')),
      live),
    alerts.controls(),
    loadError, announcer, list);
  dateInput.addEventListener('change', () => { if (dateInput.value) setDay(dateInput.value); });

  function setDay(value) {
    day = value;
    ctx.memory.dashboardDay = value === nowIn(ctx.timezone).date ? null : value;
    dateInput.value = value;
    load();
  }

  async function load() {
    dayLabel.textContent = formatLongDate(day);
    try {
      const items = await api(`/api/appointments?date=${encodeURIComponent(day)}`);
      appointments.clear();
      for (const appt of items) appointments.set(appt.id, appt);
      loadError.hidden = true;
      renderAll();
    } catch (error) {
      loadError.textContent = error.message;
      loadError.hidden = false;
    }
  }

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
    for (const doctor of doctorsInOrder) {
      const items = byDoctor.get(doctor);
      const titleId = `group-${doctor}`;
      list.append(h('section', { class: 'doctor-group', 'data-doctor': doctor, 'aria-labelledby': titleId },
        h('h2', { id: titleId }, items[0].doctor_name,
          h('span', { class: 'group-count' }, items.length === 1 ? t('ui.dashboard.count_one') : t('ui.dashboard.count', { count: items.length }))),
        h('table', { class: 'appointments' },
          h('thead', {}, h('tr', {},
            h('th', { scope: 'col' }, t('ui.dashboard.col_time')),
            h('th', { scope: 'col' }, t('ui.dashboard.col_patient')),
            h('th', { scope: 'col' }, t('ui.dashboard.col_state')),
            h('th', { scope: 'col' }, t('ui.dashboard.col_checked_in')),
            h('th', { scope: 'col' }, t('ui.dashboard.col_actions')))),
          h('tbody', {}, items.map(row)))));
    }
    updateTitle();
  }

  function row(appt) {
    const waitingSince = h('span', { class: 'waiting-since', 'data-test': 'waiting-since' });
    fillWaiting(waitingSince, appt);
    const nameDiffers = appt.checked_in_name && normalize(appt.checked_in_name) !== normalize(appt.patient_name);
    return h('tr', { 'data-id': appt.id, 'data-test': 'appointment-row', 'data-state': appt.state,
      class: `row-${appt.state}` },
    h('td', { class: 'time', 'data-label': t('ui.dashboard.col_time') },
      h('strong', {}, wallClock(appt.start).time),
      h('span', { class: 'muted' }, ` – ${wallClock(appt.end).time}`)),
    h('td', { class: 'patient', 'data-label': t('ui.dashboard.col_patient') },
      h('span', { class: 'patient-name', 'data-test': 'patient-name' }, appt.patient_name),
      appt.patient_has_consent ? null
        : h('span', { class: 'badge warn', 'data-test': 'consent-missing' }, t('ui.dashboard.consent_missing')),
      appt.link_locked ? h('span', { class: 'badge warn' }, t('ui.dashboard.link_locked')) : null),
    h('td', { class: 'state', 'data-label': t('ui.dashboard.col_state') }, stateBadge(appt.state), waitingSince),
    h('td', { class: 'checked-in', 'data-label': t('ui.dashboard.col_checked_in') },
      appt.checked_in_name ? h('span', { 'data-test': 'checked-in-name' }, appt.checked_in_name) : h('span', { class: 'muted' }, '–'),
      nameDiffers ? h('span', { class: 'hint warn-text' }, t('ui.dashboard.name_differs')) : null),
    h('td', { class: 'row-actions', 'data-label': t('ui.dashboard.col_actions') },
      callButton(appt),
      h('button', { type: 'button', class: 'small primary', 'data-test': 'appointment-details',
        onclick: () => showDetails(appt, ctx, { onChanged: upsert }) }, t('ui.appointment.details')),
      actionButtons(appt, ctx, upsert, { small: true })));
  }

  /** The appointment's own doctor starts (or returns to) the call from here (O3). */
  function callButton(appt) {
    if (!ctx.isDoctor || appt.doctor !== ctx.user.username) return null;
    if (appt.state !== 'waiting' && appt.state !== 'in_call') return null;
    // an action, not a place to read: a button for screen readers, though it opens the call view
    return h('button', { type: 'button', class: 'small primary call-start', 'data-test': 'start-call',
      onclick: () => ctx.navigate(`call/${encodeURIComponent(appt.id)}`) },
    appt.state === 'waiting' ? t('ui.dashboard.start_call') : t('ui.dashboard.return_to_call'));
  }

  function fillWaiting(el, appt) {
    if (appt.state !== 'waiting' || !appt.checked_in_at) {
      el.textContent = '';
      return;
    }
    const minutes = Math.max(0, Math.floor((Date.now() - instant(appt.checked_in_at)) / 60000));
    el.textContent = minutes < 1 ? t('ui.dashboard.waiting_just_now')
      : t('ui.dashboard.waiting_since', { minutes });
  }

  function tick() {
    for (const rowEl of list.querySelectorAll('tr[data-id]')) {
      const appt = appointments.get(rowEl.dataset.id);
      if (appt) fillWaiting(rowEl.querySelector('.waiting-since'), appt);
    }
  }

  /** Put a changed appointment into the list: the row is replaced in place where possible. */
  function upsert(appt) {
    if (!appt || stopped) return;
    const previous = appointments.get(appt.id);
    if (wallClock(appt.start).date !== day) {
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
      alerts.arrived(appt, [...appointments.values()]);
    }
  }

  function remove(id) {
    if (appointments.delete(id)) renderAll();
  }

  function updateTitle() {
    const waiting = [...appointments.values()].filter((a) => a.state === 'waiting').length;
    document.title = waiting ? `(${waiting}) ${baseTitle}` : baseTitle;
  }

  // --- live updates ------------------------------------------------------------------------------

  function connect() {
    if (stopped) return;
    source = new EventSource('/api/events');
    source.addEventListener('open', () => {
      live.textContent = t('ui.dashboard.live');
      live.dataset.state = 'live';
      if (connectedOnce) load(); // catch up on what happened while disconnected
      connectedOnce = true;
    });
    source.addEventListener('appointment', (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      if (data.removed) remove(data.id);
      else upsert(data);
    });
    source.addEventListener('box-lock', () => {
      // an admin asked to lock the box, or called it off: the banner follows
      ctx.refreshSession().catch(() => {});
    });
    source.addEventListener('error', () => {
      if (stopped) return;
      live.textContent = t('ui.dashboard.reconnecting');
      live.dataset.state = 'offline';
      if (source.readyState === EventSource.CLOSED) {
        // the box refused the stream (e.g. session gone): check the session, then try again
        source.close();
        clearTimeout(reconnectTimer);
        reconnectTimer = setTimeout(async () => {
          try {
            await api('/api/session');
            connect();
          } catch {
            // not logged in any more: the app shows the login page
          }
        }, RECONNECT_MS);
      }
    });
  }

  await load();
  connect();
  const ticker = setInterval(tick, TICK_MS);

  return () => {
    stopped = true;
    alerts.close();
    clearInterval(ticker);
    clearTimeout(reconnectTimer);
    if (source) source.close();
    document.title = baseTitle;
  };
}

function byStart(a, b) {
  return instant(a.start) - instant(b.start) || a.id.localeCompare(b.id);
}

function normalize(name) {
  return String(name || '').toLocaleLowerCase().replace(/\s+/g, ' ').trim();
}

