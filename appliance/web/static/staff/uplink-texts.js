// The words for the practice's internet lines, shared by the dashboard's warning and the status
// page: the state in plain German, since when, and the fault explained with what to do.

import { t, wallClock, formatShortDate, nowIn } from '/static/common/i18n.js';

/** "in Ordnung", "gestört", "ausgefallen", "noch keine Antwort" */
export function stateText(line) {
  return t(`ui.uplinks.state.${line.state}`);
}

/** A moment from the API (ISO, practice time) as "10:42", with the date when not today. */
export function clockText(iso, timezone) {
  const parts = wallClock(iso);
  if (!parts) return '';
  return parts.date === nowIn(timezone).date ? parts.time : `${formatShortDate(iso)} ${parts.time}`;
}

/** "seit 10:42" (or "seit dem Start der Box" when the box has not seen a change). */
export function sinceText(line, timezone) {
  return line.since ? t('ui.uplinks.since', { time: clockText(line.since, timezone) })
    : t('ui.uplinks.since_start');
}

/** Why the last probe failed and what to do about it; '' when it did not. */
export function faultText(line) {
  if (!line.fault) return '';
  const key = line.fault === 'no_answer' && line.by_loopback ? 'no_answer_loopback' : line.fault;
  return t(`ui.uplinks.fault.${key}`, { target: line.target, lan_address: line.lan_address });
}

/** „DSL“, „DSL“ und „LTE“, „DSL“, „LTE“ und „Kabel“ */
export function quotedNames(lines) {
  const quoted = lines.map((line) => t('ui.uplinks.warning.quoted', { name: line.name }));
  if (quoted.length < 2) return quoted.join('');
  return t('ui.uplinks.warning.and', { first: quoted.slice(0, -1).join(', '), last: quoted[quoted.length - 1] });
}
