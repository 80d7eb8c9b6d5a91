// Users (admins only): list, add, change roles, reset password, remove.

import { api } from '/static/common/api.js';
import { h, clear } from '/static/common/dom.js';
import { t } from '/static/common/i18n.js';
import {
  busy, checkbox, checkRules, clearErrors, confirmDialog, field, filled, openDialog, showApiError,
} from './forms.js';

export const ROLES = ['doctor', 'assistant', 'admin'];

export async function render(root, ctx) {
  const list = h('div', { class: 'users-list' });
  root.append(
    h('div', { class: 'view-head' },
      h('h1', { tabindex: '-1' }, t('ui.users.title')),
      h('button', { type: 'button', class: 'primary', 'data-test': 'add-user', onclick: addUser },
        t('ui.users.add'))),
    h('p', { class: 'muted' }, t('ui.users.intro')),
    list);

  async function load() {
    try {
      renderList(await api('/api/staff'));
    } catch (error) {
      clear(list);
      list.append(h('p', { class: 'form-error', role: 'alert' }, error.message));
    }
  }

  function renderList(members) {
    clear(list);
    list.append(h('table', {},
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, t('ui.user.display_name')),
        h('th', { scope: 'col' }, t('ui.user.username')),
        h('th', { scope: 'col' }, t('ui.user.roles')),
        h('th', { scope: 'col' }, t('ui.user.lanr')),
        h('th', { scope: 'col' }, t('ui.user.totp')),
        h('th', { scope: 'col' }, t('ui.dashboard.col_actions')))),
      h('tbody', {}, members.map((member) => h('tr', { 'data-test': 'user-row', 'data-username': member.username },
        h('td', {}, h('strong', {}, member.display_name),
          member.username === ctx.user.username ? h('span', { class: 'muted' }, ` (${t('ui.users.you')})`) : null),
        h('td', { class: 'mono' }, member.username),
        h('td', {}, member.roles.map((role) => h('span', { class: 'badge role' }, t(`ui.role.${role}`)))),
        h('td', { class: 'mono' }, member.lanr || '–'),
        h('td', {}, member.totp_enabled ? t('ui.user.totp_on') : t('ui.user.totp_off')),
        h('td', { class: 'row-actions' },
          h('button', { type: 'button', class: 'small', onclick: () => editUser(member) }, t('ui.users.edit')),
          h('button', { type: 'button', class: 'small', onclick: () => resetPassword(member) },
            t('ui.users.reset_password')),
          member.username === ctx.user.username ? null
            : h('button', { type: 'button', class: 'small danger', onclick: () => removeUser(member) },
              t('ui.users.remove'))))))));
  }

  function roleFields(member) {
    const lanr = field({ label: t('ui.user.lanr'), name: 'lanr', hint: t('ui.user.lanr_hint'),
      value: member ? member.lanr || '' : '', narrow: true, attrs: { inputmode: 'numeric', maxlength: 9 } });
    const group = h('fieldset', { 'data-field': 'roles' },
      h('legend', {}, t('ui.user.roles')),
      ROLES.map((role) => checkbox({ label: t(`ui.role.${role}_long`), name: 'roles', value: role,
        checked: member ? member.roles.includes(role) : false, test: `role-${role}` })),
      h('p', { class: 'field-error', hidden: true, 'aria-live': 'polite' }));
    const syncLanr = () => {
      lanr.hidden = !group.querySelector('input[value="doctor"]').checked;
    };
    group.addEventListener('change', syncLanr);
    return { group, lanr, syncLanr };
  }

  function selectedRoles(form) {
    return [...form.querySelectorAll('input[name="roles"]:checked')].map((input) => input.value);
  }

  function roleRules(form) {
    const el = (name) => form.elements.namedItem(name);
    return [
      [form.querySelector('fieldset[data-field="roles"]'), () => selectedRoles(form).length > 0,
        t('ui.validation.roles')],
      [el('lanr'), (v) => /^\d{9}$/.test(v), t('ui.validation.lanr')],
    ];
  }

  function addUser() {
    const roles = roleFields(null);
    const form = h('form', { novalidate: true, id: 'add-user-form', 'data-test': 'add-user-form' },
      field({ label: t('ui.user.username'), name: 'username', required: true, hint: t('ui.user.username_hint'),
        narrow: true, attrs: { autocomplete: 'off', autocapitalize: 'off', spellcheck: 'false' } }),
      field({ label: t('ui.user.display_name'), name: 'display_name', required: true,
        hint: t('ui.user.display_name_hint'), attrs: { autocomplete: 'off' } }),
      roles.group, roles.lanr,
      field({ label: t('ui.user.password'), name: 'password', type: 'password', required: true,
        hint: t('ui.users.initial_password_hint'), attrs: { autocomplete: 'new-password' } }));
    roles.syncLanr();
    const save = h('button', { type: 'submit', class: 'primary', form: 'add-user-form' }, t('ui.users.add_submit'));
    const handle = openDialog({ title: t('ui.users.add'), body: [form], actions: [save], wide: true });
    form.elements.namedItem('username').focus();
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(form);
      const el = (name) => form.elements.namedItem(name);
      if (!checkRules(form, [
        [el('username'), filled, t('ui.validation.required')],
        [el('display_name'), filled, t('ui.validation.required')],
        ...roleRules(form),
        [el('password'), () => el('password').value.length >= 12, t('ui.validation.password_length')],
      ])) return;
      const chosen = selectedRoles(form);
      const body = {
        username: el('username').value.trim().toLowerCase(),
        display_name: el('display_name').value.trim(),
        roles: chosen,
        password: el('password').value,
        lanr: chosen.includes('doctor') ? el('lanr').value.trim() : null,
      };
      try {
        await busy(save, t('ui.users.adding'), () => api('/api/staff', { method: 'POST', body }));
        handle.close();
        load();
      } catch (error) {
        showApiError(form, error);
      }
    });
  }

  function editUser(member) {
    const roles = roleFields(member);
    const form = h('form', { novalidate: true, id: 'edit-user-form' },
      field({ label: t('ui.user.display_name'), name: 'display_name', required: true, value: member.display_name }),
      roles.group, roles.lanr);
    roles.syncLanr();
    const save = h('button', { type: 'submit', class: 'primary', form: 'edit-user-form' }, t('ui.action.save'));
    const handle = openDialog({
      title: t('ui.users.edit_title', { name: member.display_name }), body: [form], actions: [save], wide: true,
    });
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(form);
      const el = (name) => form.elements.namedItem(name);
      if (!checkRules(form, [[el('display_name'), filled, t('ui.validation.required')], ...roleRules(form)])) return;
      const chosen = selectedRoles(form);
      const body = {
        display_name: el('display_name').value.trim(),
        roles: chosen,
        lanr: chosen.includes('doctor') ? el('lanr').value.trim() : null,
      };
      try {
        await busy(save, null, () => api(`/api/staff/${encodeURIComponent(member.username)}`,
          { method: 'PATCH', body }));
        handle.close();
        if (member.username === ctx.user.username) await ctx.refreshSession();
        load();
      } catch (error) {
        showApiError(form, error);
      }
    });
  }

  function resetPassword(member) {
    const form = h('form', { novalidate: true, id: 'reset-password-form' },
      h('p', {}, t('ui.users.reset_text', { name: member.display_name })),
      field({ label: t('ui.user.new_password'), name: 'new_password', type: 'password', required: true,
        hint: t('ui.user.password_hint'), attrs: { autocomplete: 'new-password' } }),
      field({ label: t('ui.user.password_repeat'), name: 'password_repeat', type: 'password', required: true,
        attrs: { autocomplete: 'new-password' } }));
    const save = h('button', { type: 'submit', class: 'primary', form: 'reset-password-form' },
      t('ui.users.reset_password'));
    const handle = openDialog({
      title: t('ui.users.reset_title', { name: member.display_name }), body: [form], actions: [save],
    });
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(form);
      const el = (name) => form.elements.namedItem(name);
      if (!checkRules(form, [
        [el('new_password'), () => el('new_password').value.length >= 12, t('ui.validation.password_length')],
        [el('password_repeat'), () => el('password_repeat').value === el('new_password').value,
          t('ui.validation.password_mismatch')],
      ])) return;
      try {
        await busy(save, null, () => api(`/api/staff/${encodeURIComponent(member.username)}/password`,
          { method: 'POST', body: { new_password: el('new_password').value } }));
        handle.close();
        openDialog({ title: t('ui.users.reset_done_title'), body: [h('p', {}, t('ui.users.reset_done', { name: member.display_name }))] });
      } catch (error) {
        showApiError(form, error);
      }
    });
  }

  async function removeUser(member) {
    const ok = await confirmDialog({
      title: t('ui.users.remove_title', { name: member.display_name }),
      message: [t('ui.users.remove_text', { name: member.display_name }), t('ui.users.remove_vault')],
      confirmLabel: t('ui.users.remove'), danger: true,
    });
    if (!ok) return;
    try {
      await api(`/api/staff/${encodeURIComponent(member.username)}`, { method: 'DELETE' });
      load();
    } catch (error) {
      openDialog({ title: t('ui.error.title'), body: [h('p', { role: 'alert' }, error.message)] });
    }
  }

  await load();
}
