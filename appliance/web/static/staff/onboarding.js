// The onboarding wizard: practice, patient links, first admin, then the recovery key — or, for
// a box that replaces another, the practice restored from a backup (onboarding-restore.js).

import { api, setCsrf } from '/static/common/api.js';
import { h } from '/static/common/dom.js';
import { t } from '/static/common/i18n.js';
import {
  busy, checkbox, checkRules, clearErrors, controlFor, field, filled, showApiError,
  showFormError,
} from './forms.js';
import {
  parsePublicUrls, practiceFields, practiceRules, practiceValues, publicUrlsField,
} from './practice-fields.js';
import { restoreFromBackup } from './onboarding-restore.js';

const STEPS = ['ui.onboarding.step.practice', 'ui.onboarding.step.links',
  'ui.onboarding.step.admin', 'ui.onboarding.step.recovery'];

/**
 * The wizard; `onDone()` runs once the admin has confirmed the recovery sheet, `onRestored()`
 * once the practice is restored from a backup instead.
 */
export async function renderOnboarding(root, { onDone, onRestored, proposedUrls = [] }) {
  const stepList = h('ol', { class: 'steps' },
    STEPS.map((key, index) => h('li', { 'data-step': index + 1 },
      h('span', { class: 'step-number', 'aria-hidden': 'true' }, String(index + 1)), t(key))));
  const sections = [];

  const stepTitle = (index) => h('h2', { tabindex: '-1', class: 'step-title' },
    t('ui.onboarding.step_of', { step: index + 1, total: STEPS.length, name: t(STEPS[index]) }));

  // 1: practice
  const practiceForm = h('form', { novalidate: true, 'data-test': 'onboarding-practice' },
    await practiceFields(),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary' }, t('ui.action.next'))));
  practiceForm.addEventListener('submit', (event) => {
    event.preventDefault();
    clearErrors(practiceForm);
    if (checkRules(practiceForm, practiceRules(practiceForm))) show(2);
  });

  // 2: patient links
  const linksForm = h('form', { novalidate: true, 'data-test': 'onboarding-links' },
    h('p', {}, t('ui.onboarding.links_intro')),
    publicUrlsField(proposedUrls),
    h('div', { class: 'actions' },
      h('button', { type: 'button', onclick: () => show(1) }, t('ui.action.back')),
      h('button', { type: 'submit', class: 'primary' }, t('ui.action.next'))));
  linksForm.addEventListener('submit', (event) => {
    event.preventDefault();
    clearErrors(linksForm);
    const urls = linksForm.elements.namedItem('public_urls');
    const rules = [[urls, (v) => parsePublicUrls(v).length > 0, t('ui.validation.public_urls')],
      [urls, (v) => parsePublicUrls(v).every((url) => /^https?:\/\/[^/\s]+$/i.test(url)),
        t('ui.validation.public_urls_format')]];
    if (checkRules(linksForm, rules.slice(0, 1)) && checkRules(linksForm, rules.slice(1))) show(3);
  });

  // 3: first admin
  const lanrField = field({ label: t('ui.user.lanr'), name: 'lanr', hint: t('ui.user.lanr_hint'),
    narrow: true, fields: ['admin.lanr', 'lanr'], attrs: { inputmode: 'numeric', maxlength: 9 } });
  lanrField.hidden = true;
  const doctorBox = checkbox({ label: t('ui.onboarding.is_doctor'), name: 'is_doctor',
    fields: ['admin.is_doctor', 'is_doctor'] });
  const adminForm = h('form', { novalidate: true, 'data-test': 'onboarding-admin' },
    h('p', {}, t('ui.onboarding.admin_intro')),
    field({ label: t('ui.user.username'), name: 'username', required: true,
      hint: t('ui.user.username_hint'), narrow: true, fields: ['admin.username', 'username'],
      attrs: { autocomplete: 'username', autocapitalize: 'off', spellcheck: 'false' } }),
    field({ label: t('ui.user.display_name'), name: 'display_name', required: true,
      hint: t('ui.user.display_name_hint'), fields: ['admin.display_name', 'display_name'],
      attrs: { autocomplete: 'name' } }),
    field({ label: t('ui.user.password'), name: 'password', type: 'password', required: true,
      hint: t('ui.user.password_hint'), fields: ['admin.password', 'password'],
      attrs: { autocomplete: 'new-password' } }),
    field({ label: t('ui.user.password_repeat'), name: 'password_repeat', type: 'password',
      required: true, attrs: { autocomplete: 'new-password' } }),
    doctorBox,
    lanrField,
    h('div', { class: 'actions' },
      h('button', { type: 'button', onclick: () => show(2) }, t('ui.action.back')),
      h('button', { type: 'submit', class: 'primary', 'data-test': 'onboarding-submit' },
        t('ui.onboarding.submit'))));
  const isDoctor = adminForm.elements.namedItem('is_doctor');
  isDoctor.addEventListener('change', () => { lanrField.hidden = !isDoctor.checked; });
  adminForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(adminForm);
    const el = (name) => adminForm.elements.namedItem(name);
    const ok = checkRules(adminForm, [
      [el('username'), filled, t('ui.validation.required')],
      [el('display_name'), filled, t('ui.validation.required')],
      [el('password'), (v) => el('password').value.length >= 12, t('ui.validation.password_length')],
      [el('password_repeat'), () => el('password_repeat').value === el('password').value,
        t('ui.validation.password_mismatch')],
      [el('lanr'), (v) => /^\d{9}$/.test(v), t('ui.validation.lanr')],
    ]);
    if (!ok) return;
    const body = {
      practice: { ...practiceValues(practiceForm),
        public_urls: parsePublicUrls(linksForm.elements.namedItem('public_urls').value) },
      admin: {
        username: el('username').value.trim().toLowerCase(),
        display_name: el('display_name').value.trim(),
        password: el('password').value,
        is_doctor: isDoctor.checked,
        lanr: isDoctor.checked ? el('lanr').value.trim() : null,
      },
    };
    const submit = event.submitter || adminForm.querySelector('[type=submit]');
    try {
      const result = await busy(submit, t('ui.onboarding.submitting'),
        () => api('/api/onboarding', { method: 'POST', body }));
      show(4);
      await renderRecoveryConfirm(recoveryBox, { recoveryKey: result.recovery_key, onDone });
    } catch (error) {
      reportError(error);
    }
  });

  function reportError(error) {
    const forms = [practiceForm, linksForm, adminForm];
    const owner = forms.find((form) => controlFor(form, error.field));
    if (owner) {
      show(forms.indexOf(owner) + 1, false);
      showApiError(owner, error);
    } else {
      showFormError(adminForm, error.message);
    }
  }

  const recoveryBox = h('div', {});
  const bodies = [practiceForm, linksForm, adminForm, recoveryBox];
  bodies.forEach((body, index) => {
    sections.push(h('section', { class: 'wizard-step', 'data-step': index + 1, hidden: index > 0 },
      stepTitle(index), body));
  });

  function show(step, focus = true) {
    sections.forEach((section, index) => { section.hidden = index + 1 !== step; });
    for (const item of stepList.children) {
      const number = Number(item.dataset.step);
      if (number === step) item.setAttribute('aria-current', 'step');
      else item.removeAttribute('aria-current');
      item.classList.toggle('done', number < step);
    }
    if (focus) sections[step - 1].querySelector('.step-title').focus();
  }

  // the other path: this box replaces one whose backup the practice has
  const newPractice = h('div', {}, stepList, sections);
  const restore = h('div', { hidden: true });
  const pathChoice = h('div', { class: 'notice restore-offer' },
    h('p', {}, t('ui.restore.offer')),
    h('button', { type: 'button', 'data-test': 'restore-offer', onclick: () => choosePath(true) },
      t('ui.restore.offer_button')));
  function choosePath(restoring) {
    newPractice.hidden = restoring;
    pathChoice.hidden = restoring;
    restore.hidden = !restoring;
    if (restoring && !restore.firstChild) {
      restore.append(restoreFromBackup({ onRestored, onBack: () => choosePath(false) }));
    }
    (restoring ? restore.querySelector('.step-title') : sections[0].querySelector('.step-title')).focus();
  }

  root.append(h('div', { class: 'panel wizard', 'data-test': 'onboarding' },
    h('h1', {}, t('ui.onboarding.title')),
    h('p', { class: 'lead' }, t('ui.onboarding.intro')),
    pathChoice,
    newPractice,
    restore));
  show(1, false);
  practiceForm.querySelector('input').focus();
}

/**
 * The recovery key (if still known to this page), the printable sheet, and the required
 * confirmation that it is stored safely.
 */
export async function renderRecoveryConfirm(root, { recoveryKey, onDone }) {
  const form = h('form', { novalidate: true, 'data-test': 'recovery-confirm' },
    checkbox({ label: t('ui.recovery.confirm'), name: 'stored', test: 'recovery-stored' }),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary' }, t('ui.recovery.continue'))));
  const standalone = !root.closest('.wizard');
  root.append(h('div', { class: standalone ? 'panel narrow-panel' : 'recovery' },
    standalone ? h('h1', {}, t('ui.recovery.title')) : null,
    h('p', {}, t('ui.recovery.intro')),
    recoveryKey
      ? h('p', { class: 'recovery-key', 'data-test': 'recovery-key' }, recoveryKey)
      : h('p', { class: 'notice warn' }, t('ui.recovery.not_shown_again')),
    h('ul', { class: 'recovery-rules' },
      h('li', {}, t('ui.recovery.rule_print')),
      h('li', {}, t('ui.recovery.rule_safe')),
      h('li', {}, t('ui.recovery.rule_once'))),
    h('p', {}, h('a', {
      class: 'button', href: '/notfallblatt', target: '_blank', rel: 'noopener',
      'data-test': 'open-recovery-sheet',
    }, t('ui.recovery.open_sheet'))),
    form));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const stored = form.elements.namedItem('stored');
    if (!checkRules(form, [[stored, Boolean, t('ui.recovery.confirm_required')]])) return;
    const submit = form.querySelector('[type=submit]');
    try {
      await busy(submit, null, async () => {
        const session = await api('/api/session');
        setCsrf(session.csrf_token);
        await api('/api/onboarding/recovery-key-stored', { method: 'POST', body: { stored: true } });
      });
      await onDone();
    } catch (error) {
      showApiError(form, error);
    }
  });
}
