// The own account: change password, set up or switch off two-factor login (TOTP).

import { api } from '/static/common/api.js';
import { h, clear } from '/static/common/dom.js';
import { t } from '/static/common/i18n.js';
import {
  busy, checkRules, clearErrors, copyField, field, filled, openDialog, showApiError,
  showFieldError, showFormError,
} from './forms.js';

export async function render(root, ctx) {
  const totpBox = h('div', { class: 'totp' });
  root.append(
    h('div', { class: 'view-head' }, h('h1', { tabindex: '-1' }, t('ui.account.title'))),
    h('p', { class: 'muted' }, t('ui.account.intro', { name: ctx.user.display_name, username: ctx.user.username })),
    h('section', { class: 'panel', 'aria-labelledby': 'account-password' },
      h('h2', { id: 'account-password' }, t('ui.account.password')), passwordForm(ctx)),
    h('section', { class: 'panel', 'aria-labelledby': 'account-totp' },
      h('h2', { id: 'account-totp' }, t('ui.account.totp')), totpBox));
  renderTotp(totpBox, ctx);
}

function passwordForm(ctx) {
  const done = h('p', { class: 'notice ok', role: 'status', hidden: true });
  const form = h('form', { novalidate: true, 'data-test': 'password-form' },
    field({ label: t('ui.user.old_password'), name: 'old_password', type: 'password', required: true,
      attrs: { autocomplete: 'current-password' } }),
    field({ label: t('ui.user.new_password'), name: 'new_password', type: 'password', required: true,
      hint: t('ui.user.password_hint'), fields: ['new_password', 'password'],
      attrs: { autocomplete: 'new-password' } }),
    field({ label: t('ui.user.password_repeat'), name: 'password_repeat', type: 'password', required: true,
      attrs: { autocomplete: 'new-password' } }),
    done,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, t('ui.account.change_password'))));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    done.hidden = true;
    const el = (name) => form.elements.namedItem(name);
    if (!checkRules(form, [
      [el('old_password'), filled, t('ui.validation.required')],
      [el('new_password'), () => el('new_password').value.length >= 12, t('ui.validation.password_length')],
      [el('password_repeat'), () => el('password_repeat').value === el('new_password').value,
        t('ui.validation.password_mismatch')],
    ])) return;
    try {
      await busy(form.querySelector('[type=submit]'), t('ui.account.changing'), () => api(
        `/api/staff/${encodeURIComponent(ctx.user.username)}/password`,
        { method: 'POST', body: { old_password: el('old_password').value, new_password: el('new_password').value } }));
      form.reset();
      await ctx.refreshSession(); // a warning about the old password goes
      done.textContent = t('ui.account.password_changed');
      done.hidden = false;
    } catch (error) {
      if (error.code === 'authentication_failed') {
        showFieldError(form, el('old_password'), t('ui.account.old_password_wrong'));
        el('old_password').select();
      } else {
        showApiError(form, error);
      }
    }
  });
  return form;
}

function renderTotp(root, ctx) {
  clear(root);
  if (ctx.user.totp_enabled) {
    root.append(
      h('p', { class: 'notice ok' }, t('ui.account.totp_on')),
      h('div', { class: 'actions' },
        h('button', { type: 'button', 'data-test': 'totp-replace',
          onclick: () => beginTotp(root, ctx, true) }, t('ui.account.totp_replace')),
        h('button', { type: 'button', class: 'danger', 'data-test': 'totp-disable',
          onclick: () => disableTotp(root, ctx) }, t('ui.account.totp_disable'))));
    return;
  }
  const start = h('button', { type: 'button', class: 'primary', 'data-test': 'totp-begin',
    onclick: () => beginTotp(root, ctx, false) }, t('ui.account.totp_begin'));
  root.append(h('p', {}, t('ui.account.totp_off')), start);
}

/**
 * A dialog asking for the password and, while the second factor is on, a current code: every
 * change of the second factor needs them (an open session at an unattended PC is not enough).
 * Wrong ones count towards the lockout like a wrong login. `send(proof)` does the change.
 */
export function proofDialog({ id, title, texts, needsCode, submitLabel, danger, test, send }) {
  const form = h('form', { novalidate: true, id, 'data-test': test },
    ...texts.map((text, index) => h('p', { class: index ? 'muted' : null }, text)),
    field({ label: t('ui.account.totp_disable_password'), name: 'password', type: 'password',
      required: true, attrs: { autocomplete: 'current-password' } }),
    needsCode ? field({ label: t('ui.account.totp_code'), name: 'totp', required: true, narrow: true,
      fields: ['totp', 'totp_code'], hint: t('ui.account.totp_code_hint'),
      attrs: { inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: 10 } }) : null);
  const submit = h('button', { type: 'submit', class: danger ? ['primary', 'danger'] : 'primary', form: id },
    submitLabel);
  const cancel = h('button', { type: 'button', onclick: () => handle.close() }, t('ui.action.cancel_dialog'));
  const handle = openDialog({ title, body: [form], actions: [submit, cancel], test: `${test}-dialog` });
  const el = (name) => form.elements.namedItem(name);
  el('password').focus();
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const rules = [[el('password'), filled, t('ui.validation.required')]];
    if (needsCode) rules.push([el('totp'), (v) => /^\d{6,8}$/.test(v.replace(/\s/g, '')), t('ui.validation.totp')]);
    if (!checkRules(form, rules)) return;
    const proof = { password: el('password').value };
    if (needsCode) proof.totp = el('totp').value.replace(/\s/g, '');
    try {
      await busy(submit, null, () => send(proof));
      handle.close();
    } catch (error) {
      if (error.code === 'authentication_failed') {
        showFormError(form, t('ui.account.totp_disable_wrong'));
        el('password').value = '';
        if (needsCode) el('totp').value = '';
        el('password').focus();
      } else if (error.code === 'totp_required' || error.code === 'totp_reused') {
        showFieldError(form, el('totp'), error.message);
        el('totp').select();
      } else {
        showApiError(form, error);
      }
    }
  });
}

function beginTotp(root, ctx, replacing) {
  proofDialog({
    id: 'totp-begin-form', test: 'totp-begin-proof', needsCode: replacing,
    title: t(replacing ? 'ui.account.totp_replace_title' : 'ui.account.totp_begin_title'),
    texts: [t(replacing ? 'ui.account.totp_replace_text' : 'ui.account.totp_begin_text')],
    submitLabel: t('ui.account.totp_next'),
    send: async (proof) => {
      const setup = await api('/api/me/totp', { method: 'POST', body: proof });
      showSetup(root, ctx, setup, proof.password);
    },
  });
}

function disableTotp(root, ctx) {
  proofDialog({
    id: 'totp-off-form', test: 'totp-off', needsCode: true, danger: true,
    title: t('ui.account.totp_disable_title'),
    texts: [t('ui.account.totp_disable_text'), t('ui.account.totp_disable_confirm')],
    submitLabel: t('ui.account.totp_disable'),
    send: async (proof) => {
      await api('/api/me/totp', { method: 'DELETE', body: proof });
      await ctx.refreshSession();
      renderTotp(root, ctx);
    },
  });
}

function showSetup(root, ctx, setup, password) {
  clear(root);
  const grouped = setup.secret.replace(/(.{4})/g, '$1 ').trim();
  const form = h('form', { novalidate: true, 'data-test': 'totp-confirm' },
    field({ label: t('ui.account.totp_code'), name: 'code', required: true, narrow: true,
      fields: ['code', 'totp_code'], hint: t('ui.account.totp_code_hint'),
      attrs: { inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: 10 } }),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary' }, t('ui.account.totp_confirm')),
      h('button', { type: 'button', onclick: () => renderTotp(root, ctx) }, t('ui.action.cancel_dialog'))));
  root.append(
    h('ol', { class: 'totp-steps' },
      h('li', {}, t('ui.account.totp_step_app')),
      h('li', {}, t('ui.account.totp_step_secret'))),
    copyField({
      label: t('ui.account.totp_secret'), copyLabel: t('ui.copy.secret'), value: grouped,
      test: 'totp-secret', mono: true,
    }),
    h('details', {},
      h('summary', {}, t('ui.account.totp_uri')),
      h('p', { class: 'hint muted' }, t('ui.account.totp_uri_hint')),
      h('p', { class: 'mono wrap', 'data-test': 'totp-uri' }, setup.otpauth_uri)),
    h('p', {}, t('ui.account.totp_step_code')),
    form);
  form.elements.namedItem('code').focus();
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const code = form.elements.namedItem('code');
    if (!checkRules(form, [[code, (v) => /^\d{6,8}$/.test(v.replace(/\s/g, '')), t('ui.validation.totp')]])) return;
    try {
      await busy(form.querySelector('[type=submit]'), null, () => api('/api/me/totp/confirm',
        { method: 'POST', body: { code: code.value.replace(/\s/g, ''), password } }));
      await ctx.refreshSession();
      renderTotp(root, ctx);
    } catch (error) {
      showApiError(form, error);
    }
  });
}
