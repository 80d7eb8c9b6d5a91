// The device check before the call (R13), for patients and practice PCs alike: camera
// preview and resolution (≥ 640×480), microphone level, loudspeaker test tone, device choice,
// and the real connection test against the box's echo peer with a verdict in plain words.
// Each of these is a component of its own; this module puts them on the page and runs them.

import { h } from '/static/common/dom.js';
import { t } from '/static/common/i18n.js';
import { cameraCheck } from './camera-check.js';
import { microphoneCheck } from './microphone-check.js';
import { deviceChoice } from './device-choice.js';
import { speakerTest } from './speaker-test.js';
import { connectionTest } from './connection-test.js';

/**
 * Render the check into `root`. Options: `media` (LocalMedia), `url` (device-check route),
 * `headers` (e.g. CSRF), `iceServers`, `doneLabel`, `onDone()`, `intro` (text above).
 * Returns {destroy(), result} where `result` holds the latest figures and verdict.
 */
export function renderDeviceCheck(root, { media, url, headers = {}, iceServers = [], doneLabel, onDone, intro }) {
  let destroyed = false;
  const camera = cameraCheck(media);
  const microphone = microphoneCheck(media);
  const devices = deviceChoice({ media, choose });
  const speaker = speakerTest(media);
  const connection = connectionTest({ url, headers, media, iceServers });
  const done = h('button', { type: 'button', class: 'primary big-button', 'data-test': 'check-done' }, doneLabel || t('ui.check.done'));
  const problem = h('p', { class: 'form-error', role: 'alert', hidden: true, 'data-test': 'check-problem' });

  const section = h('section', { class: 'device-check', 'data-test': 'device-check', 'aria-labelledby': 'check-title' },
    h('h2', { id: 'check-title', tabindex: '-1' }, t('ui.check.title')),
    intro ? h('p', {}, intro) : null,
    h('div', { class: 'check-grid' },
      camera.preview,
      h('div', { class: 'check-panel' },
        h('ul', { class: 'check-list' }, camera.item, microphone.item, connection.item),
        microphone.meter,
        devices.element,
        speaker.element,
        connection.elements, problem)),
    h('div', { class: 'actions check-actions' }, done, connection.retry));
  root.append(section);

  /** Camera and microphone as they are now: preview, resolution, level meter. */
  function showMedia() {
    camera.show();
    microphone.start();
  }

  async function startMedia() {
    await media.start();
    problem.hidden = true;
    if (media.error && !media.camera) {
      problem.textContent = media.error.name === 'NotAllowedError' ? t('ui.check.blocked') : t('ui.check.no_camera');
      problem.hidden = false;
    }
    showMedia();
    await devices.fill();
  }

  /** Another device was chosen: apply it (`change()`), then show it, or say that it failed. */
  async function choose(change) {
    problem.hidden = true;
    try {
      await change();
      showMedia();
    } catch {
      problem.textContent = t('ui.check.device_failed');
      problem.hidden = false;
    }
  }

  done.addEventListener('click', () => onDone(connection.result));

  (async () => {
    await startMedia();
    if (!destroyed && url) connection.run();
    else if (!url) connection.skip();
  })();

  return {
    get result() { return connection.result; },
    focus() { section.querySelector('h2').focus(); },
    destroy() {
      destroyed = true;
      connection.destroy();
      microphone.destroy();
      camera.destroy();
      section.remove();
    },
  };
}
