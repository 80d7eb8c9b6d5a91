// The patient page: access code, name and consent, then the waiting room (O4, R1, O1, O2/R7).
// One thing per screen; every screen is a <section> in patient.html.

import { api } from '/static/common/api.js';
import {
  loadLanguage, preferredLanguage, t, translatePage, formatLongDate, formatTime,
} from '/static/common/i18n.js';
import { createVisitCall } from './visit-call.js';

const OFFLINE_RETRY_MS = 30000;
const POLL_MS = 5000;
const CODE_LENGTH = 9;

const token = decodeURIComponent(location.pathname.split('/')[2] || '');
const base = `/v/${encodeURIComponent(token)}`;
const $ = (id) => document.getElementById(id);

let current = null;
let offlineTimer = null;
let source = null;
let pollTimer = null;
let lastName = '';
let leaving = false;
let checkOffered = false;
/** Why the call ended for this page → which end screen (ui.visit.<key>_title/_text). */
const ENDED_BY_REASON = { left: 'left_call', removed: 'removed', elsewhere: 'elsewhere' };

// the call: signaling while waiting, the device check, the call view (call/*.js)
const visitCall = createVisitCall({
  base,
  onAdmitted: () => onAdmitted(),
  onEnded: (reason) => showEnded(ENDED_BY_REASON[reason] || 'ended'),
  onRefused: () => poll(),
});

// --- screens -------------------------------------------------------------------------------------

function show(name, { focus = true } = {}) {
  for (const screen of document.querySelectorAll('.screen')) {
    screen.hidden = screen.id !== `screen-${name}`;
  }
  current = name;
  const heading = $(`screen-${name}`).querySelector('h1');
  if (focus && heading) heading.focus();
}

function showError(id, message) {
  const el = $(id);
  el.textContent = message;
  el.hidden = !message;
}

// --- start ---------------------------------------------------------------------------------------

async function start() {
  await loadLanguage(preferredLanguage());
  translatePage();
  document.title = t('ui.visit.page_title');
  for (const button of document.querySelectorAll('[data-lang]')) {
    button.setAttribute('aria-pressed', String(button.lang === document.documentElement.lang));
    button.addEventListener('click', () => chooseLanguage(button.dataset.lang));
  }
  $('retry').addEventListener('click', loadInfo);
  $('code-form').addEventListener('submit', submitCode);
  $('code').addEventListener('input', tidyCode);
  $('name-form').addEventListener('submit', submitCheckIn);
  $('leave').addEventListener('click', leave);
  $('rejoin').addEventListener('click', () => { $('full-name').value = lastName; show('name'); });
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && isWatching()) poll();
  });
  await loadInfo();
}

function chooseLanguage(lang) {
  document.cookie = `sz_lang=${lang}; path=/; max-age=${365 * 86400}; SameSite=Strict`
    + (location.protocol === 'https:' ? '; Secure' : '');
  location.reload();
}

/** What the link says: practice, time, whether this browser already entered the code. */
async function loadInfo() {
  clearTimeout(offlineTimer);
  let info;
  try {
    info = await api(`${base}/info`);
  } catch (error) {
    if (error.status === 404) show('invalid');
    else if (error.status === 410 || error.status === 423) blocked(error.message);
    else showOffline();
    return;
  }
  if (!info.online) {
    showOffline();
    return;
  }
  $('practice-name').textContent = info.practice_name || '';
  if (info.guest) asGuest();
  if (info.start) {
    $('when').textContent = t(info.guest ? 'ui.visit.when_guest' : 'ui.visit.when',
      { date: formatLongDate(info.start), time: formatTime(info.start) });
  }
  if (info.verified) followState(info.state, null);
  else showCode();
}

/** A guest's link: the same page, in words for a further person (they consent to take part). */
function asGuest() {
  const texts = [
    ['label[for="full-name"]', 'ui.visit.name_label_guest'],
    ['label[for="consent"] > span', 'ui.visit.consent_guest'],
    ['#screen-waiting p.big', 'ui.visit.waiting_text_guest'],
  ];
  for (const [selector, key] of texts) {
    const element = document.querySelector(selector);
    if (element) {
      element.dataset.i18n = key;
      element.textContent = t(key);
    }
  }
  document.body.dataset.visitor = 'guest';
}

function showOffline() {
  show('offline');
  offlineTimer = setTimeout(loadInfo, OFFLINE_RETRY_MS);
}

function blocked(message) {
  stopWatching();
  $('blocked-message').textContent = message;
  show('blocked');
}

function showCode(message) {
  stopWatching();
  show('code');
  showError('code-error', message || '');
  $('code').focus();
}

// --- step 1: access code -------------------------------------------------------------------------

/** Upper-case as typed; spaces and dashes are fine (the box ignores them). */
function tidyCode(event) {
  const input = event.target;
  const caret = input.selectionStart;
  const upper = input.value.toUpperCase();
  if (upper !== input.value) {
    input.value = upper;
    input.setSelectionRange(caret, caret);
  }
}

async function submitCode(event) {
  event.preventDefault();
  const input = $('code');
  const code = input.value.toUpperCase().replace(/[\s\-‐‑‒–—_.]/g, '');
  if (code.length !== CODE_LENGTH) {
    showError('code-error', code.length === 0 ? t('ui.visit.code_missing')
      : t('ui.visit.code_length', { length: CODE_LENGTH }));
    input.setAttribute('aria-invalid', 'true');
    input.focus();
    return;
  }
  const button = event.submitter || $('code-form').querySelector('[type=submit]');
  button.disabled = true;
  showError('code-error', '');
  try {
    await api(`${base}/code`, { method: 'POST', body: { code: input.value.trim() } });
    input.removeAttribute('aria-invalid');
    show('name');
    $('full-name').focus();
  } catch (error) {
    if (error.status === 423 || error.status === 410) {
      blocked(error.message);
    } else if (error.status === 404) {
      show('invalid');
    } else if (error.status === 503 && error.code !== 'network') {
      showOffline();
    } else {
      const message = error.code === 'invalid_input' ? t('ui.visit.code_invalid') : error.message;
      showError('code-error', message);
      input.setAttribute('aria-invalid', 'true');
      input.select();
    }
  } finally {
    button.disabled = false;
  }
}

// --- step 2: name, consent, rules ----------------------------------------------------------------

async function submitCheckIn(event) {
  event.preventDefault();
  const name = $('full-name').value.replace(/\s+/g, ' ').trim();
  const consent = $('consent').checked;
  const rules = $('rules').checked;
  showError('name-error', name.length >= 2 ? '' : t('ui.visit.name_missing'));
  showError('consent-error', consent ? '' : t('ui.visit.consent_missing'));
  showError('rules-error', rules ? '' : t('ui.visit.rules_missing'));
  showError('checkin-error', '');
  $('full-name').toggleAttribute('aria-invalid', name.length < 2);
  const firstBad = name.length < 2 ? $('full-name') : !consent ? $('consent') : !rules ? $('rules') : null;
  if (firstBad) {
    firstBad.focus();
    return;
  }
  const button = event.submitter || $('name-form').querySelector('[type=submit]');
  button.disabled = true;
  try {
    const result = await api(`${base}/check-in`, { method: 'POST', body: { full_name: name, consent, rules } });
    lastName = result.name || name;
    followState(result.state, result.name);
  } catch (error) {
    if (error.status === 401) showCode(t('ui.visit.code_again'));
    else if (error.status === 423 || error.status === 410) blocked(error.message);
    else if (error.status === 404) show('invalid');
    else if (error.code === 'invalid_input' && error.field === 'full_name') {
      showError('name-error', t('ui.visit.name_missing'));
      $('full-name').focus();
    } else showError('checkin-error', error.message);
  } finally {
    button.disabled = false;
  }
}

// --- step 3: the waiting room --------------------------------------------------------------------

/** Show the screen that fits the appointment's state. */
function followState(state, name) {
  if (name) {
    lastName = name;
    $('waiting-name').textContent = t('ui.visit.waiting_as', { name });
  }
  if (state === 'waiting') {
    if (current !== 'waiting') show('waiting');
    enterWaitingRoom();
    watch();
  } else if (state === 'in_call') {
    onAdmitted();
  } else if (state === 'scheduled') {
    if (leaving || current === 'left' || current === 'name' || current === 'code') {
      // the patient left on purpose, or is on the way in: nothing to change
    } else if (current === 'waiting' || current === 'admitted') {
      // moved back by the practice (or a new link was issued): ask the box what holds now
      stopWatching();
      visitCall.disconnect();
      show('loading', { focus: false });
      loadInfo();
    } else {
      show('name');
      $('full-name').value = lastName;
    }
  } else if (state) {
    // ended, cancelled, no_show, or the link is gone (closed): over, whatever the box calls it
    showEnded(state);
  }
}

/** In the waiting room: the socket for the doctor's "admit", and the device check on offer. */
function enterWaitingRoom() {
  visitCall.connect();
  if (!checkOffered) {
    checkOffered = true;
    visitCall.offerCheck($('waiting-check'), { onDone: () => $('screen-waiting').querySelector('h1').focus() });
  }
}

/** The doctor admitted the patient: the call view replaces the waiting room. */
function onAdmitted() {
  if (visitCall.finished) return;
  if (current !== 'admitted') {
    show('admitted'); // focus on the (visually hidden) heading: the waiting room's button is gone
    document.body.classList.add('in-call');
    visitCall.enter($('call-root'));
  }
  watch();
}

const ENDED_KEYS = new Set(['ended', 'cancelled', 'no_show', 'left_call', 'removed', 'elsewhere']);

function showEnded(state) {
  stopWatching();
  if (!visitCall.finished) visitCall.finish('ended');
  document.body.classList.remove('in-call');
  const key = ENDED_KEYS.has(state) ? state : 'ended';
  $('ended-title').textContent = t(`ui.visit.${key}_title`);
  $('ended-text').textContent = t(`ui.visit.${key}_text`);
  show('ended');
}

function isWatching() {
  return source !== null || pollTimer !== null;
}

/** Live state from the box (SSE), with a poll every few seconds while the stream is down. */
function watch() {
  if (!source) {
    source = new EventSource(`${base}/events`);
    source.addEventListener('appointment', (event) => {
      try {
        const data = JSON.parse(event.data);
        followState(data.state, data.name);
      } catch {
        // a malformed event is ignored; the poll catches up
      }
    });
    source.addEventListener('error', () => {
      if (source && source.readyState === EventSource.CLOSED) {
        source.close();
        source = null; // the poll takes over and opens a new stream when the box answers
      }
    });
  }
  if (!pollTimer) {
    pollTimer = setInterval(() => {
      if (!source || source.readyState !== EventSource.OPEN) poll();
    }, POLL_MS);
  }
}

function stopWatching() {
  if (source) source.close();
  source = null;
  clearInterval(pollTimer);
  pollTimer = null;
}

async function poll() {
  try {
    const state = await api(`${base}/state`);
    showError('waiting-error', '');
    followState(state.state, state.name);
    if (!source && isWatching()) watch(); // an ended appointment stopped watching
  } catch (error) {
    if (error.status === 401) showCode(t('ui.visit.code_again'));
    else if (error.status === 404) { stopWatching(); show('invalid'); }
    else if (error.status === 410) showEnded('ended');
    else if (current === 'waiting') showError('waiting-error', t('ui.visit.connection_lost'));
  }
}

async function leave() {
  const button = $('leave');
  button.disabled = true;
  leaving = true;
  try {
    const result = await api(`${base}/leave`, { method: 'POST' });
    stopWatching();
    visitCall.disconnect();
    if (result.state === 'scheduled') show('left');
    else followState(result.state, result.name);
  } catch (error) {
    if (error.status === 401) showCode(t('ui.visit.code_again'));
    else if (error.code === 'conflict') { stopWatching(); show('loading', { focus: false }); loadInfo(); }
    else showError('waiting-error', error.message);
  } finally {
    leaving = false;
    button.disabled = false;
  }
}

start();
