// The day's video appointments, grouped by doctor, updated live from /api/events (O4). The
// list of appointments, the live connection and the warnings of a failed internet line and of
// the backup are components of their own; this module holds the day shown, loads it and wires them together.

import { api } from '/static/common/api.js';
import { h } from '/static/common/dom.js';
import { t, addDays, formatLongDate, nowIn } from '/static/common/i18n.js';
import { appointmentList } from './appointment-list.js';
import { liveEvents } from './live-events.js';
import { WaitingAlerts } from './alerts.js';
import { uplinkWarning } from './uplink-warning.js';
import { backupWarning } from './backup-warning.js';
import { register } from '/static/call/debug.js';

const TICK_MS = 15000;

export async function render(root, ctx) {
  const today = nowIn(ctx.timezone).date;
  let day = ctx.memory.dashboardDay || today;
  const alerts = new WaitingAlerts(ctx);
  const lineWarning = uplinkWarning(ctx);
  const copyWarning = backupWarning(ctx);
  register('alerts', alerts);
  const appointments = appointmentList({
    ctx, day: () => day, onArrived: (appt, all) => alerts.arrived(appt, all),
  });
  const live = liveEvents({
    onAppointment: (appt) => appointments.upsert(appt),
    onRemoved: (id) => appointments.remove(id),
    onReconnected: () => { load(); loadLines(); loadBackup(); }, // catch up on what happened while disconnected
    // an admin asked to lock the box, or called it off: the banner follows
    onBoxLock: () => ctx.refreshSession().catch(() => {}),
    // an internet line failed or came back: the warning follows
    onUplinks: (lines) => lineWarning.show(lines),
    // a backup ran (or runs): its warnings follow
    onBackup: (warnings) => copyWarning.show(warnings),
  });

  const heading = h('h1', { tabindex: '-1' }, t('ui.dashboard.title'));
  const dayLabel = h('p', { class: 'day-label', 'data-test': 'day-label' });
  const dateInput = h('input', { type: 'date', id: 'dashboard-day', value: day, 'data-test': 'dashboard-day' });
  const loadError = h('p', { class: 'form-error', role: 'alert', hidden: true });

  root.append(
    lineWarning.element,
    copyWarning.element,
    h('div', { class: 'view-head' },
      h('div', {}, heading, dayLabel),
      h('a', { class: 'button primary', href: '#/neuer-termin' }, t('ui.nav.new_appointment'))),
    h('div', { class: 'toolbar' },
      h('button', { type: 'button', onclick: () => setDay(addDays(day, -1)) }, t('ui.dashboard.previous_day')),
      h('label', { for: 'dashboard-day' }, t('ui.dashboard.day')),
      dateInput,
      h('button', { type: 'button', onclick: () => setDay(addDays(day, 1)) }, t('ui.dashboard.next_day')),
      h('button', { type: 'button', onclick: () => setDay(nowIn(ctx.timezone).date) }, t('ui.dashboard.today')),
      live.element),
    alerts.controls(),
    loadError, ...appointments.elements);
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
      loadError.hidden = true;
      appointments.show(items);
    } catch (error) {
      loadError.textContent = error.message;
      loadError.hidden = false;
    }
  }

  async function loadLines() {
    try {
      lineWarning.show((await api('/api/uplinks')).lines);
    } catch {
      // the appointments' own error says that the box is not reachable
    }
  }

  async function loadBackup() {
    try {
      copyWarning.show((await api('/api/backup/warnings')).warnings);
    } catch {
      // as above
    }
  }

  await Promise.all([load(), loadLines(), loadBackup()]);
  live.connect();
  const ticker = setInterval(() => appointments.tick(), TICK_MS);

  return () => {
    appointments.destroy();
    lineWarning.destroy();
    copyWarning.destroy();
    alerts.close();
    clearInterval(ticker);
    live.close();
  };
}
