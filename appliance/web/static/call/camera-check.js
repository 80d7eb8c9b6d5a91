// The device check's camera: the preview (mirrored, muted) and the finding on its resolution,
// which the practice equipment needs at 640×480 or more (R13).

import { h } from '/static/common/dom.js';
import { t } from '/static/common/i18n.js';
import { checkItem } from './check-item.js';

const MIN_WIDTH = 640;
const MIN_HEIGHT = 480;

/** The preview and the list line for `media`'s camera; show() after the camera changed. */
export function cameraCheck(media) {
  const video = h('video', { class: 'mirror', autoplay: true, playsinline: true, 'data-test': 'check-preview' });
  video.muted = true;
  const item = checkItem('check-camera', t('ui.check.camera'));

  function grade() {
    if (!media.camera) {
      item.set('bad', t('ui.check.camera_missing'));
      return;
    }
    const { width = 0, height = 0 } = media.camera.getSettings();
    const text = t('ui.check.resolution', { width, height });
    // R13: the practice equipment needs at least 640×480 (either orientation on a phone)
    const big = Math.max(width, height) >= MIN_WIDTH && Math.min(width, height) >= MIN_HEIGHT;
    item.set(big ? 'good' : 'warn', big ? text : `${text} – ${t('ui.check.resolution_low')}`);
    item.el.dataset.width = String(width);
    item.el.dataset.height = String(height);
  }

  return {
    preview: h('div', { class: 'check-preview' }, video),
    item: item.el,
    show() {
      video.srcObject = media.camera ? new MediaStream([media.camera]) : null;
      grade();
    },
    destroy() {
      video.srcObject = null;
    },
  };
}
