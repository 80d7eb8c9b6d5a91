// The device check's loudspeaker test: a short two-tone chime made right here (no audio file),
// on the loudspeaker chosen where the browser lets the page choose.

import { h } from '/static/common/dom.js';
import { t } from '/static/common/i18n.js';
import { chime, sharedAudioContext } from './audio.js';

/** The test tone's button and hint for `media` (its chosen loudspeaker). */
export function speakerTest(media) {
  const tone = h('button', { type: 'button', 'data-test': 'check-tone' }, t('ui.check.play_tone'));
  tone.addEventListener('click', async () => {
    const ctx = sharedAudioContext();
    if (!ctx) return;
    if (media.outputDevice && typeof ctx.setSinkId === 'function') {
      await ctx.setSinkId(media.outputDevice).catch(() => {});
    }
    chime(ctx);
  });
  return {
    element: h('div', { class: 'check-tone' }, tone, h('span', { class: 'muted' }, t('ui.check.tone_hint'))),
  };
}
