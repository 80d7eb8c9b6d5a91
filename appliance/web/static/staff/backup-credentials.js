// The access data of a backup target, as the admin page's "Ziel hinzufügen" and the onboarding
// wizard's restore ask for them: a choice of kind (none, S3, REST server) and its two fields,
// named as restic knows them. The values leave the page only in the one request that needs them.

import { h, clear } from '/static/common/dom.js';
import { t } from '/static/common/i18n.js';
import { field } from './forms.js';

const KINDS = {
  none: [],
  s3: [['AWS_ACCESS_KEY_ID', 'ui.backup.add.s3_key_id', 'text'],
    ['AWS_SECRET_ACCESS_KEY', 'ui.backup.add.s3_secret', 'password']],
  rest: [['RESTIC_REST_USERNAME', 'ui.backup.add.rest_user', 'text'],
    ['RESTIC_REST_PASSWORD', 'ui.backup.add.rest_password', 'password']],
};

/** {element, controls(), values(), clear()}: the kind's select and the fields it needs. */
export function credentialFields() {
  const fields = h('div', { class: 'backup-credentials' });
  const choice = field({ label: t('ui.backup.add.kind'), name: 'credential_kind', type: 'select', value: 'none',
    options: [
      { value: 'none', label: t('ui.backup.add.kind_none') },
      { value: 's3', label: t('ui.backup.add.kind_s3') },
      { value: 'rest', label: t('ui.backup.add.kind_rest') }] });
  const kind = choice.querySelector('select');
  const inputs = () => [...fields.querySelectorAll('input')];

  function show() {
    clear(fields);
    for (const [key, label, type] of KINDS[kind.value] || []) {
      fields.append(field({ label: t(label), name: key, type, required: true,
        fields: ['credentials', key], attrs: { autocomplete: 'off', spellcheck: 'false' } }));
    }
  }
  kind.addEventListener('change', show);

  return {
    element: h('div', {}, choice, fields),
    /** The inputs shown now (for the form's checks). */
    controls: inputs,
    /** {KEY: value} of the fields shown now. */
    values: () => Object.fromEntries(inputs().map((input) => [input.name, input.value])),
    /** Empty every field (access data do not stay in the page). */
    clear() { for (const input of inputs()) input.value = ''; },
    reset() { kind.value = 'none'; show(); },
  };
}
