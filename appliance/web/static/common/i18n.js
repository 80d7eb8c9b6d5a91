// UI texts from the box's catalogs (/locales/<lang>.json), and date/time formatting.

const LOCALES = { de: 'de-DE', en: 'en-GB' };
let catalog = {};
let language = 'de';

/** Load the flat key → template catalog of `lang` ("de" or "en"). */
export async function loadLanguage(lang) {
  language = lang === 'en' ? 'en' : 'de';
  try {
    const response = await fetch(`/locales/${language}.json`, { credentials: 'same-origin' });
    catalog = response.ok ? await response.json() : {};
  } catch {
    catalog = {};
  }
  document.documentElement.lang = language;
  return language;
}

export function currentLanguage() {
  return language;
}

export function has(key) {
  return Object.prototype.hasOwnProperty.call(catalog, key);
}

/** The text for `key` with `{name}` placeholders filled from `params`. */
export function t(key, params = {}) {
  const template = has(key) ? catalog[key] : key;
  return template.replace(/\{(\w+)\}/g, (match, name) =>
    Object.prototype.hasOwnProperty.call(params, name) ? String(params[name]) : match);
}

/** Fill every element below `root` that names a catalog key in a data-i18n* attribute. */
export function translatePage(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) {
    el.setAttribute('placeholder', t(el.dataset.i18nPlaceholder));
  }
  for (const el of root.querySelectorAll('[data-i18n-aria-label]')) {
    el.setAttribute('aria-label', t(el.dataset.i18nAriaLabel));
  }
  for (const el of root.querySelectorAll('[data-i18n-title]')) {
    el.setAttribute('title', t(el.dataset.i18nTitle));
  }
}

/** The patient's language: a chosen one (cookie sz_lang), else the browser's, else German. */
export function preferredLanguage() {
  const cookie = document.cookie.split(';').map((part) => part.trim())
    .find((part) => part.startsWith('sz_lang='));
  const chosen = cookie ? cookie.slice('sz_lang='.length) : '';
  if (chosen === 'de' || chosen === 'en') return chosen;
  for (const tag of navigator.languages || [navigator.language || '']) {
    const base = String(tag).toLowerCase().split('-')[0];
    if (base === 'de' || base === 'en') return base;
  }
  return 'de';
}

// --- dates and times --------------------------------------------------------------------------
// The box sends times as ISO strings in the practice's own zone ("2026-03-05T14:05:00+01:00").
// The wall-clock part is what the invitation says, so it is shown as written, whatever zone the
// viewer's computer is set to.

/** {date: "YYYY-MM-DD", time: "HH:MM", year, month, day} of an ISO date-time string. */
export function wallClock(iso) {
  const match = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2}))?/.exec(iso || '');
  if (!match) return null;
  const [, year, month, day, hour = '00', minute = '00'] = match;
  return {
    date: `${year}-${month}-${day}`, time: `${hour}:${minute}`,
    year: Number(year), month: Number(month), day: Number(day),
  };
}

function calendarDay(isoOrDate) {
  const parts = wallClock(isoOrDate);
  return parts ? new Date(Date.UTC(parts.year, parts.month - 1, parts.day, 12)) : null;
}

/** "Donnerstag, 5. März 2026" */
export function formatLongDate(isoOrDate) {
  const day = calendarDay(isoOrDate);
  if (!day) return '';
  return new Intl.DateTimeFormat(LOCALES[language], {
    weekday: 'long', day: 'numeric', month: 'long', year: 'numeric', timeZone: 'UTC',
  }).format(day);
}

/** "05.03.2026" */
export function formatShortDate(isoOrDate) {
  const day = calendarDay(isoOrDate);
  if (!day) return '';
  return new Intl.DateTimeFormat(LOCALES[language], {
    day: '2-digit', month: '2-digit', year: 'numeric', timeZone: 'UTC',
  }).format(day);
}

/** "14:05 Uhr" (German) / "14:05" (English) */
export function formatTime(iso) {
  const parts = wallClock(iso);
  return parts ? t('ui.format.time', { time: parts.time }) : '';
}

/** An ISO date-time with offset as milliseconds since the epoch (microseconds tolerated). */
export function instant(iso) {
  if (!iso) return NaN;
  return Date.parse(String(iso).replace(/(\.\d{3})\d+/, '$1'));
}

/** Today's date and the current time ("YYYY-MM-DD", "HH:MM") in the IANA zone `timeZone`. */
export function nowIn(timeZone, offsetMinutes = 0) {
  const moment = new Date(Date.now() + offsetMinutes * 60000);
  let parts;
  try {
    parts = new Intl.DateTimeFormat('en-GB', {
      timeZone, year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
    }).formatToParts(moment);
  } catch {
    parts = new Intl.DateTimeFormat('en-GB', {
      year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
    }).formatToParts(moment);
  }
  const get = (type) => parts.find((part) => part.type === type).value;
  return { date: `${get('year')}-${get('month')}-${get('day')}`, time: `${get('hour')}:${get('minute')}` };
}

/** The calendar day `days` after "YYYY-MM-DD". */
export function addDays(isoDate, days) {
  const day = calendarDay(isoDate);
  day.setUTCDate(day.getUTCDate() + days);
  return day.toISOString().slice(0, 10);
}
