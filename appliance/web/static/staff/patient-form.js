// Patient forms: new patient (optionally with consent), edit contact data, record consent (O1).

import { api } from '/static/common/api.js';
import { h } from '/static/common/dom.js';
import { t, formatShortDate, nowIn } from '/static/common/i18n.js';
import { busy, checkbox, checkRules, clearErrors, field, filled, radios, showApiError } from './forms.js';

export const CONSENT_METHODS = ['written', 'verbal'];

/** "Einwilligung vom 05.03.2026 (schriftlich)" or "Einwilligung fehlt". */
export function consentText(patient) {
  if (!patient.consent) return t('ui.patient.consent_missing');
  return t('ui.patient.consent_given', {
    date: formatShortDate(patient.consent.given_on),
    method: t(`ui.consent.method.${patient.consent.method}`),
  });
}

/** Date and method of a consent. */
function consentFields(today) {
  return [
    field({ label: t('ui.consent.given_on'), name: 'given_on', type: 'date', value: today,
      required: true, narrow: true, fields: ['consent.given_on', 'given_on'] }),
    radios({ legend: t('ui.consent.method'), name: 'method', value: 'written',
      fields: ['consent.method', 'method'],
      options: CONSENT_METHODS.map((value) => ({ value, label: t(`ui.consent.method.${value}`) })) }),
  ];
}

/**
 * A form for a new patient (with an optional consent) or for editing one (`patient`).
 * `onSaved(patient)` runs with the box's answer.
 */
export function patientForm(ctx, { patient = null, onSaved, submitLabel, test = 'patient-form', id } = {}) {
  const today = nowIn(ctx.timezone).date;
  const consentBox = h('div', { class: 'consent-details', hidden: true }, consentFields(today));
  const form = h('form', { novalidate: true, 'data-test': test, id: id || null },
    field({ label: t('ui.patient.full_name'), name: 'full_name', required: true,
      value: patient ? patient.full_name : '', hint: t('ui.patient.full_name_hint'),
      attrs: { autocomplete: 'off' } }),
    h('div', { class: 'field-row' },
      field({ label: t('ui.patient.email'), name: 'email', type: 'email',
        value: patient ? patient.email || '' : '', attrs: { autocomplete: 'off' } }),
      field({ label: t('ui.patient.phone'), name: 'phone', type: 'tel',
        value: patient ? patient.phone || '' : '', attrs: { autocomplete: 'off' } })),
    patient ? null : h('fieldset', { class: 'consent' },
      h('legend', {}, t('ui.consent.title')),
      h('p', { class: 'hint muted' }, t('ui.consent.explain')),
      checkbox({ label: t('ui.consent.given'), name: 'consent_given', test: 'consent-given' }),
      consentBox),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary' },
        submitLabel || (patient ? t('ui.action.save') : t('ui.patient.create')))));
  const el = (name) => form.elements.namedItem(name);
  if (!patient) {
    el('consent_given').addEventListener('change', () => { consentBox.hidden = !el('consent_given').checked; });
  }
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (!checkRules(form, [[el('full_name'), (v) => v.length >= 2, t('ui.validation.full_name')]])) return;
    const body = {
      full_name: el('full_name').value.trim(),
      email: el('email').value.trim() || null,
      phone: el('phone').value.trim() || null,
    };
    if (!patient && el('consent_given').checked) {
      if (!checkRules(form, [[el('given_on'), filled, t('ui.validation.required')]])) return;
      body.consent = { given_on: el('given_on').value, method: form.elements.namedItem('method').value };
    }
    const submit = form.querySelector('[type=submit]');
    try {
      const saved = await busy(submit, null, () => (patient
        ? api(`/api/patients/${encodeURIComponent(patient.id)}`, { method: 'PATCH', body })
        : api('/api/patients', { method: 'POST', body })));
      if (onSaved) await onSaved(saved);
    } catch (error) {
      showApiError(form, error);
    }
  });
  return form;
}

/** A form recording a patient's consent. */
export function consentForm(ctx, patient, { onSaved, id } = {}) {
  const form = h('form', { novalidate: true, 'data-test': 'consent-form', id: id || null },
    h('p', {}, t('ui.consent.explain')),
    consentFields(nowIn(ctx.timezone).date));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const given = form.elements.namedItem('given_on');
    if (!checkRules(form, [[given, filled, t('ui.validation.required')]])) return;
    const body = { given_on: given.value, method: form.elements.namedItem('method').value };
    try {
      const saved = await api(`/api/patients/${encodeURIComponent(patient.id)}/consent`, { method: 'POST', body });
      if (onSaved) await onSaved(saved);
    } catch (error) {
      showApiError(form, error);
    }
  });
  return form;
}
