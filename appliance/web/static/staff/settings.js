// Settings (admins only): the practice profile and the audit log.

import { api } from '/static/common/api.js';
import { h, clear } from '/static/common/dom.js';
import { t, has, formatShortDate, wallClock } from '/static/common/i18n.js';
import { busy, checkRules, clearErrors, showApiError } from './forms.js';
import {
  parsePublicUrls, practiceFields, practiceRules, practiceValues, publicUrlsField,
} from './practice-fields.js';

export async function render(root, ctx) {
  const profile = await api('/api/practice');
  const saved = h('p', { class: 'notice ok', role: 'status', hidden: true });
  const form = h('form', { novalidate: true, 'data-test': 'practice-form' },
    await practiceFields(profile),
    publicUrlsField(profile.public_urls || []),
    saved,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, t('ui.action.save'))));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    saved.hidden = true;
    const urls = form.elements.namedItem('public_urls');
    if (!checkRules(form, [...practiceRules(form),
      [urls, (v) => parsePublicUrls(v).length > 0, t('ui.validation.public_urls')]])) return;
    const body = { ...practiceValues(form), public_urls: parsePublicUrls(urls.value) };
    try {
      const result = await busy(form.querySelector('[type=submit]'), null,
        () => api('/api/practice', { method: 'PUT', body }));
      urls.value = result.public_urls.join('\n');
      saved.textContent = t('ui.settings.saved');
      saved.hidden = false;
      await ctx.refreshSession();
    } catch (error) {
      showApiError(form, error);
    }
  });

  const audit = h('div', { class: 'audit' });
  root.append(
    h('div', { class: 'view-head' }, h('h1', { tabindex: '-1' }, t('ui.settings.title'))),
    h('section', { class: 'panel', 'aria-labelledby': 'settings-practice' },
      h('h2', { id: 'settings-practice' }, t('ui.settings.practice')), form),
    h('section', { class: 'panel', 'aria-labelledby': 'settings-audit' },
      h('h2', { id: 'settings-audit' }, t('ui.settings.audit')),
      h('p', { class: 'muted' }, t('ui.settings.audit_intro')),
      audit));
  try {
    const [entries, chain] = await Promise.all([api('/api/audit'), api('/api/audit/verify')]);
    renderAudit(audit, entries);
    audit.prepend(h('p', {
      class: chain.ok ? 'audit-chain ok' : 'audit-chain broken form-error',
      role: chain.ok ? 'status' : 'alert', 'data-test': 'audit-chain',
    }, chain.ok ? t('ui.settings.audit_chain_ok', { count: chain.checked })
      : t('ui.settings.audit_chain_broken', { seq: chain.broken_at })));
  } catch (error) {
    audit.append(h('p', { class: 'form-error', role: 'alert' }, error.message));
  }
}

function renderAudit(root, entries) {
  clear(root);
  if (entries.length === 0) {
    root.append(h('p', { class: 'muted' }, t('ui.settings.audit_empty')));
    return;
  }
  const sorted = [...entries].sort((a, b) => b.seq - a.seq);
  root.append(h('table', { class: 'audit-table', 'data-test': 'audit' },
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, t('ui.settings.audit_seq')),
      h('th', { scope: 'col' }, t('ui.settings.audit_at')),
      h('th', { scope: 'col' }, t('ui.settings.audit_actor')),
      h('th', { scope: 'col' }, t('ui.settings.audit_action')),
      h('th', { scope: 'col' }, t('ui.settings.audit_target')))),
    h('tbody', {}, sorted.map((entry) => h('tr', {},
      h('td', { class: 'mono' }, String(entry.seq)),
      h('td', { class: 'nowrap' }, `${formatShortDate(entry.at)} ${wallClock(entry.at)?.time || ''}`),
      h('td', { class: 'mono' }, entry.actor),
      h('td', {}, auditAction(entry.action)),
      h('td', { class: 'mono muted' }, entry.target || '–'))))));
}

function auditAction(action) {
  const key = `ui.audit.${action}`;
  return has(key) ? t(key) : action;
}
