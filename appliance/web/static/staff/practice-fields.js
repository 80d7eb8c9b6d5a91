// The practice profile fields, shared by the onboarding wizard and the settings view.

import { api } from '/static/common/api.js';
import { h } from '/static/common/dom.js';
import { t } from '/static/common/i18n.js';
import { field, filled } from './forms.js';

export const DEFAULT_TIMEZONE = 'Europe/Berlin';
export const PUBLIC_URL_EXAMPLE = 'https://videosprechstunde.praxis-beispiel.de';

let regions = null;

/** The 17 KV regions from the box (cached). */
export async function kvRegions() {
  if (!regions) regions = await api('/api/kv-regions');
  return regions;
}

/** Name, BSNR, address, KV region and time zone; `profile` pre-fills them. */
export async function practiceFields(profile = {}) {
  const options = [{ value: '', label: t('ui.form.choose'), disabled: true },
    ...(await kvRegions()).map((region) => ({ value: region.code, label: region.name }))];
  return [
    field({ label: t('ui.practice.name'), name: 'name', required: true, value: profile.name,
      fields: ['practice.name', 'name'], attrs: { autocomplete: 'organization' } }),
    field({ label: t('ui.practice.bsnr'), name: 'bsnr', required: true, value: profile.bsnr,
      hint: t('ui.practice.bsnr_hint'), narrow: true, fields: ['practice.bsnr', 'bsnr'],
      attrs: { inputmode: 'numeric', maxlength: 9, autocomplete: 'off' } }),
    field({ label: t('ui.practice.street'), name: 'street', required: true, value: profile.street,
      fields: ['practice.street', 'street'], attrs: { autocomplete: 'street-address' } }),
    h('div', { class: 'field-row' },
      field({ label: t('ui.practice.postal_code'), name: 'postal_code', required: true,
        value: profile.postal_code, narrow: true, fields: ['practice.postal_code', 'postal_code'],
        attrs: { inputmode: 'numeric', maxlength: 5, autocomplete: 'postal-code' } }),
      field({ label: t('ui.practice.city'), name: 'city', required: true, value: profile.city,
        fields: ['practice.city', 'city'], attrs: { autocomplete: 'address-level2' } })),
    field({ label: t('ui.practice.kv_region'), name: 'kv_region', type: 'select', required: true,
      value: profile.kv_region || '', options, fields: ['practice.kv_region', 'kv_region'] }),
    field({ label: t('ui.practice.timezone'), name: 'timezone', required: true,
      value: profile.timezone || DEFAULT_TIMEZONE, hint: t('ui.practice.timezone_hint'),
      narrow: true, fields: ['practice.timezone', 'timezone'] }),
  ];
}

/** The patient-link addresses, one per line. */
export function publicUrlsField(urls = []) {
  return field({
    label: t('ui.practice.public_urls'), name: 'public_urls', type: 'textarea', required: true,
    value: urls.join('\n'), hint: t('ui.practice.public_urls_hint'),
    fields: ['practice.public_urls', 'public_urls'],
    attrs: { placeholder: PUBLIC_URL_EXAMPLE, spellcheck: 'false', autocapitalize: 'off' },
  });
}

/** The addresses typed into the textarea: trimmed, https:// added to bare host names. */
export function parsePublicUrls(text) {
  return text.split(/[\s,]+/).map((line) => line.trim()).filter(Boolean)
    .map((line) => (/^[a-z][a-z0-9+.-]*:\/\//i.test(line) ? line : `https://${line}`))
    .map((line) => line.replace(/\/+$/, ''));
}

/** Client-side checks of the profile fields: [control, predicate, message] rules. */
export function practiceRules(form) {
  const el = (name) => form.elements.namedItem(name);
  return [
    [el('name'), filled, t('ui.validation.required')],
    [el('bsnr'), (v) => /^\d{9}$/.test(v), t('ui.validation.bsnr')],
    [el('street'), filled, t('ui.validation.required')],
    [el('postal_code'), (v) => /^\d{5}$/.test(v), t('ui.validation.postal_code')],
    [el('city'), filled, t('ui.validation.required')],
    [el('kv_region'), filled, t('ui.validation.choose')],
    [el('timezone'), filled, t('ui.validation.required')],
  ];
}

/** The profile as the API wants it, from a form holding these fields. */
export function practiceValues(form) {
  const value = (name) => form.elements.namedItem(name).value.trim();
  return {
    name: value('name'),
    bsnr: value('bsnr'),
    street: value('street'),
    postal_code: value('postal_code'),
    city: value('city'),
    kv_region: value('kv_region'),
    timezone: value('timezone') || DEFAULT_TIMEZONE,
  };
}
