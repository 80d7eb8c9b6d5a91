// The staff pages' live connection to /api/events (server-sent events): appointments as they
// change, the box lock's banner, the internet lines, the backup's warnings, and a status line that says whether the page is live. A
// stream the box closed is tried again once the session is known to be still there.

import { api } from '/static/common/api.js';
import { h } from '/static/common/dom.js';
import { t } from '/static/common/i18n.js';

const RECONNECT_MS = 5000;

/**
 * The connection, opened by connect(). `onAppointment(appt)` and `onRemoved(id)` hear the
 * appointments, `onReconnected()` that the stream is back after a break (time to catch up),
 * `onBoxLock()` that the box's lock changed, `onUplinks(lines)` every change of an internet line
 * (each line now), `onBackup(warnings)` every step of a backup run (the dashboard's warnings
 * now). A page passes only what it follows.
 */
export function liveEvents({
  onAppointment = () => {}, onRemoved = () => {}, onReconnected = () => {}, onBoxLock = () => {},
  onUplinks = () => {}, onBackup = () => {},
} = {}) {
  let source = null;
  let reconnectTimer = null;
  let connectedOnce = false;
  let stopped = false;
  const status = h('p', { class: 'live-status', 'data-test': 'live-status', role: 'status' });

  function connect() {
    if (stopped) return;
    source = new EventSource('/api/events');
    source.addEventListener('open', () => {
      status.textContent = t('ui.dashboard.live');
      status.dataset.state = 'live';
      if (connectedOnce) onReconnected();
      connectedOnce = true;
    });
    source.addEventListener('appointment', (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      if (data.removed) onRemoved(data.id);
      else onAppointment(data);
    });
    source.addEventListener('box-lock', () => onBoxLock());
    source.addEventListener('uplinks', (event) => {
      try {
        onUplinks(JSON.parse(event.data).lines);
      } catch {
        // a torn event: the next one, or the page's own load, brings the lines
      }
    });
    source.addEventListener('backup', (event) => {
      try {
        onBackup(JSON.parse(event.data).warnings);
      } catch {
        // a torn event: the next one, or the page's own load, brings the warnings
      }
    });
    source.addEventListener('error', () => {
      if (stopped) return;
      status.textContent = t('ui.dashboard.reconnecting');
      status.dataset.state = 'offline';
      if (source.readyState === EventSource.CLOSED) {
        // the box refused the stream (e.g. session gone): check the session, then try again
        source.close();
        clearTimeout(reconnectTimer);
        reconnectTimer = setTimeout(async () => {
          try {
            await api('/api/session');
            connect();
          } catch {
            // not logged in any more: the app shows the login page
          }
        }, RECONNECT_MS);
      }
    });
  }

  return {
    element: status,
    connect,
    close() {
      stopped = true;
      clearTimeout(reconnectTimer);
      if (source) source.close();
    },
  };
}
