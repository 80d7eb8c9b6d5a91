// The staff site: start-up (onboarding, login or the app), the header and a hash router.

import { api, setCsrf, onUnauthorized } from '/static/common/api.js';
import { h, clear } from '/static/common/dom.js';
import { loadLanguage, t, translatePage, currentLanguage } from '/static/common/i18n.js';
import { renderOnboarding, renderRecoveryConfirm } from './onboarding.js';
import { renderLogin } from './login.js';
import * as dashboard from './dashboard.js';
import * as newAppointment from './appointment-new.js';
import * as patients from './patients.js';
import * as users from './users.js';
import * as settings from './settings.js';
import * as uplinks from './uplinks.js';
import * as backup from './backup.js';
import * as account from './account.js';
import * as callView from './call.js';

const ROUTES = {
  termine: { view: dashboard, title: 'ui.nav.appointments' },
  'neuer-termin': { view: newAppointment, title: 'ui.nav.new_appointment' },
  patienten: { view: patients, title: 'ui.nav.patients' },
  benutzer: { view: users, title: 'ui.nav.users', admin: true },
  einstellungen: { view: settings, title: 'ui.nav.settings', admin: true },
  leitungen: { view: uplinks, title: 'ui.uplinks.title', admin: true },
  datensicherung: { view: backup, title: 'ui.backup.title', admin: true },
  konto: { view: account, title: 'ui.nav.account' },
  call: { view: callView, title: 'ui.call.title' },
};
const DEFAULT_ROUTE = 'termine';

const main = document.getElementById('main');
const ctx = {
  status: null,
  session: null,
  get user() { return this.session ? this.session.user : null; },
  get isAdmin() { return Boolean(this.user && this.user.roles.includes('admin')); },
  get isDoctor() { return Boolean(this.user && this.user.roles.includes('doctor')); },
  get timezone() { return (this.session && this.session.timezone) || 'Europe/Berlin'; },
  get practiceName() { return (this.session && this.session.practice_name) || ''; },
  navigate(route) { location.hash = `#/${route}`; },
  refreshSession,
  /** State kept between views (e.g. the day shown on the dashboard). */
  memory: {},
};
let cleanup = null;
let routeCounter = 0;
let routerStarted = false;

// how long before its end the patient site's certificate is mentioned
const CERTIFICATE_WARN_DAYS = 21;

async function boot() {
  wireHeader();
  // plain HTTP on a network address (TLS switched off): the browser gives no camera here
  document.getElementById('insecure').hidden = window.isSecureContext;
  let status;
  try {
    status = await api('/api/status');
  } catch (error) {
    await loadLanguage('de');
    translatePage();
    showFatal(error.message);
    return;
  }
  ctx.status = status;
  await loadLanguage(status.language);
  translatePage();
  markLanguage();
  onUnauthorized(async () => {
    if (!ctx.session) return;
    ctx.session = null; // once, however many requests failed
    let notice = t('ui.login.session_expired');
    try {
      ctx.status = await api('/api/status');
      if (ctx.status.locked) notice = null; // the login page says why and since when
    } catch {
      // the box is not reachable: the login page tells when it is tried
    }
    leaveApp(notice);
  });
  if (!status.initialized) {
    showScreen('ui.onboarding.title');
    renderOnboarding(main, { onDone: enterApp, onRestored: restored, proposedUrls: status.public_urls || [] });
  } else if (!status.logged_in) {
    showLogin();
  } else {
    await enterApp();
  }
}

/** A new box restored from a backup: the staff log in as before. */
async function restored() {
  try {
    ctx.status = await api('/api/status');
  } catch {
    // the login page works without it
  }
  showLogin(t('ui.restore.done'));
}

function showScreen(titleKey) {
  stopView();
  document.title = `${t(titleKey)} – Sprechzimmer`;
  clear(main);
}

function showLogin(notice) {
  showScreen('ui.login.title');
  renderLogin(main, { status: ctx.status, notice, onLoggedIn: (session) => enterApp(session) });
}

function showFatal(message) {
  clear(main);
  main.append(h('div', { class: 'panel narrow-panel' },
    h('h1', {}, t('ui.error.title')),
    h('p', { class: 'form-error', role: 'alert' }, message),
    h('button', { type: 'button', class: 'primary', onclick: () => location.reload() }, t('ui.action.retry'))));
}

/** After login or onboarding: load the session (CSRF token), then the app. */
async function enterApp(session) {
  try {
    ctx.session = session || await api('/api/session');
  } catch (error) {
    showLogin(error.message);
    return;
  }
  setCsrf(ctx.session.csrf_token);
  if (ctx.session.recovery_key_pending && ctx.isAdmin) {
    showScreen('ui.recovery.title');
    renderRecoveryConfirm(main, { recoveryKey: null, onDone: () => enterApp() });
    return;
  }
  showHeader();
  if (!routerStarted) {
    window.addEventListener('hashchange', route);
    routerStarted = true;
  }
  await route();
}

async function refreshSession() {
  ctx.session = await api('/api/session');
  setCsrf(ctx.session.csrf_token);
  showHeader();
  return ctx.session;
}

function leaveApp(notice) {
  ctx.session = null;
  setCsrf(null);
  hideHeader();
  history.replaceState(null, '', location.pathname);
  showLogin(notice);
}

// --- header ----------------------------------------------------------------------------------

function wireHeader() {
  for (const button of document.querySelectorAll('[data-lang]')) {
    button.addEventListener('click', () => chooseLanguage(button.dataset.lang));
  }
  document.getElementById('logout').addEventListener('click', logout);
}

function markLanguage() {
  for (const button of document.querySelectorAll('[data-lang]')) {
    button.setAttribute('aria-pressed', String(button.dataset.lang === currentLanguage()));
  }
}

async function chooseLanguage(lang) {
  if (lang === currentLanguage()) return;
  try {
    await api('/api/language', { method: 'POST', body: { language: lang } });
  } catch {
    // the cookie could not be set; the reload keeps the current language
  }
  location.reload();
}

async function logout() {
  try {
    await api('/api/logout', { method: 'POST' });
  } catch {
    // the session may already be gone; either way the person is logged out here
  }
  if (ctx.session) leaveApp(t('ui.login.logged_out'));
}

function showHeader() {
  const user = ctx.user;
  document.getElementById('practice-name').textContent = ctx.practiceName;
  const who = document.getElementById('current-user');
  who.textContent = t('ui.header.user', { name: user.display_name, username: user.username });
  who.hidden = false;
  document.getElementById('logout').hidden = false;
  const nav = document.getElementById('nav');
  nav.hidden = false;
  for (const link of nav.querySelectorAll('[data-admin]')) link.hidden = !ctx.isAdmin;
  // a password from before today's rules: asked to change it until they do
  document.getElementById('password-weak').hidden = !ctx.session.password_weak;
  // an admin asked to lock the box: it locks when the running call ends / nobody waits
  document.getElementById('box-lock-pending').hidden = !ctx.session.box_lock.pending;
  showCertificateWarning(ctx.session.public_certificate);
}

/** The patient site's certificate: a stand-in, a failed renewal, or near its end. */
function showCertificateWarning(state) {
  const banner = document.getElementById('certificate-warning');
  let text = '';
  if (state) {
    const end = state.not_after ? new Date(state.not_after) : null;
    const soon = end && end - Date.now() < CERTIFICATE_WARN_DAYS * 86400000;
    if (state.source === 'stand-in') text = t('ui.tls.public_stand_in');
    else if (soon) {
      text = t('ui.tls.public_expiring', { date: end.toLocaleDateString(currentLanguage()) });
    }
    if (state.error) text = [text, t('ui.tls.public_error', { error: state.error })].join(' ').trim();
  }
  banner.textContent = text;
  banner.hidden = !text;
}

function hideHeader() {
  document.getElementById('certificate-warning').hidden = true;
  document.getElementById('password-weak').hidden = true;
  document.getElementById('box-lock-pending').hidden = true;
  document.getElementById('nav').hidden = true;
  document.getElementById('current-user').hidden = true;
  document.getElementById('logout').hidden = true;
}

// --- router ----------------------------------------------------------------------------------

function stopView() {
  if (cleanup) {
    try {
      cleanup();
    } finally {
      cleanup = null;
    }
  }
}

async function route() {
  if (!ctx.session) return;
  const name = location.hash.replace(/^#\/?/, '').split('/')[0] || DEFAULT_ROUTE;
  const target = ROUTES[name];
  if (!target || (target.admin && !ctx.isAdmin)) {
    location.replace(`#/${DEFAULT_ROUTE}`);
    return;
  }
  const mine = ++routeCounter;
  stopView();
  for (const link of document.querySelectorAll('#nav [data-route]')) {
    if (link.dataset.route === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.title = `${t(target.title)} – ${ctx.practiceName || 'Sprechzimmer'}`;
  clear(main);
  const view = h('div', { class: 'view', 'data-view': name });
  main.append(view);
  try {
    const result = await target.view.render(view, ctx);
    if (mine !== routeCounter) {
      if (typeof result === 'function') result();
      return;
    }
    cleanup = typeof result === 'function' ? result : null;
  } catch (error) {
    if (mine !== routeCounter || !ctx.session) return;
    clear(view);
    view.append(h('h1', {}, t(target.title)),
      h('p', { class: 'form-error', role: 'alert' }, error.message));
  }
}

boot();
