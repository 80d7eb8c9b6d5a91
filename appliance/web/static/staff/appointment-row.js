// One appointment as a row of the dashboard's table: time, patient (with missing consent and a
// locked link), state with the waiting time, the name given at check-in, and the actions,
// among them the doctor's "Sprechstunde starten" (O3).

import { h } from '/static/common/dom.js';
import { t, instant, wallClock } from '/static/common/i18n.js';
import { actionButtons, showDetails, stateBadge } from './appointments.js';

/** The row of `appt`; `onChanged(appt)` hears what its buttons changed. */
export function appointmentRow(appt, ctx, onChanged) {
  const waitingSince = h('span', { class: 'waiting-since', 'data-test': 'waiting-since' });
  showWaitingTime(waitingSince, appt);
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
    callButton(appt, ctx),
    h('button', { type: 'button', class: 'small primary', 'data-test': 'appointment-details',
      onclick: () => showDetails(appt, ctx, { onChanged }) }, t('ui.appointment.details')),
    actionButtons(appt, ctx, onChanged, { small: true })));
}

/** Bring the waiting time in `row` (a row of appointmentRow) up to date. */
export function updateWaitingTime(row, appt) {
  showWaitingTime(row.querySelector('.waiting-since'), appt);
}

/** The appointment's own doctor starts (or returns to) the call from here (O3). */
function callButton(appt, ctx) {
  if (!ctx.isDoctor || appt.doctor !== ctx.user.username) return null;
  if (appt.state !== 'waiting' && appt.state !== 'in_call') return null;
  // an action, not a place to read: a button for screen readers, though it opens the call view
  return h('button', { type: 'button', class: 'small primary call-start', 'data-test': 'start-call',
    onclick: () => ctx.navigate(`call/${encodeURIComponent(appt.id)}`) },
  appt.state === 'waiting' ? t('ui.dashboard.start_call') : t('ui.dashboard.return_to_call'));
}

function showWaitingTime(el, appt) {
  if (appt.state !== 'waiting' || !appt.checked_in_at) {
    el.textContent = '';
    return;
  }
  const minutes = Math.max(0, Math.floor((Date.now() - instant(appt.checked_in_at)) / 60000));
  el.textContent = minutes < 1 ? t('ui.dashboard.waiting_just_now')
    : t('ui.dashboard.waiting_since', { minutes });
}

function normalize(name) {
  return String(name || '').toLocaleLowerCase().replace(/\s+/g, ' ').trim();
}
