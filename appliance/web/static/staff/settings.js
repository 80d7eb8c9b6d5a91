// Settings (admins only): the practice profile, the vault's keys and the audit log.

import { api } from '/static/common/api.js';
import { h, clear } from '/static/common/dom.js';
import { t, has, formatShortDate, wallClock } from '/static/common/i18n.js';
import { busy, checkRules, clearErrors, confirmDialog, showApiError } from './forms.js';
import {
  parsePublicUrls, practiceFields, practiceRules, practiceValues, publicUrlsField,
} from './practice-fields.js';
import { proofDialog } from './account.js';
import { renderRecoveryConfirm } from './onboarding.js';

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
    keysSection(ctx),
    lockSection(ctx),
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

// A new recovery key (the old sheet opens nothing afterwards) and a re-key on demand; both ask
// for the password and, with two-factor login on, a current code.
function keysSection(ctx) {
  const box = h('div', {});
  const done = h('p', { class: 'notice ok', role: 'status', hidden: true });
  const proof = { needsCode: Boolean(ctx.user.totp_enabled), submitLabel: t('ui.account.totp_next') };
  const rotate = h('button', { type: 'button', 'data-test': 'rotate-recovery-key', onclick: () => proofDialog({
    ...proof, id: 'rotate-form', test: 'rotate-proof', title: t('ui.settings.rotate_title'),
    texts: [t('ui.settings.rotate_text')],
    send: async (body) => {
      const result = await api('/api/vault/recovery-key', { method: 'POST', body });
      clear(box);
      await renderRecoveryConfirm(box, { recoveryKey: result.recovery_key, onDone: () => clear(box) });
    },
  }) }, t('ui.settings.rotate_recovery_key'));
  const rekey = h('button', { type: 'button', 'data-test': 'rekey', onclick: () => proofDialog({
    ...proof, id: 'rekey-form', test: 'rekey-proof', title: t('ui.settings.rekey_title'),
    texts: [t('ui.settings.rekey_text')],
    send: async (body) => {
      await api('/api/vault/rekey', { method: 'POST', body });
      done.textContent = t('ui.settings.rekeyed');
      done.hidden = false;
    },
  }) }, t('ui.settings.rekey'));
  return h('section', { class: 'panel', 'aria-labelledby': 'settings-keys' },
    h('h2', { id: 'settings-keys' }, t('ui.settings.keys')),
    h('p', { class: 'muted' }, t('ui.settings.keys_intro')),
    h('div', { class: 'actions' }, rotate, rekey), done, box);
}

// Locking the box: at once, or once no call runs and nobody waits; the box also locks itself by
// the clock as the IT provider configured it.
function lockSection(ctx) {
  const { hours, idle_hours: idleHours } = ctx.session.box_lock;
  const rules = [
    hours ? t('ui.settings.lock_hours', { hours }) : null,
    idleHours ? t('ui.settings.lock_idle', { hours: idleHours }) : null,
  ].filter(Boolean);
  const state = h('p', { class: 'notice warn', role: 'status', 'data-test': 'lock-pending', hidden: true },
    t('ui.lock.pending'));
  const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const lockNow = h('button', { type: 'button', class: 'danger', 'data-test': 'lock-box' }, t('ui.settings.lock_now'));
  const callOff = h('button', { type: 'button', 'data-test': 'lock-cancel' }, t('ui.settings.lock_cancel'));
  const show = (pending) => {
    state.hidden = !pending;
    callOff.hidden = !pending;
    lockNow.hidden = pending;
  };
  const send = async (button, method) => {
    error.hidden = true;
    try {
      const result = await busy(button, null, () => api('/api/box/lock', { method }));
      // locked: this session ended with all others, and asking for it shows the login page
      // (which says why); otherwise the banner follows the answer
      if (!result.locked) show(result.pending);
      await ctx.refreshSession();
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
    }
  };
  lockNow.addEventListener('click', async () => {
    const ok = await confirmDialog({
      title: t('ui.settings.lock_title'), message: [t('ui.settings.lock_text')],
      confirmLabel: t('ui.settings.lock_now'), danger: true,
    });
    if (ok) await send(lockNow, 'POST');
  });
  callOff.addEventListener('click', () => send(callOff, 'DELETE'));
  show(ctx.session.box_lock.pending);
  return h('section', { class: 'panel', 'aria-labelledby': 'settings-lock' },
    h('h2', { id: 'settings-lock' }, t('ui.settings.lock')),
    h('p', { class: 'muted' }, t('ui.settings.lock_intro')),
    rules.length ? h('ul', { class: 'muted' }, rules.map((rule) => h('li', {}, rule)))
      : h('p', { class: 'muted' }, t('ui.settings.lock_manual_only')),
    state, h('div', { class: 'actions' }, lockNow, callOff), error);
}
