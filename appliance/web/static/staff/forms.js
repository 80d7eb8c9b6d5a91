// Form parts of the staff site: labelled fields, errors next to the field the box names,
// modal dialogs and copy buttons.

import { h, uid } from '/static/common/dom.js';
import { t } from '/static/common/i18n.js';

/**
 * A labelled input: {label, name, type, value, required, hint, fields, attrs, options, rows}.
 * `fields` are the names the box may use for it in an error's `field` (default: name).
 */
export function field({
  label, name, type = 'text', value = '', required = false, hint, fields, attrs = {},
  options, rows, narrow = false, test,
}) {
  const id = uid(`f-${name}`);
  const hintId = hint ? `${id}-hint` : null;
  const errorId = `${id}-error`;
  const common = {
    id, name, required, 'aria-describedby': [hintId, errorId].filter(Boolean).join(' '),
    'data-field': (fields || [name]).join(' '), 'data-test': test || null, ...attrs,
  };
  let control;
  if (type === 'select') {
    control = h('select', common, (options || []).map((option) =>
      h('option', { value: option.value, disabled: option.disabled }, option.label)));
    control.value = value ?? '';
  } else if (type === 'textarea') {
    control = h('textarea', { ...common, rows: rows || 3 });
    control.value = value ?? '';
  } else {
    control = h('input', { ...common, type, value: value ?? '' });
  }
  return h('div', { class: ['field', narrow && 'narrow'] },
    h('label', { for: id }, label),
    hint ? h('p', { class: 'hint', id: hintId }, hint) : null,
    control,
    h('p', { class: 'field-error', id: errorId, hidden: true, 'aria-live': 'polite' }));
}

/** A checkbox with its label to the right: {label, name, checked, fields, test}. */
export function checkbox({ label, name, checked = false, fields, test, value }) {
  const id = uid(`c-${name}`);
  const errorId = `${id}-error`;
  return h('div', { class: 'check-field' },
    h('div', { class: 'check' },
      h('input', {
        type: 'checkbox', id, name, checked, value: value ?? null,
        'aria-describedby': errorId, 'data-field': (fields || [name]).join(' '),
        'data-test': test || null,
      }),
      h('label', { for: id }, label)),
    h('p', { class: 'field-error', id: errorId, hidden: true, 'aria-live': 'polite' }));
}

/** A group of radio buttons: {legend, name, options: [{value,label}], value}. */
export function radios({ legend, name, options, value, fields }) {
  return h('fieldset', { class: 'radios', 'data-field': (fields || [name]).join(' ') },
    h('legend', {}, legend),
    options.map((option) => {
      const id = uid(`r-${name}`);
      return h('div', { class: 'check' },
        h('input', { type: 'radio', id, name, value: option.value, checked: option.value === value }),
        h('label', { for: id }, option.label));
    }));
}

/** The form-level error box (role=alert) of `form`, created on first use. */
function formErrorBox(form) {
  let box = form.querySelector(':scope > .form-error');
  if (!box) {
    box = h('p', { class: 'form-error', role: 'alert', hidden: true, 'data-test': 'form-error' });
    form.prepend(box);
  }
  return box;
}

/** Hide every error message in `form`. */
export function clearErrors(form) {
  for (const el of form.querySelectorAll('.field-error, .form-error')) {
    el.hidden = true;
    el.textContent = '';
  }
  for (const el of form.querySelectorAll('.has-error')) el.classList.remove('has-error');
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
}

/** The control in `form` that the box's `field` (e.g. "practice.bsnr", "public_urls[0]") names. */
export function controlFor(form, fieldName) {
  if (!fieldName) return null;
  const plain = String(fieldName).replace(/\[\d+\]/g, '');
  const last = plain.split('.').pop();
  for (const candidate of [plain, last]) {
    for (const el of form.querySelectorAll('[data-field]')) {
      if (el.dataset.field.split(' ').includes(candidate)) return el;
    }
  }
  return null;
}

/** Show `message` next to the control named `fieldName`; false if `form` has no such control. */
export function showFieldError(form, fieldName, message) {
  const control = typeof fieldName === 'string' ? controlFor(form, fieldName) : fieldName;
  if (!control) return false;
  const wrapper = control.closest('.field, .check-field, fieldset') || control.parentElement;
  wrapper.classList.add('has-error');
  const target = wrapper.querySelector(':scope > .field-error') || wrapper.querySelector('.field-error');
  if (control.matches('input, select, textarea')) control.setAttribute('aria-invalid', 'true');
  if (target) {
    target.textContent = message;
    target.hidden = false;
  } else {
    showFormError(form, message);
  }
  return true;
}

/** Show `message` at the top of `form`. */
export function showFormError(form, message) {
  const box = formErrorBox(form);
  box.textContent = message;
  box.hidden = false;
  box.scrollIntoView({ block: 'nearest' });
}

/**
 * Show an API error: next to the field it names (its internal name replaced by the label the
 * person sees), else at the top of the form. Returns the control it was shown at, if any.
 */
export function showApiError(form, error) {
  const control = controlFor(form, error.field);
  if (control) {
    const label = labelText(control);
    const message = label && error.field ? error.message.split(error.field).join(label) : error.message;
    showFieldError(form, control, message);
    focusControl(control);
    return control;
  }
  showFormError(form, error.message);
  return null;
}

/** The visible label text of a control (without the "required" note). */
export function labelText(control) {
  if (control.tagName === 'FIELDSET') return control.querySelector('legend')?.textContent || '';
  const label = control.id ? control.ownerDocument.querySelector(`label[for="${control.id}"]`) : null;
  if (!label) return '';
  return [...label.childNodes].filter((node) => node.nodeType === Node.TEXT_NODE)
    .map((node) => node.textContent).join('').trim();
}

/** Focus a control (or the first input of a fieldset). */
export function focusControl(control) {
  const target = control.matches('fieldset') ? control.querySelector('input, select, textarea') : control;
  if (target) target.focus();
}

/**
 * Check required fields and simple patterns before asking the box. `rules` is a list of
 * [control, predicate(value) → bool, message]. Returns true if all pass.
 */
export function checkRules(form, rules) {
  let first = null;
  for (const [control, ok, message] of rules) {
    if (!control || control.closest('[hidden]')) continue;
    const value = control.type === 'checkbox' ? control.checked : String(control.value ?? '').trim();
    if (!ok(value)) {
      showFieldError(form, control, message);
      first = first || control;
    }
  }
  if (first) focusControl(first);
  return first === null;
}

export const filled = (value) => Boolean(value);

/** Put a button into its busy state (disabled, other text) until the promise settles. */
export async function busy(button, text, work) {
  const label = button.textContent;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  if (text) button.textContent = text;
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    button.textContent = label;
  }
}

// --- dialogs -----------------------------------------------------------------------------------

/**
 * Open a modal dialog: {title, body (nodes), actions (nodes), wide, test}. Returns
 * {dialog, close}. The dialog removes itself when closed (Escape, close()).
 */
export function openDialog({ title, body = [], actions = [], wide = false, test, onClose }) {
  const titleId = uid('dlg-title');
  const dialog = h('dialog', {
    class: ['dialog', wide && 'wide'], 'aria-labelledby': titleId, 'data-test': test || null,
  },
  h('div', { class: 'dialog-head' },
    h('h2', { id: titleId }, title),
    h('button', {
      type: 'button', class: 'quiet small', onclick: () => dialog.close(),
    }, t('ui.action.close'))),
  h('div', { class: 'dialog-body' }, body),
  actions.length ? h('div', { class: 'actions dialog-actions' }, actions) : null);
  dialog.addEventListener('close', () => {
    dialog.remove();
    if (onClose) onClose(dialog.returnValue);
  });
  document.body.append(dialog);
  dialog.showModal();
  return { dialog, close: (value) => dialog.close(value) };
}

/** Ask before something that cannot be undone; resolves true if confirmed. */
export function confirmDialog({ title, message, confirmLabel, danger = false }) {
  return new Promise((resolve) => {
    let confirmed = false;
    const yes = h('button', {
      type: 'button', class: ['primary', danger && 'danger'], 'data-test': 'confirm',
      onclick: () => { confirmed = true; handle.close('yes'); },
    }, confirmLabel);
    const no = h('button', { type: 'button', onclick: () => handle.close('no') }, t('ui.action.cancel_dialog'));
    const handle = openDialog({
      title, body: (Array.isArray(message) ? message : [message]).map((text) => h('p', {}, text)),
      actions: [yes, no], onClose: () => resolve(confirmed), test: 'confirm-dialog',
    });
    no.focus();
  });
}

// --- copy ----------------------------------------------------------------------------------------

/** A read-only text with a copy button: {label, copyLabel, value, test}. */
export function copyField({ label, copyLabel, value, test, mono = false }) {
  const id = uid('copy');
  const input = h('input', {
    id, type: 'text', readonly: true, value, class: mono ? 'mono' : null, 'data-test': test || null,
    onfocus: (event) => event.target.select(),
  });
  const status = h('span', { class: 'copy-status', role: 'status' });
  const button = h('button', {
    type: 'button', class: 'small', 'aria-describedby': id,
    onclick: async () => {
      const ok = await copyText(input.value, input);
      status.textContent = ok ? t('ui.copy.done') : t('ui.copy.failed');
      setTimeout(() => { status.textContent = ''; }, 2500);
    },
  }, copyLabel);
  return h('div', { class: 'field copy-field' },
    h('label', { for: id }, label),
    h('div', { class: 'copy-row' }, input, button, status));
}

/** Put `text` on the clipboard (falls back to selecting `input` for Ctrl+C). */
export async function copyText(text, input) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    if (input) {
      input.focus();
      input.select();
      try {
        return document.execCommand('copy');
      } catch {
        return false;
      }
    }
    return false;
  }
}
