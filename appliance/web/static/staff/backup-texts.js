// The words for the practice's backup, shared by its admin page and the onboarding wizard's
// restore: ages in words („vor 3 Stunden“), moments in the practice's time zone, sizes in MB/GB.

import { t, currentLanguage, instant } from '/static/common/i18n.js';

const LOCALES = { de: 'de-DE', en: 'en-GB' };

function locale() {
  return LOCALES[currentLanguage()] || 'de-DE';
}

/** „vor 3 Stunden“, „vor 2 Tagen“, „gerade eben“ (the age of an ISO moment). */
export function ageText(iso) {
  const seconds = (Date.now() - instant(iso)) / 1000;
  if (!Number.isFinite(seconds)) return '';
  if (seconds < 60) return t('ui.backup.just_now');
  const words = new Intl.RelativeTimeFormat(locale(), { numeric: 'always' });
  if (seconds < 3600) return words.format(-Math.floor(seconds / 60), 'minute');
  if (seconds < 48 * 3600) return words.format(-Math.floor(seconds / 3600), 'hour');
  return words.format(-Math.floor(seconds / 86400), 'day');
}

/** An ISO moment as "05.12.2026, 14:05" on the practice's clock (`timezone`, IANA). */
export function momentText(iso, timezone) {
  const moment = instant(iso);
  if (!Number.isFinite(moment)) return '';
  const options = {
    day: '2-digit', month: '2-digit', year: 'numeric', hour: '2-digit', minute: '2-digit',
    hourCycle: 'h23',
  };
  try {
    return new Intl.DateTimeFormat(locale(), { ...options, timeZone: timezone }).format(moment);
  } catch {
    return new Intl.DateTimeFormat(locale(), { ...options, timeZone: 'Europe/Berlin' }).format(moment);
  }
}

/** "850 kB", "12,4 MB", "1,2 GB" (decimal units, the language's number format). */
export function sizeText(bytes) {
  const units = [[1e9, 'GB'], [1e6, 'MB'], [1e3, 'kB']];
  const number = new Intl.NumberFormat(locale(), { maximumFractionDigits: 1 });
  for (const [factor, unit] of units) {
    if (bytes >= factor) return `${number.format(bytes / factor)} ${unit}`;
  }
  return t('ui.backup.bytes', { count: number.format(bytes) });
}

/** "37 %" of a share from 0 to 1. */
export function percentText(share) {
  return t('ui.backup.percent', { percent: Math.round((share || 0) * 100) });
}
