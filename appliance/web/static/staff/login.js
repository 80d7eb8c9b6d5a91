// The login page; the first login after a restart also opens the data vault.

import { api } from '/static/common/api.js';
import { h } from '/static/common/dom.js';
import { formatShortDate, formatTime, t } from '/static/common/i18n.js';
import { busy, clearErrors, checkRules, field, filled, showApiError, showFieldError } from './forms.js';

/** The login form; `onLoggedIn(session)` runs with the session the box answers. */
export function renderLogin(root, { status, notice, onLoggedIn }) {
  const totpField = field({
    label: t('ui.login.totp'), name: 'totp', hint: t('ui.login.totp_hint'), narrow: true,
    attrs: { autocomplete: 'one-time-code', inputmode: 'numeric', maxlength: 10 },
  });
  totpField.hidden = true;
  const form = h('form', { novalidate: true, 'data-test': 'login' },
    field({ label: t('ui.user.username'), name: 'username', required: true,
      attrs: { autocomplete: 'username', autocapitalize: 'off', spellcheck: 'false' } }),
    field({ label: t('ui.user.password'), name: 'password', type: 'password', required: true,
      attrs: { autocomplete: 'current-password' } }),
    totpField,
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary' }, t('ui.login.submit'))));
  root.append(h('div', { class: 'panel narrow-panel login' },
    h('h1', {}, t('ui.login.title')),
    notice ? h('p', { class: 'notice', role: 'status' }, notice) : null,
    status && status.sealed ? h('p', { class: 'notice', 'data-test': 'sealed-notice' },
      sealedNotice(status)) : null,
    form));
  const el = (name) => form.elements.namedItem(name);
  el('username').focus();

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (!checkRules(form, [[el('username'), filled, t('ui.validation.required')],
      [el('password'), filled, t('ui.validation.required')]])) return;
    const body = { username: el('username').value.trim(), password: el('password').value };
    if (!totpField.hidden && el('totp').value.trim()) body.totp = el('totp').value.replace(/\s/g, '');
    const submit = form.querySelector('[type=submit]');
    try {
      const session = await busy(submit, t('ui.login.busy'),
        () => api('/api/login', { method: 'POST', body }));
      await onLoggedIn(session);
    } catch (error) {
      if (error.code === 'totp_required') {
        const first = totpField.hidden;
        totpField.hidden = false;
        showFieldError(form, el('totp'), error.message);
        el('totp').focus();
        if (!first) el('totp').select();
        return;
      }
      showApiError(form, error);
      if (!error.field) el('password').select();
    }
  });
}

/** Why the vault is sealed: the box locked itself (when, why) or it started afresh. */
function sealedNotice(status) {
  if (!status.locked) return t('ui.login.sealed');
  const { at, reason } = status.locked;
  return t(`ui.login.locked_${reason}`, { date: formatShortDate(at), time: formatTime(at) });
}
