// The practice's backup (admins): per target where it goes, the last good copy (how old, how
// big), the last failure explained, the last verification, the next run and the repository's
// growth as the box draws it; "Jetzt sichern", "Jetzt prüfen", per target "Verbindung testen"
// (and "Anlegen" when the target is still empty) and "Entfernen" for targets added here; a form
// for new targets, and — when the box does not know its backups' password yet — the recovery
// key, once. A run in the background shows as a progress bar that follows the `backup` event.

import { api } from '/static/common/api.js';
import { h, clear } from '/static/common/dom.js';
import { t } from '/static/common/i18n.js';
import {
  busy, checkRules, clearErrors, confirmDialog, field, filled, showApiError,
} from './forms.js';
import { liveEvents } from './live-events.js';
import { ageText, momentText, percentText, sizeText } from './backup-texts.js';
import { credentialFields } from './backup-credentials.js';

const GROWTH = '/api/backup/growth.svg';
export async function render(root, ctx) {
  const loadError = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const keyPanel = h('div', {});
  const overview = h('section', { class: 'panel', 'data-test': 'backup-overview' });
  const list = h('div', { class: 'backup-list', 'data-test': 'backup-targets' });
  const image = h('img', {
    class: 'backup-growth', 'data-test': 'backup-growth', alt: t('ui.backup.growth_alt'),
  });
  const growth = h('section', { class: 'panel', 'aria-labelledby': 'backup-growth', hidden: true },
    h('h2', { id: 'backup-growth' }, t('ui.backup.growth_heading')), image);
  const live = liveEvents({ onBackup: () => load(), onReconnected: () => load() });

  root.append(
    h('div', { class: 'view-head' },
      h('h1', { tabindex: '-1' }, t('ui.backup.title')), live.element),
    h('p', { class: 'muted' }, t('ui.backup.intro')),
    loadError, keyPanel, overview, list, growth, addTargetForm(() => load()));

  let shownKey = null;

  function show(state) {
    if (state.password_known !== shownKey) {
      shownKey = state.password_known;
      clear(keyPanel);
      if (!state.password_known) keyPanel.append(recoveryKeyForm(() => load()));
    }
    clear(overview);
    overview.append(...overviewParts(state, ctx, () => load()));
    clear(list);
    if (state.targets.length === 0) {
      list.append(h('p', { class: 'notice', 'data-test': 'backup-none' }, t('ui.backup.none_configured')));
    }
    list.append(...state.targets.map((target) => targetCard(target, state, ctx, () => load())));
    const sized = state.targets.some((target) => target.sizes.length > 0);
    growth.hidden = !sized;
    // a new address each time: the browser fetches the image afresh (the box sends no-store)
    if (sized) image.src = `${GROWTH}?at=${Date.now()}`;
  }

  let loading = null;
  let again = false;
  async function load() {
    // events come in bursts while a run goes on: one request at a time, the last one wins
    if (loading) {
      again = true;
      return loading;
    }
    loading = (async () => {
      do {
        again = false;
        try {
          const state = await api('/api/backup');
          loadError.hidden = true;
          show(state);
        } catch (error) {
          loadError.textContent = error.message;
          loadError.hidden = false;
        }
      } while (again);
    })();
    try {
      await loading;
    } finally {
      loading = null;
    }
  }

  await load();
  live.connect();
  return () => live.close();
}

/** The schedule, the next run, the buttons and what runs now (or ran last). */
function overviewParts(state, ctx, reload) {
  const running = Boolean(state.activity && !state.activity.finished);
  const result = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const start = (kind) => async (event) => {
    result.hidden = true;
    try {
      await busy(event.currentTarget, null, () => api(`/api/backup/${kind}`, { method: 'POST', body: {} }));
    } catch (error) {
      result.textContent = error.message;
      result.hidden = false;
      return;
    }
    await reload();
  };
  const disabled = running || !state.password_known || state.targets.length === 0;
  const none = t('ui.backup.no_value');
  return [
    h('h2', {}, t('ui.backup.overview')),
    h('dl', { class: 'facts' },
      h('dt', {}, t('ui.backup.schedule')),
      h('dd', { 'data-test': 'backup-schedule' }, state.schedule
        ? t('ui.backup.schedule_daily', { time: state.schedule }) : t('ui.backup.schedule_manual')),
      h('dt', {}, t('ui.backup.next_run')),
      h('dd', { 'data-test': 'backup-next-run' }, state.next_run ? momentText(state.next_run, ctx.timezone) : none)),
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'primary', disabled, 'data-test': 'backup-run', onclick: start('run') },
        t('ui.backup.run')),
      h('button', { type: 'button', disabled, 'data-test': 'backup-verify', onclick: start('verify') },
        t('ui.backup.verify'))),
    result,
    state.activity ? activityPart(state.activity, ctx) : null,
  ];
}

/** A running activity as a progress bar; a finished one as its outcome. */
function activityPart(activity, ctx) {
  const kind = t(`ui.backup.activity.${activity.kind}`);
  if (!activity.finished) {
    const label = activity.target
      ? t('ui.backup.activity.running_target', { kind, target: activity.target })
      : t('ui.backup.activity.running', { kind });
    return h('div', { class: 'backup-activity', 'data-test': 'backup-activity', 'data-state': 'running' },
      h('p', { id: 'backup-progress-label' }, label, ' ', h('span', { 'data-test': 'backup-percent' },
        percentText(activity.share))),
      h('progress', {
        max: '1', value: String(activity.share), 'aria-labelledby': 'backup-progress-label',
        'data-test': 'backup-progress',
      }));
  }
  const when = momentText(activity.finished, ctx.timezone);
  return h('p', {
    class: ['notice', activity.ok ? 'ok' : 'warn', 'backup-activity'], role: 'status',
    'data-test': 'backup-activity', 'data-state': activity.ok ? 'ok' : 'failed',
  }, activity.ok ? t('ui.backup.activity.done', { kind, time: when })
    : t('ui.backup.activity.failed', { kind, time: when, detail: activity.detail }));
}

/** One target: where, from where configured, how it stands, and what can be done with it. */
function targetCard(target, state, ctx, reload) {
  const none = t('ui.backup.no_value');
  const fact = (label, value, test) => [h('dt', {}, label), h('dd', { 'data-test': test }, value)];
  const success = target.last_success;
  const failure = target.last_failure;
  const verification = target.last_verification;
  const answer = h('div', { class: 'backup-test-answer', 'data-test': 'backup-test-answer', hidden: true });
  const actions = h('div', { class: 'actions' },
    h('button', {
      type: 'button', class: 'small', disabled: !state.password_known, 'data-test': 'backup-test',
      onclick: (event) => testTarget(event.currentTarget, target, answer),
    }, t('ui.backup.test')),
    target.source === 'box' ? h('button', {
      type: 'button', class: 'small danger', 'data-test': 'backup-remove',
      onclick: (event) => removeTarget(event.currentTarget, target, answer, reload),
    }, t('ui.backup.remove')) : null);
  const healthy = success && !failure;
  return h('section', {
    class: ['panel', 'backup-target', healthy ? 'backup-ok' : 'backup-attention'],
    'data-test': 'backup-target', 'data-target': target.name,
  },
  h('h2', { class: 'uplink-head' },
    h('span', {}, target.name),
    h('span', { class: 'muted backup-source' }, t(`ui.backup.source.${target.source}`))),
  h('dl', { class: 'facts' },
    fact(t('ui.backup.url'), target.url, 'backup-url'),
    fact(t('ui.backup.last_success'), success
      ? t('ui.backup.last_success_value', { age: ageText(success.at), time: momentText(success.at, ctx.timezone) })
      : t('ui.backup.never'), 'backup-last-success'),
    success ? fact(t('ui.backup.size'), t('ui.backup.size_value', {
      size: sizeText(success.bytes), files: success.files, added: sizeText(success.data_added),
    }), 'backup-size') : null,
    target.sizes.length ? fact(t('ui.backup.repository_size'),
      sizeText(target.sizes[target.sizes.length - 1][1]), 'backup-repository-size') : null,
    fact(t('ui.backup.last_verification'), verification
      ? t(verification.ok ? 'ui.backup.verification_ok' : 'ui.backup.verification_fault', {
        time: momentText(verification.at, ctx.timezone), detail: verification.detail,
      }) : none, 'backup-last-verification')),
  failure ? h('div', { class: 'notice warn', 'data-test': 'backup-failure' },
    h('strong', {}, t('ui.backup.last_failure', { time: momentText(failure.at, ctx.timezone) })), ' ',
    failure.detail) : null,
  actions, answer);
}

async function testTarget(button, target, answer) {
  clear(answer);
  answer.hidden = true;
  let result;
  try {
    result = await busy(button, t('ui.backup.testing'),
      () => api('/api/backup/test', { method: 'POST', body: { target: target.name } }));
  } catch (error) {
    answer.append(h('p', { class: 'form-error', role: 'alert' }, error.message));
    answer.hidden = false;
    return;
  }
  answer.dataset.state = result.state;
  answer.append(h('p', {
    class: ['notice', result.state === 'ok' ? 'ok' : 'warn'], role: 'status',
  }, t(`ui.backup.test_state.${result.state}`), ' ', result.detail));
  if (result.state === 'empty') {
    answer.append(h('p', { class: 'hint' }, t('ui.backup.init_hint')),
      h('button', {
        type: 'button', class: 'primary small', 'data-test': 'backup-init',
        onclick: async (event) => {
          try {
            await busy(event.currentTarget, t('ui.backup.initialising'),
              () => api('/api/backup/init', { method: 'POST', body: { target: target.name } }));
          } catch (error) {
            answer.append(h('p', { class: 'form-error', role: 'alert' }, error.message));
            return;
          }
          clear(answer);
          answer.dataset.state = 'ok';
          answer.append(h('p', { class: 'notice ok', role: 'status' }, t('ui.backup.initialised')));
        },
      }, t('ui.backup.init')));
  }
  answer.hidden = false;
}

async function removeTarget(button, target, answer, reload) {
  const sure = await confirmDialog({
    title: t('ui.backup.remove_title', { name: target.name }),
    message: t('ui.backup.remove_text'), confirmLabel: t('ui.backup.remove'), danger: true,
  });
  if (!sure) return;
  try {
    await busy(button, null, () => api(`/api/backup/targets/${encodeURIComponent(target.name)}`,
      { method: 'DELETE' }));
  } catch (error) {
    clear(answer);
    answer.append(h('p', { class: 'form-error', role: 'alert' }, error.message));
    answer.hidden = false;
    return;
  }
  await reload();
}

/** A new target: name, where, and its access data (which stay on the box). */
function addTargetForm(reload) {
  const access = credentialFields();
  const form = h('form', { novalidate: true, 'data-test': 'backup-add' },
    h('p', { class: 'muted' }, t('ui.backup.add.intro')),
    field({ label: t('ui.backup.add.name'), name: 'name', required: true, narrow: true,
      hint: t('ui.backup.add.name_hint'),
      attrs: { autocapitalize: 'off', spellcheck: 'false', maxlength: 32, autocomplete: 'off' } }),
    field({ label: t('ui.backup.add.url'), name: 'url', required: true,
      hint: t('ui.backup.add.url_hint'),
      attrs: { autocapitalize: 'off', spellcheck: 'false', maxlength: 500, autocomplete: 'off' } }),
    access.element,
    h('p', { class: 'hint' }, t('ui.backup.add.secrets_stay')),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary' }, t('ui.backup.add.submit'))));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const el = (name) => form.elements.namedItem(name);
    const rules = [
      [el('name'), (v) => /^[a-z0-9][a-z0-9_-]{0,31}$/.test(v), t('ui.backup.add.name_rule')],
      [el('url'), filled, t('ui.validation.required')],
      ...access.controls().map((input) => [input, filled, t('ui.validation.required')]),
    ];
    if (!checkRules(form, rules)) return;
    const credentials = access.values();
    const submit = form.querySelector('[type=submit]');
    try {
      await busy(submit, null, () => api('/api/backup/targets', { method: 'POST', body: {
        name: el('name').value.trim(), url: el('url').value.trim(), credentials,
      } }));
    } catch (error) {
      showApiError(form, error);
      return;
    } finally {
      access.clear();
    }
    form.reset();
    access.reset();
    await reload();
  });
  return h('section', { class: 'panel', 'aria-labelledby': 'backup-add-heading' },
    h('h2', { id: 'backup-add-heading' }, t('ui.backup.add.title')), form);
}

/** The recovery key, once: the box derives its backups' password from it and forgets the key. */
function recoveryKeyForm(reload) {
  const form = h('form', { novalidate: true, 'data-test': 'backup-key' },
    h('p', {}, t('ui.backup.key.intro')),
    field({ label: t('ui.backup.key.label'), name: 'recovery_key', type: 'password', required: true,
      hint: t('ui.backup.key.hint'), attrs: { autocomplete: 'off', spellcheck: 'false' } }),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary' }, t('ui.backup.key.submit'))));
  const input = form.elements.namedItem('recovery_key');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (!checkRules(form, [[input, filled, t('ui.validation.required')]])) return;
    const submit = form.querySelector('[type=submit]');
    try {
      await busy(submit, null, () => api('/api/backup/key', {
        method: 'POST', body: { recovery_key: input.value.trim() },
      }));
    } catch (error) {
      showApiError(form, error);
      return;
    } finally {
      input.value = ''; // the key is not kept in the page, whatever the answer
    }
    await reload();
  });
  return h('section', { class: 'panel notice warn', 'aria-labelledby': 'backup-key-heading' },
    h('h2', { id: 'backup-key-heading' }, t('ui.backup.key.title')), form);
}
