// The onboarding wizard's other path: a new box takes over a practice from one of its backups.
// Where the backup lies (and its access data), the recovery key from the emergency sheet, the
// backups found there to choose from, then the restore with its progress. Success leads to the
// login page (everyone keeps their password); a failure says why and leaves the box unchanged.

import { api } from '/static/common/api.js';
import { h, clear } from '/static/common/dom.js';
import { t } from '/static/common/i18n.js';
import { busy, checkRules, clearErrors, field, filled, showApiError, showFormError } from './forms.js';
import { credentialFields } from './backup-credentials.js';
import { momentText, percentText } from './backup-texts.js';

const POLL_MS = 1000;
// a new box knows no practice yet: its backups' times are shown on German time
const ZONE = 'Europe/Berlin';

/** The restore path; `onRestored()` runs once the box holds the practice again. */
export function restoreFromBackup({ onRestored, onBack }) {
  const access = credentialFields();
  const sourceForm = h('form', { novalidate: true, 'data-test': 'restore-source' },
    h('p', {}, t('ui.restore.intro')),
    field({ label: t('ui.restore.url'), name: 'url', required: true, hint: t('ui.restore.url_hint'),
      attrs: { autocapitalize: 'off', spellcheck: 'false', maxlength: 500, autocomplete: 'off' } }),
    access.element,
    field({ label: t('ui.restore.recovery_key'), name: 'recovery_key', required: true,
      hint: t('ui.restore.recovery_key_hint'),
      attrs: { autocapitalize: 'characters', spellcheck: 'false', autocomplete: 'off' } }),
    h('p', { class: 'hint' }, t('ui.restore.secrets_stay')),
    h('div', { class: 'actions' },
      h('button', { type: 'button', onclick: () => onBack() }, t('ui.restore.back')),
      h('button', { type: 'submit', class: 'primary', 'data-test': 'restore-list' }, t('ui.restore.list'))));
  const choice = h('div', { hidden: true, 'data-test': 'restore-choice' });
  const progress = h('div', { hidden: true, 'data-test': 'restore-progress' });
  // the key and the access data between "show backups" and "restore"; dropped after that
  let source = null;

  sourceForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(sourceForm);
    const el = (name) => sourceForm.elements.namedItem(name);
    const rules = [[el('url'), filled, t('ui.validation.required')],
      [el('recovery_key'), (v) => v.replace(/[\s-]/g, '').length >= 20, t('ui.restore.recovery_key_rule')],
      ...access.controls().map((input) => [input, filled, t('ui.validation.required')])];
    if (!checkRules(sourceForm, rules)) return;
    const asked = { url: el('url').value.trim(), recovery_key: el('recovery_key').value.trim(),
      credentials: access.values() };
    let snapshots;
    try {
      snapshots = await busy(sourceForm.querySelector('[type=submit]'),
        t('ui.restore.listing'), () => api('/api/onboarding/restore/snapshots', { method: 'POST', body: asked }));
    } catch (error) {
      showApiError(sourceForm, error);
      return;
    }
    // the key opened the backup: it does not stay in the form
    el('recovery_key').value = '';
    access.clear();
    source = asked;
    showChoice(snapshots);
  });

  function showChoice(snapshots) {
    clear(choice);
    sourceForm.hidden = true;
    choice.hidden = false;
    if (snapshots.length === 0) {
      choice.append(h('p', { class: 'notice warn' }, t('ui.restore.none_found')),
        h('div', { class: 'actions' }, h('button', { type: 'button', onclick: startOver }, t('ui.restore.other_source'))));
      return;
    }
    const newestFirst = [...snapshots].reverse();
    const form = h('form', { novalidate: true },
      h('fieldset', { class: 'radios' },
        h('legend', {}, t('ui.restore.choose')),
        h('ul', { class: 'restore-snapshots' }, newestFirst.map((snapshot, index) => {
          const id = `restore-snapshot-${snapshot.short_id}`;
          return h('li', { class: 'check' },
            h('input', { type: 'radio', name: 'snapshot', id, value: snapshot.id, checked: index === 0,
              'data-test': 'restore-snapshot' }),
            h('label', { for: id }, t(index === 0 ? 'ui.restore.snapshot_newest' : 'ui.restore.snapshot', {
              time: momentText(snapshot.time, ZONE), id: snapshot.short_id,
            })));
        }))),
      h('p', { class: 'hint' }, t('ui.restore.choose_hint')),
      h('div', { class: 'actions' },
        h('button', { type: 'button', onclick: startOver }, t('ui.restore.other_source')),
        h('button', { type: 'submit', class: 'primary', 'data-test': 'restore-start' }, t('ui.restore.start'))));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(form);
      const chosen = form.querySelector('input[name=snapshot]:checked');
      if (!chosen || !source) return;
      try {
        await busy(form.querySelector('[type=submit]'), null, () => api(
          '/api/onboarding/restore', { method: 'POST', body: { ...source, snapshot: chosen.value } }));
      } catch (error) {
        showFormError(form, error.message);
        return;
      }
      source = null;
      follow();
    });
    choice.append(form);
  }

  function startOver() {
    source = null;
    clear(choice);
    choice.hidden = true;
    progress.hidden = true;
    sourceForm.hidden = false;
    sourceForm.querySelector('input').focus();
  }

  /** The restore's progress, asked for every second until it ends. */
  function follow() {
    choice.hidden = true;
    clear(progress);
    const label = h('p', { id: 'restore-progress-label' }, t('ui.restore.running'), ' ',
      h('span', { 'data-test': 'restore-percent' }, percentText(0)));
    const bar = h('progress', { max: '1', value: '0', 'aria-labelledby': 'restore-progress-label' });
    progress.append(label, bar, h('p', { class: 'hint' }, t('ui.restore.running_hint')));
    progress.hidden = false;
    const tick = async () => {
      let activity;
      try {
        activity = await api('/api/onboarding/restore');
      } catch {
        setTimeout(tick, POLL_MS); // the box is busy restoring: ask again
        return;
      }
      if (activity && !activity.finished) {
        bar.value = activity.share;
        label.lastChild.textContent = percentText(activity.share);
        setTimeout(tick, POLL_MS);
        return;
      }
      if (activity && activity.ok) {
        bar.value = 1;
        await onRestored();
        return;
      }
      clear(progress);
      progress.append(h('div', { class: 'notice warn', role: 'alert', 'data-test': 'restore-failed' },
        h('p', {}, h('strong', {}, t('ui.restore.failed'))),
        h('p', {}, activity ? activity.detail : ''),
        h('p', {}, t('ui.restore.nothing_changed'))),
      h('div', { class: 'actions' }, h('button', { type: 'button', onclick: startOver }, t('ui.restore.try_again'))));
    };
    tick();
  }

  return h('div', { class: 'restore', 'data-test': 'restore' },
    h('h2', { tabindex: '-1', class: 'step-title' }, t('ui.restore.title')),
    sourceForm, choice, progress);
}
