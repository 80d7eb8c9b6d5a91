// A new video appointment: doctor, patient (search or create), date, time, duration;
// afterwards link and access code at once, with copy buttons and the printable invitation.

import { api } from '/static/common/api.js';
import { h, clear } from '/static/common/dom.js';
import { t, addDays, nowIn, wallClock } from '/static/common/i18n.js';
import {
  busy, checkRules, clearErrors, field, showApiError, showFieldError,
} from './forms.js';
import { doctors, linkAndCode, printInvitation, timeRules, when } from './appointments.js';
import { consentText, patientForm } from './patient-form.js';

const SEARCH_DELAY_MS = 250;
const MAX_RESULTS = 12;

export async function render(root, ctx) {
  const doctorList = await doctors();
  let selected = null;
  let searchTimer = null;
  let searchCounter = 0;

  const heading = h('h1', { tabindex: '-1' }, t('ui.new_appointment.title'));
  root.append(h('div', { class: 'view-head' }, heading));

  if (doctorList.length === 0) {
    root.append(h('p', { class: 'notice warn' }, t('ui.new_appointment.no_doctors')),
      ctx.isAdmin ? h('a', { class: 'button', href: '#/benutzer' }, t('ui.nav.users')) : null);
    return undefined;
  }

  // --- patient: search, pick or create ------------------------------------------------------------
  const searchId = 'patient-search';
  const searchInput = h('input', {
    id: searchId, type: 'search', autocomplete: 'off', 'data-test': 'patient-search',
    'aria-describedby': `${searchId}-hint`, 'aria-controls': 'patient-results',
  });
  const results = h('ul', { class: 'search-results', id: 'patient-results', 'aria-live': 'polite' });
  const chosen = h('div', { class: 'chosen-patient', hidden: true, 'data-test': 'chosen-patient' });
  const newPatientBox = h('div', { class: 'new-patient', hidden: true });
  const newPatientButton = h('button', { type: 'button', 'aria-expanded': 'false', 'data-test': 'new-patient',
    onclick: () => toggleNewPatient(newPatientBox.hidden) }, t('ui.new_appointment.new_patient'));
  const pickBox = h('div', { class: 'patient-pick' },
    h('div', { class: 'field' },
      h('label', { for: searchId }, t('ui.new_appointment.search')),
      h('p', { class: 'hint', id: `${searchId}-hint` }, t('ui.new_appointment.search_hint')),
      searchInput),
    results,
    h('div', { class: 'actions' }, newPatientButton),
    newPatientBox);

  function toggleNewPatient(open) {
    newPatientBox.hidden = !open;
    newPatientButton.setAttribute('aria-expanded', String(open));
    if (open) {
      clear(newPatientBox);
      const form = patientForm(ctx, {
        submitLabel: t('ui.new_appointment.create_patient'), test: 'new-patient-form',
        onSaved: (patient) => { toggleNewPatient(false); choose(patient); },
      });
      const nameInput = form.elements.namedItem('full_name');
      if (searchInput.value.trim()) nameInput.value = searchInput.value.trim();
      newPatientBox.append(h('h3', {}, t('ui.new_appointment.new_patient_title')), form);
      nameInput.focus();
    }
  }

  function choose(patient) {
    selected = patient;
    clear(chosen);
    chosen.append(
      h('p', {}, t('ui.new_appointment.chosen'), ' ',
        h('strong', { 'data-test': 'chosen-name' }, patient.full_name)),
      h('p', { class: patient.consent ? 'muted' : 'notice warn' }, consentText(patient),
        patient.consent ? null : [' ', t('ui.new_appointment.consent_later')]),
      h('button', { type: 'button', class: 'small', onclick: unchoose }, t('ui.new_appointment.other_patient')));
    chosen.hidden = false;
    pickBox.hidden = true;
    patientOutput.textContent = patient.full_name;
    const wrapper = patientOutput.closest('.field');
    wrapper.classList.remove('has-error');
    wrapper.querySelector('.field-error').hidden = true;
    appointmentForm.elements.namedItem('date').focus();
  }

  function unchoose() {
    selected = null;
    chosen.hidden = true;
    pickBox.hidden = false;
    patientOutput.textContent = t('ui.new_appointment.none_chosen');
    searchInput.focus();
  }

  async function search() {
    const mine = ++searchCounter;
    const text = searchInput.value.trim();
    if (!text) {
      clear(results);
      return;
    }
    try {
      const found = await api(`/api/patients?q=${encodeURIComponent(text)}`);
      if (mine !== searchCounter) return;
      clear(results);
      if (found.length === 0) {
        results.append(h('li', { class: 'muted' }, t('ui.new_appointment.no_match')));
      }
      for (const patient of found.slice(0, MAX_RESULTS)) {
        results.append(h('li', {},
          h('button', { type: 'button', class: 'result', 'data-test': 'patient-result',
            onclick: () => choose(patient) },
          h('span', { class: 'result-name' }, patient.full_name),
          h('span', { class: 'result-meta muted' },
            [patient.email, patient.phone].filter(Boolean).join(' · '), ' ', consentText(patient)))));
      }
    } catch (error) {
      clear(results);
      results.append(h('li', { class: 'field-error' }, error.message));
    }
  }
  searchInput.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(search, SEARCH_DELAY_MS);
  });
  searchInput.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') {
      event.preventDefault();
      clearTimeout(searchTimer);
      search();
    }
  });

  // --- the appointment ---------------------------------------------------------------------------
  const start = defaultStart(ctx.timezone);
  const me = doctorList.find((d) => d.username === ctx.user.username);
  const patientOutput = h('output', { class: 'patient-output', 'data-field': 'patient_id' },
    t('ui.new_appointment.none_chosen'));
  const appointmentForm = h('form', { novalidate: true, 'data-test': 'appointment-form' },
    h('div', { class: 'field' },
      h('span', { class: 'label' }, t('ui.appointment.patient')),
      patientOutput,
      h('p', { class: 'field-error', hidden: true, 'aria-live': 'polite' })),
    field({ label: t('ui.appointment.doctor'), name: 'doctor', type: 'select', required: true,
      value: me ? me.username : doctorList[0].username, test: 'appointment-doctor',
      options: doctorList.map((d) => ({ value: d.username, label: d.display_name })) }),
    h('div', { class: 'field-row' },
      field({ label: t('ui.appointment.date'), name: 'date', type: 'date', value: start.date,
        required: true, fields: ['date', 'start'], test: 'appointment-date' }),
      field({ label: t('ui.appointment.time'), name: 'time', type: 'time', value: start.time,
        required: true, test: 'appointment-time' }),
      field({ label: t('ui.appointment.duration'), name: 'duration_minutes', type: 'number',
        value: '15', required: true, narrow: true, test: 'appointment-duration',
        attrs: { min: 5, max: 180, step: 5 } })),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary', 'data-test': 'create-appointment' },
        t('ui.new_appointment.submit'))));

  const formArea = h('div', { class: 'new-appointment' },
    h('section', { class: 'panel', 'aria-labelledby': 'np-patient' },
      h('h2', { id: 'np-patient' }, t('ui.new_appointment.step_patient')), pickBox, chosen),
    h('section', { class: 'panel', 'aria-labelledby': 'np-when' },
      h('h2', { id: 'np-when' }, t('ui.new_appointment.step_when')), appointmentForm));
  const resultArea = h('div', { class: 'created', hidden: true, 'data-test': 'appointment-created' });
  root.append(formArea, resultArea);

  appointmentForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(appointmentForm);
    const el = (name) => appointmentForm.elements.namedItem(name);
    if (!selected) {
      showFieldError(appointmentForm, patientOutput, t('ui.new_appointment.choose_patient'));
      (pickBox.hidden ? chosen : searchInput).focus();
      return;
    }
    if (!checkRules(appointmentForm, timeRules(el))) return;
    const body = {
      doctor: el('doctor').value,
      patient_id: selected.id,
      start: `${el('date').value}T${el('time').value}`,
      duration_minutes: Number(el('duration_minutes').value),
    };
    try {
      const appt = await busy(event.submitter || appointmentForm.querySelector('[type=submit]'), null,
        () => api('/api/appointments', { method: 'POST', body }));
      showCreated(appt);
    } catch (error) {
      showApiError(appointmentForm, error);
    }
  });

  function showCreated(appt) {
    formArea.hidden = true;
    clear(resultArea);
    const title = h('h2', { tabindex: '-1' }, t('ui.new_appointment.created'));
    resultArea.append(h('section', { class: 'panel' },
      title,
      h('p', { class: 'notice ok' }, t('ui.new_appointment.created_text', {
        name: appt.patient_name, when: when(appt), doctor: appt.doctor_name,
      })),
      linkAndCode(appt),
      h('p', { class: 'hint muted' }, t('ui.new_appointment.hand_over')),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'primary', onclick: () => printInvitation(appt, ctx) },
          t('ui.appointment.print')),
        h('a', { class: 'button', href: '#/termine', 'data-test': 'to-dashboard',
          onclick: () => { ctx.memory.dashboardDay = wallClock(appt.start).date; } },
        t('ui.new_appointment.to_dashboard')),
        h('button', { type: 'button', onclick: () => { clear(root); render(root, ctx); } },
          t('ui.new_appointment.another')))));
    resultArea.hidden = false;
    title.focus();
  }

  searchInput.focus();
  return () => clearTimeout(searchTimer);
}

/** The next quarter hour in the practice's zone. */
function defaultStart(timeZone) {
  const now = nowIn(timeZone);
  const [hours, minutes] = now.time.split(':').map(Number);
  const next = Math.ceil((hours * 60 + minutes + 1) / 15) * 15;
  if (next >= 24 * 60) return { date: addDays(now.date, 1), time: '08:00' };
  const pad = (n) => String(n).padStart(2, '0');
  return { date: now.date, time: `${pad(Math.floor(next / 60))}:${pad(next % 60)}` };
}
