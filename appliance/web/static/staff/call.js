// The doctor's call view (#/call/<appointment id>): device check, the rules, admitting the
// waiting patient, the call itself, and "Beenden" (O3: only the appointment's doctor).

import { api } from '/static/common/api.js';
import { h, clear } from '/static/common/dom.js';
import { t } from '/static/common/i18n.js';
import { Signaling, socketUrl } from '/static/call/signaling.js';
import { LocalMedia } from '/static/call/media.js';
import { Call } from '/static/call/call.js';
import { renderCallView } from '/static/call/call-view.js';
import { renderDeviceCheck } from '/static/call/device-check.js';
import { register } from '/static/call/debug.js';
import { when } from './appointments.js';

const ROLE_TEXT = { patient: 'ui.call.role_patient', guest: 'ui.call.role_guest', doctor: 'ui.call.role_doctor' };

/** This PC's last good device check (date only, nothing personal): a busy practice checks once a day. */
const CHECK_KEY = 'sz.deviceCheckGood';

function today() {
  return new Date().toISOString().slice(0, 10);
}

function checkedToday() {
  try {
    return localStorage.getItem(CHECK_KEY) === today();
  } catch {
    return false;
  }
}

function rememberCheck(result) {
  const level = result && result.verdict ? result.verdict.level : null;
  try {
    if (level === 'good') localStorage.setItem(CHECK_KEY, today());
    else localStorage.removeItem(CHECK_KEY);
  } catch {
    // storage blocked: the check simply runs every time
  }
}

export async function render(root, ctx) {
  const id = decodeURIComponent(location.hash.replace(/^#\/?/, '').split('/')[1] || '');
  const back = () => h('a', { href: '#/termine', class: 'button' }, t('ui.call.back_to_dashboard'));
  const heading = h('h1', { tabindex: '-1' }, t('ui.call.title'));
  root.append(heading);
  let appt;
  try {
    appt = await api(`/api/appointments/${encodeURIComponent(id)}`);
  } catch (error) {
    root.append(h('p', { class: 'form-error', role: 'alert' }, error.message), back());
    return null;
  }
  heading.textContent = t('ui.call.title_with', { name: appt.checked_in_name || appt.patient_name });
  root.append(h('p', { class: 'day-label' }, when(appt)));
  if (!ctx.isDoctor || appt.doctor !== ctx.user.username) {
    root.append(h('p', { class: 'notice warn', 'data-test': 'call-not-yours' }, t('ui.call.not_your_call')), back());
    return null;
  }
  if (ctx.session.appointment_rules.closed.includes(appt.state)) {
    root.append(h('p', { class: 'notice', 'data-test': 'call-closed' }, t('ui.call.closed')), back());
    return null;
  }

  const media = new LocalMedia();
  const signaling = new Signaling([socketUrl(location.origin, `/api/appointments/${encodeURIComponent(id)}/signal`)], {
    log: (...args) => console.debug('[signaling]', ...args), // eslint-disable-line no-console
  });
  const call = new Call({ signaling, media, log: (...args) => console.debug('[call]', ...args) }); // eslint-disable-line no-console
  register('signaling', signaling);
  register('media', media);
  const panel = h('div', { class: 'panel call-panel' });
  root.append(panel);
  let room = null;
  let phase = 'check';
  let check = null;
  let view = null;
  let readyParts = null;
  let admitSeq = 0;

  // --- 1. the device check (R13): once a day on this PC, unless the doctor wants it again ------
  function runCheck() {
    clear(panel);
    check = renderDeviceCheck(panel, {
      media, url: '/api/device-check', headers: { 'X-CSRF-Token': ctx.session.csrf_token },
      doneLabel: t('ui.call.check_done'),
      onDone: (result) => {
        rememberCheck(result);
        showReady();
      },
    });
  }

  if (checkedToday()) {
    const go = h('button', { type: 'button', class: 'primary', 'data-test': 'check-skip', onclick: showReady },
      t('ui.call.check_skip'));
    panel.append(h('div', { 'data-test': 'check-remembered' },
      h('p', { class: 'notice' }, t('ui.call.check_remembered')),
      h('div', { class: 'actions' }, go,
        h('button', { type: 'button', 'data-test': 'check-again', onclick: runCheck }, t('ui.call.check_again')))));
    go.focus();
  } else {
    runCheck();
  }

  // --- 2. rules (O2, R7) and admitting ----------------------------------------------------------
  function showReady() {
    if (check) check.destroy();
    check = null;
    phase = 'ready';
    clear(panel);
    const list = h('ul', { class: 'call-waiting-list', 'data-test': 'call-participants' });
    const error = h('p', { class: 'form-error', role: 'alert', hidden: true, 'data-test': 'call-error' });
    const resume = h('button', { type: 'button', class: 'primary', hidden: true, 'data-test': 'resume-call',
      onclick: () => enterCall() }, t('ui.call.resume'));
    panel.append(
      h('h2', { tabindex: '-1' }, t('ui.call.rules_title')),
      h('ul', { class: 'call-rules-list', 'data-test': 'doctor-rules' },
        h('li', {}, t('ui.call.rule_room')),
        h('li', {}, t('ui.call.rule_introduce')),
        h('li', {}, t('ui.call.rule_recording'))),
      h('h2', {}, t('ui.call.waiting_room')),
      list, error, h('div', { class: 'actions' }, resume, back()));
    readyParts = { list, error, resume };
    panel.querySelector('h2').focus();
    showRoom();
  }

  function showRoom() {
    if (phase !== 'ready' || !readyParts) return;
    const { list, resume } = readyParts;
    clear(list);
    const others = room ? room.participants.filter((p) => p.role !== 'doctor') : [];
    if (others.length === 0) list.append(h('li', { class: 'muted' }, t('ui.call.nobody_waiting')));
    for (const p of others) {
      const admit = h('button', { type: 'button', class: 'primary', 'data-test': 'admit',
        disabled: !p.present || p.admitted, onclick: () => { admitSeq = call.admit(p.id); enterCall(); } },
      t('ui.call.admit', { name: p.name }));
      const status = p.admitted ? t('ui.call.p_in_call') : p.present ? t('ui.call.p_waiting') : t('ui.call.p_away');
      list.append(h('li', { 'data-test': 'call-participant', 'data-participant': p.id },
        h('strong', {}, p.name), ' ', h('span', { class: 'badge' }, t(ROLE_TEXT[p.role] || 'ui.call.role_guest')),
        h('span', { class: 'muted' }, ` ${status}`), ' ', p.admitted ? null : admit));
    }
    resume.hidden = !(room && room.state === 'in_call');
  }

  // --- 3. the call ----------------------------------------------------------------------------
  function enterCall() {
    if (phase === 'call' || phase === 'ended') return;
    phase = 'call';
    clear(panel);
    panel.classList.add('in-call');
    root.classList.add('calling');
    view = renderCallView(panel, { call, media, role: 'doctor', onEnd: () => call.end() });
    heading.focus({ preventScroll: true }); // the admit button is gone; the heading names the call
    // a narrow window (beside the practice software): the call is as tall as the window
    // (call.css), so it is scrolled to the top — else its controls hang below the window's edge
    if (!window.matchMedia('(min-width: 60rem)').matches) view.element.scrollIntoView({ block: 'start' });
    media.start().then(() => call.join());
  }

  // --- 4. the end -----------------------------------------------------------------------------
  function showEnded(reason) {
    if (phase === 'ended') return;
    phase = 'ended';
    if (check) check.destroy();
    if (view) view.destroy();
    view = null;
    media.stop();
    signaling.close();
    clear(panel);
    panel.classList.remove('in-call');
    root.classList.remove('calling');
    const title = h('h2', { tabindex: '-1', 'data-test': 'call-ended' }, t('ui.call.ended_title'));
    panel.append(title, h('p', {}, reason === 'elsewhere' ? t('ui.call.ended_elsewhere') : t('ui.call.ended_text')),
      h('div', { class: 'actions' }, back()));
    title.focus();
  }

  call.addEventListener('room', (e) => {
    room = e.detail;
    showRoom();
  });
  call.addEventListener('ended', (e) => showEnded(e.detail.reason));
  signaling.addEventListener('error', (e) => {
    if (!e.detail.message) return;
    if (phase === 'call' && admitSeq && e.detail.ref === admitSeq) {
      // the box refused the admission (e.g. R3: already in another call): back to the list
      if (view) view.destroy();
      view = null;
      panel.classList.remove('in-call');
      root.classList.remove('calling');
      phase = 'check';
      showReady();
    }
    if (readyParts) {
      readyParts.error.textContent = e.detail.message;
      readyParts.error.hidden = false;
    }
  });
  signaling.addEventListener('refused', async () => {
    // the box keeps refusing the socket: the call was ended elsewhere, or the session is gone
    try {
      const fresh = await api(`/api/appointments/${encodeURIComponent(id)}`);
      if (ctx.session.appointment_rules.closed.includes(fresh.state)) showEnded();
    } catch {
      // not logged in any more: the app shows the login page
    }
  });
  signaling.start();
  const warn = (event) => {
    if (phase === 'call') event.preventDefault();
  };
  window.addEventListener('beforeunload', warn);

  return () => {
    window.removeEventListener('beforeunload', warn);
    if (check) check.destroy();
    if (view) view.destroy();
    call.close();
    media.stop();
    signaling.close();
  };
}
