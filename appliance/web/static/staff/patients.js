// Patients: search, list, create, edit, record consent, delete.

import { api } from '/static/common/api.js';
import { h, clear } from '/static/common/dom.js';
import { t } from '/static/common/i18n.js';
import { confirmDialog, openDialog } from './forms.js';
import { consentForm, consentText, patientForm } from './patient-form.js';

const SEARCH_DELAY_MS = 250;

export async function render(root, ctx) {
  let timer = null;
  let counter = 0;
  const searchInput = h('input', { id: 'patients-search', type: 'search', autocomplete: 'off',
    'data-test': 'patients-search' });
  const list = h('div', { class: 'patients-list' });
  const status = h('p', { class: 'muted', role: 'status' });

  root.append(
    h('div', { class: 'view-head' },
      h('h1', { tabindex: '-1' }, t('ui.patients.title')),
      h('button', { type: 'button', class: 'primary', 'data-test': 'add-patient', onclick: addPatient },
        t('ui.patients.add'))),
    h('div', { class: 'toolbar' },
      h('label', { for: 'patients-search' }, t('ui.patients.search')),
      searchInput, status),
    list);

  async function load() {
    const mine = ++counter;
    try {
      const found = await api(`/api/patients?q=${encodeURIComponent(searchInput.value.trim())}`);
      if (mine !== counter) return;
      status.textContent = t('ui.patients.count', { count: found.length });
      renderList(found);
    } catch (error) {
      clear(list);
      list.append(h('p', { class: 'form-error', role: 'alert' }, error.message));
    }
  }

  function renderList(patients) {
    clear(list);
    if (patients.length === 0) {
      list.append(h('p', { class: 'empty' }, searchInput.value.trim()
        ? t('ui.patients.no_match') : t('ui.patients.empty')));
      return;
    }
    list.append(h('table', {},
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, t('ui.patient.full_name')),
        h('th', { scope: 'col' }, t('ui.patients.contact')),
        h('th', { scope: 'col' }, t('ui.consent.title')),
        h('th', { scope: 'col' }, t('ui.dashboard.col_actions')))),
      h('tbody', {}, patients.map((patient) => h('tr', { 'data-test': 'patient-row', 'data-id': patient.id },
        h('td', {}, h('strong', {}, patient.full_name)),
        h('td', {}, [patient.email, patient.phone].filter(Boolean).join(' · ') || h('span', { class: 'muted' }, '–')),
        h('td', {}, patient.consent ? consentText(patient)
          : h('span', { class: 'badge warn' }, t('ui.patient.consent_missing'))),
        h('td', { class: 'row-actions' },
          h('button', { type: 'button', class: 'small', onclick: () => editPatient(patient) }, t('ui.action.edit')),
          h('button', { type: 'button', class: 'small', onclick: () => recordConsent(patient) },
            t('ui.patients.record_consent')),
          h('button', { type: 'button', class: 'small danger', onclick: () => removePatient(patient) },
            t('ui.action.delete'))))))));
  }

  function addPatient() {
    const handle = openDialog({
      title: t('ui.patients.add'), wide: true, test: 'patient-dialog',
      body: [patientForm(ctx, { onSaved: () => { handle.close(); load(); } })],
    });
    handle.dialog.querySelector('input').focus();
  }

  function editPatient(patient) {
    const handle = openDialog({
      title: t('ui.patients.edit_title', { name: patient.full_name }), wide: true,
      body: [patientForm(ctx, { patient, onSaved: () => { handle.close(); load(); } })],
    });
  }

  function recordConsent(patient) {
    const save = h('button', { type: 'submit', class: 'primary', form: 'consent-form' }, t('ui.action.save'));
    const handle = openDialog({
      title: t('ui.patients.consent_title', { name: patient.full_name }),
      body: [
        patient.consent ? h('p', { class: 'notice' }, consentText(patient)) : null,
        consentForm(ctx, patient, { id: 'consent-form', onSaved: () => { handle.close(); load(); } }),
      ],
      actions: [save],
    });
  }

  async function removePatient(patient) {
    const ok = await confirmDialog({
      title: t('ui.patients.delete_title'),
      message: t('ui.patients.delete_text', { name: patient.full_name }),
      confirmLabel: t('ui.action.delete'), danger: true,
    });
    if (!ok) return;
    try {
      await api(`/api/patients/${encodeURIComponent(patient.id)}`, { method: 'DELETE' });
      load();
    } catch (error) {
      openDialog({ title: t('ui.error.title'), body: [h('p', { role: 'alert' }, error.message)] });
    }
  }

  searchInput.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(load, SEARCH_DELAY_MS);
  });
  await load();
  searchInput.focus();
  return () => clearTimeout(timer);
}
