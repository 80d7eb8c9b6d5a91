// Appointment pieces shared by the dashboard and the new-appointment view: state badge,
// link and code, the printable invitation and the actions (edit, cancel, reissue, no-show), and
// the further persons (guests) with their own links.

import { api } from '/static/common/api.js';
import { h, clear } from '/static/common/dom.js';
import { t, formatLongDate, formatTime, formatShortDate, wallClock } from '/static/common/i18n.js';
import {
  busy, checkRules, clearErrors, confirmDialog, copyField, field, openDialog, showApiError,
} from './forms.js';

/** Whether the appointment book allows `action` in `appt`'s state (its rules come with the session). */
export function allows(ctx, action, appt) {
  return ctx.session.appointment_rules.actions[action].includes(appt.state);
}

/** Whether `appt` is not over yet (its link still lets people in). */
export function isOpen(ctx, appt) {
  return ctx.session.appointment_rules.open.includes(appt.state);
}

/** The state as a coloured badge with its German (or English) name. */
export function stateBadge(state) {
  return h('span', { class: `badge state-${state}`, 'data-test': 'appointment-state', 'data-state': state },
    t(`ui.state.${state}`));
}

/** The doctors of the practice (for selects). */
export async function doctors() {
  const staff = await api('/api/staff');
  return staff.filter((member) => member.roles.includes('doctor'))
    .sort((a, b) => a.display_name.localeCompare(b.display_name));
}

/** Link and access code with copy buttons (`prefix` names the data-test hooks). */
export function linkAndCode(appt, { prefix = 'appointment', holder = appt } = {}) {
  return h('div', { class: 'link-and-code' },
    copyField({ label: t('ui.appointment.link'), copyLabel: t('ui.copy.link'), value: holder.link, test: `${prefix}-link` }),
    copyField({
      label: t('ui.appointment.code'), copyLabel: t('ui.copy.code'), value: holder.access_code,
      test: `${prefix}-code`, mono: true,
    }),
    appt.code_expires_at ? h('p', { class: 'hint muted' }, t('ui.appointment.code_valid_until', {
      date: formatShortDate(appt.code_expires_at), time: formatTime(appt.code_expires_at),
    })) : null);
}

/** "Donnerstag, 5. März 2026, 14:05 Uhr" */
export function when(appt) {
  return t('ui.appointment.when', { date: formatLongDate(appt.start), time: formatTime(appt.start) });
}

/** Print a simple invitation letter for the patient, or for a `guest` (link, code, steps). */
export function printInvitation(appt, ctx, guest = null) {
  const root = document.getElementById('print-root');
  const holder = guest || appt;
  clear(root);
  root.append(h('article', { class: 'invitation' },
    h('p', { class: 'invitation-practice' }, ctx.practiceName),
    h('h1', {}, t('ui.invitation.title')),
    // a guest's letter names only their role, never the patient (it may travel further)
    h('p', { class: 'invitation-for' }, guest ? t('ui.invitation.for_guest', { label: guest.label })
      : t('ui.invitation.for', { name: appt.patient_name })),
    h('p', { class: 'invitation-when' }, when(appt)),
    h('p', {}, t('ui.invitation.with', { doctor: appt.doctor_name })),
    h('h2', {}, t('ui.invitation.how')),
    h('ol', {},
      h('li', {}, t('ui.invitation.step_link'), h('br'), h('span', { class: 'invitation-link' }, holder.link)),
      h('li', {}, t('ui.invitation.step_code'), h('br'), h('span', { class: 'invitation-code' }, holder.access_code)),
      h('li', {}, t('ui.invitation.step_name')),
      h('li', {}, t('ui.invitation.step_wait'))),
    h('h2', {}, t('ui.invitation.before')),
    h('ul', {},
      h('li', {}, t('ui.invitation.device')),
      h('li', {}, t('ui.invitation.room')),
      h('li', {}, t('ui.invitation.no_recording')),
      h('li', {}, t('ui.invitation.no_account'))),
    h('p', { class: 'invitation-questions' }, t('ui.invitation.questions'))));
  document.body.classList.add('printing-invitation');
  const done = () => {
    document.body.classList.remove('printing-invitation');
    window.removeEventListener('afterprint', done);
  };
  window.addEventListener('afterprint', done);
  window.print();
}

/** A dialog with everything about one appointment, and its actions. */
export function showDetails(appt, ctx, { onChanged } = {}) {
  const handle = openDialog({
    title: t('ui.appointment.details_title', { name: appt.patient_name }),
    wide: true,
    test: 'appointment-details',
    body: [
      h('dl', { class: 'facts' },
        h('dt', {}, t('ui.appointment.when_label')), h('dd', {}, when(appt)),
        h('dt', {}, t('ui.appointment.doctor')), h('dd', {}, appt.doctor_name),
        h('dt', {}, t('ui.appointment.duration_label')),
        h('dd', {}, t('ui.appointment.minutes', { minutes: appt.duration_minutes })),
        h('dt', {}, t('ui.appointment.state')), h('dd', {}, stateBadge(appt.state)),
        appt.checked_in_name ? [h('dt', {}, t('ui.appointment.checked_in_name')),
          h('dd', {}, appt.checked_in_name)] : null),
      appt.link_locked ? h('p', { class: 'notice warn' }, t('ui.appointment.locked')) : null,
      linkAndCode(appt),
      guestSection(appt, ctx),
    ],
    actions: [
      h('button', { type: 'button', class: 'primary', onclick: () => printInvitation(appt, ctx) },
        t('ui.appointment.print')),
      ...actionButtons(appt, ctx, (changed) => { handle.close(); if (onChanged) onChanged(changed); }),
    ],
  });
  return handle;
}

/** The form checks of an appointment's date, time and duration (the API allows 5–180 min). */
export function timeRules(el) {
  return [
    [el('date'), Boolean, t('ui.validation.required')],
    [el('time'), Boolean, t('ui.validation.required')],
    [el('duration_minutes'), (v) => Number(v) >= 5 && Number(v) <= 180, t('ui.validation.duration')],
  ];
}

/** Edit, cancel, reissue and no-show buttons fitting the appointment's state. */
export function actionButtons(appt, ctx, onChanged, { small = false } = {}) {
  const cls = (extra) => [small && 'small', extra].filter(Boolean).join(' ') || null;
  const buttons = [];
  if (allows(ctx, 'edit', appt)) {
    buttons.push(h('button', { type: 'button', class: cls(), 'data-test': 'edit-appointment',
      onclick: () => editAppointment(appt, ctx, onChanged) }, t('ui.appointment.edit')));
  }
  if (allows(ctx, 'reissue', appt)) {
    buttons.push(h('button', { type: 'button', class: cls(), 'data-test': 'reissue-appointment',
      onclick: () => reissue(appt, onChanged) }, t('ui.appointment.reissue')));
  }
  if (allows(ctx, 'reopen', appt) && ctx.user && ctx.user.username === appt.doctor) {
    // after the end the link opens no call; only the appointment's doctor lets the patient back
    buttons.push(h('button', { type: 'button', class: cls(), 'data-test': 'reopen-appointment',
      onclick: () => runAction(appt, 'reopen', onChanged) }, t('ui.appointment.reopen')));
  }
  if (allows(ctx, 'no_show', appt)) {
    buttons.push(h('button', { type: 'button', class: cls(), 'data-test': 'no-show-appointment',
      onclick: () => noShow(appt, onChanged) }, t('ui.appointment.no_show')));
  }
  if (allows(ctx, 'cancel', appt)) {
    buttons.push(h('button', { type: 'button', class: cls('danger'), 'data-test': 'cancel-appointment',
      onclick: () => cancel(appt, onChanged) }, t('ui.appointment.cancel')));
  }
  return buttons;
}

async function runAction(appt, path, onChanged) {
  try {
    const changed = await api(`/api/appointments/${encodeURIComponent(appt.id)}/${path}`, { method: 'POST' });
    if (onChanged) onChanged(changed);
    return changed;
  } catch (error) {
    openDialog({ title: t('ui.error.title'), body: [h('p', { role: 'alert' }, error.message)] });
    return null;
  }
}

async function cancel(appt, onChanged) {
  const ok = await confirmDialog({
    title: t('ui.appointment.cancel_title'),
    message: t('ui.appointment.cancel_text', { name: appt.patient_name, when: when(appt) }),
    confirmLabel: t('ui.appointment.cancel'), danger: true,
  });
  if (ok) await runAction(appt, 'cancel', onChanged);
}

async function noShow(appt, onChanged) {
  const ok = await confirmDialog({
    title: t('ui.appointment.no_show_title'),
    message: t('ui.appointment.no_show_text', { name: appt.patient_name }),
    confirmLabel: t('ui.appointment.no_show'),
  });
  if (ok) await runAction(appt, 'no-show', onChanged);
}

async function reissue(appt, onChanged) {
  const ok = await confirmDialog({
    title: t('ui.appointment.reissue_title'),
    message: [t('ui.appointment.reissue_text'), t('ui.appointment.reissue_hint')],
    confirmLabel: t('ui.appointment.reissue'),
  });
  if (!ok) return;
  const changed = await runAction(appt, 'reissue', null);
  if (changed) {
    openDialog({
      title: t('ui.appointment.reissued_title'), wide: true, test: 'reissued',
      body: [h('p', {}, t('ui.appointment.reissued_text')), linkAndCode(changed)],
    });
    if (onChanged) onChanged(changed);
  }
}

/** Change time, duration or doctor of a scheduled appointment. */
export async function editAppointment(appt, ctx, onChanged) {
  let doctorList;
  try {
    doctorList = await doctors();
  } catch (error) {
    openDialog({ title: t('ui.error.title'), body: [h('p', { role: 'alert' }, error.message)] });
    return;
  }
  const start = wallClock(appt.start);
  const form = h('form', { novalidate: true, id: 'edit-appointment-form' },
    field({ label: t('ui.appointment.doctor'), name: 'doctor', type: 'select', value: appt.doctor,
      options: doctorList.map((d) => ({ value: d.username, label: d.display_name })) }),
    h('div', { class: 'field-row' },
      field({ label: t('ui.appointment.date'), name: 'date', type: 'date', value: start.date,
        required: true, fields: ['date', 'start'] }),
      field({ label: t('ui.appointment.time'), name: 'time', type: 'time', value: start.time,
        required: true, attrs: { step: 300 } }),
      field({ label: t('ui.appointment.duration'), name: 'duration_minutes', type: 'number',
        value: String(appt.duration_minutes), required: true, narrow: true,
        attrs: { min: 5, max: 180, step: 5 } })));
  const save = h('button', { type: 'submit', class: 'primary', form: 'edit-appointment-form' }, t('ui.action.save'));
  const handle = openDialog({
    title: t('ui.appointment.edit_title', { name: appt.patient_name }), body: [form], actions: [save],
  });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const el = (name) => form.elements.namedItem(name);
    if (!checkRules(form, timeRules(el))) return;
    const body = {
      doctor: el('doctor').value,
      start: `${el('date').value}T${el('time').value}`,
      duration_minutes: Number(el('duration_minutes').value),
    };
    try {
      const changed = await busy(save, null, () => api(`/api/appointments/${encodeURIComponent(appt.id)}`,
        { method: 'PATCH', body }));
      handle.close();
      if (onChanged) onChanged(changed);
    } catch (error) {
      showApiError(form, error);
    }
  });
}

// --- further persons (guests): relative, interpreter, colleague --------------------------------

/** The guests of `appt` with link, code, print, reissue and remove, and the invitation form. */
export function guestSection(appt, ctx) {
  const section = h('section', { class: 'guests', 'data-test': 'guests' });
  const maxGuests = ctx.session.appointment_rules.max_guests;
  const base = `/api/appointments/${encodeURIComponent(appt.id)}/guests`;
  let current = appt;

  async function reload() {
    try {
      current = await api(`/api/appointments/${encodeURIComponent(appt.id)}`);
    } catch (error) {
      showError(error);
    }
    render();
  }

  function showError(error) {
    openDialog({ title: t('ui.error.title'), body: [h('p', { role: 'alert' }, error.message)] });
  }

  async function act(work) {
    try {
      await work();
    } catch (error) {
      showError(error);
    }
    await reload();
  }

  function guestItem(guest) {
    const path = `${base}/${encodeURIComponent(guest.id)}`;
    const reissueGuest = async () => {
      const ok = await confirmDialog({
        title: t('ui.guest.reissue_title', { label: guest.label }),
        message: [t('ui.appointment.reissue_text'), t('ui.appointment.reissue_hint')],
        confirmLabel: t('ui.appointment.reissue'),
      });
      if (ok) await act(() => api(`${path}/reissue`, { method: 'POST' }));
    };
    const removeGuest = async () => {
      const ok = await confirmDialog({
        title: t('ui.guest.remove_title', { label: guest.label }),
        message: t('ui.guest.remove_text'), confirmLabel: t('ui.guest.remove'), danger: true,
      });
      if (ok) await act(() => api(path, { method: 'DELETE' }));
    };
    return h('li', { class: 'guest', 'data-test': 'guest', 'data-guest': guest.id },
      h('h4', {}, guest.label, guest.checked_in_name
        ? h('span', { class: 'muted', 'data-test': 'guest-name' }, ` – ${t('ui.guest.checked_in', { name: guest.checked_in_name })}`)
        : null),
      guest.link_locked ? h('p', { class: 'notice warn' }, t('ui.appointment.locked')) : null,
      linkAndCode(current, { prefix: 'guest', holder: guest }),
      h('div', { class: 'button-row' },
        h('button', { type: 'button', class: 'small', 'data-test': 'print-guest',
          onclick: () => printInvitation(current, ctx, guest) }, t('ui.appointment.print')),
        isOpen(ctx, current)
          ? h('button', { type: 'button', class: 'small', 'data-test': 'reissue-guest', onclick: reissueGuest },
            t('ui.appointment.reissue'))
          : null,
        h('button', { type: 'button', class: 'small danger', 'data-test': 'remove-guest', onclick: removeGuest },
          t('ui.guest.remove'))));
  }

  function inviteForm() {
    const form = h('form', { novalidate: true, class: 'guest-invite', 'data-test': 'invite-guest-form' },
      field({ label: t('ui.guest.label'), name: 'label', hint: t('ui.guest.label_hint'), required: true,
        attrs: { maxlength: 60 }, test: 'guest-label' }),
      h('button', { type: 'submit', class: 'primary', 'data-test': 'invite-guest' }, t('ui.guest.invite')));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(form);
      const label = form.elements.namedItem('label');
      if (!checkRules(form, [[label, (v) => v.trim().length > 0, t('ui.validation.required')]])) return;
      const button = form.querySelector('button[type=submit]');
      try {
        await busy(button, null, () => api(base, { method: 'POST', body: { label: label.value.trim() } }));
      } catch (error) {
        showApiError(form, error);
        return;
      }
      await reload();
    });
    return form;
  }

  function render() {
    clear(section);
    const guests = current.guests || [];
    section.append(h('h3', {}, t('ui.guest.title')),
      h('p', { class: 'hint muted' }, t('ui.guest.hint', { max: maxGuests })));
    if (guests.length) section.append(h('ul', { class: 'guest-list' }, guests.map(guestItem)));
    const open = isOpen(ctx, current);
    if (open && guests.length < maxGuests) section.append(inviteForm());
    else if (open) section.append(h('p', { class: 'hint' }, t('ui.guest.full', { max: maxGuests })));
  }

  render();
  return section;
}
