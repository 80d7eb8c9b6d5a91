// Waiting-room alerts on the dashboard (O4): a short chime made with Web Audio and a desktop
// notification when a patient arrives. Never while the doctor is in a call (R3): the call has
// its own view, and a doctor with a running call gets no alerts from other tabs either.

import { h } from '/static/common/dom.js';
import { t, wallClock } from '/static/common/i18n.js';
import { chime, sharedAudioContext } from '/static/call/audio.js';

const SOUND_KEY = 'sz.alerts.sound';
const ASKED_KEY = 'sz.alerts.asked';

function stored(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

function store(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    // private mode: the choice holds until the page is closed
  }
}

export class WaitingAlerts {
  constructor(ctx) {
    this.ctx = ctx;
    this.soundOn = stored(SOUND_KEY) !== 'off';
    this.count = 0;
    // browsers start audio only after a click: the first click on the page unlocks the chime
    this.unlock = () => { if (this.soundOn) sharedAudioContext(); };
    document.addEventListener('pointerdown', this.unlock, { once: true });
  }

  /** The switches in the dashboard's toolbar: sound on/off, desktop notifications. */
  controls() {
    const sound = h('input', { type: 'checkbox', id: 'alert-sound', checked: this.soundOn, 'data-test': 'alert-sound' });
    sound.addEventListener('change', () => {
      this.soundOn = sound.checked;
      store(SOUND_KEY, sound.checked ? 'on' : 'off');
      if (sound.checked) {
        const ctx = sharedAudioContext();
        if (ctx) chime(ctx, { volume: 0.12 }); // the person hears what they switched on
      }
    });
    const parts = [h('span', { class: 'check alert-check' }, sound, h('label', { for: 'alert-sound' }, t('ui.alerts.sound')))];
    if ('Notification' in window) {
      const status = h('span', { class: 'muted alert-status', 'data-test': 'alert-status' });
      const ask = h('button', { type: 'button', class: 'small', 'data-test': 'alert-desktop' }, t('ui.alerts.desktop'));
      const show = () => {
        const permission = Notification.permission;
        ask.hidden = permission !== 'default' || stored(ASKED_KEY) === '1';
        status.textContent = permission === 'granted' ? t('ui.alerts.desktop_on')
          : permission === 'denied' || stored(ASKED_KEY) === '1' ? t('ui.alerts.desktop_off') : '';
      };
      // asked once, and only because the person clicked for it
      ask.addEventListener('click', async () => {
        store(ASKED_KEY, '1');
        try {
          await Notification.requestPermission();
        } catch {
          // an old browser without the promise form: no notifications
        }
        show();
      });
      show();
      parts.push(ask, status);
    }
    return h('div', { class: 'alert-controls', 'data-test': 'alert-controls' }, parts);
  }

  /** A patient just arrived in the waiting room. `appointments`: everything on the dashboard. */
  arrived(appt, appointments) {
    const user = this.ctx.user;
    if (!user) return;
    const doctor = this.ctx.isDoctor;
    if (doctor && appt.doctor !== user.username) return; // a doctor hears only their own patients
    if (doctor && appointments.some((a) => a.doctor === user.username && a.state === 'in_call')) return; // R3
    this.count += 1;
    if (this.soundOn) {
      const ctx = sharedAudioContext();
      if (ctx && ctx.state === 'running') chime(ctx);
    }
    if ('Notification' in window && Notification.permission === 'granted' && (document.hidden || !document.hasFocus())) {
      try {
        const note = new Notification(t('ui.alerts.title'), {
          body: t('ui.alerts.body', { name: appt.checked_in_name || appt.patient_name, time: wallClock(appt.start).time }),
          tag: `waiting-${appt.id}`, icon: '/static/common/favicon.svg', silent: true,
        });
        note.addEventListener('click', () => { window.focus(); note.close(); });
      } catch {
        // notifications from a page are not allowed on this system (e.g. Android Chrome)
      }
    }
  }

  close() {
    document.removeEventListener('pointerdown', this.unlock);
  }
}
