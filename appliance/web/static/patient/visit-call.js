// The patient's side of the call: the device check offered in the waiting room, the signaling
// socket (opened while waiting, so the doctor's "admit" arrives at once), and the call view.

import { api } from '/static/common/api.js';
import { t } from '/static/common/i18n.js';
import { h } from '/static/common/dom.js';
import { Signaling, socketUrl } from '/static/call/signaling.js';
import { LocalMedia } from '/static/call/media.js';
import { Call } from '/static/call/call.js';
import { renderCallView } from '/static/call/call-view.js';
import { renderDeviceCheck } from '/static/call/device-check.js';
import { register } from '/static/call/debug.js';

/**
 * One per page. `base` is "/v/<token>"; `onAdmitted()` / `onEnded(reason)` / `onRefused()`
 * tell patient.js.
 */
export function createVisitCall({ base, onAdmitted, onEnded, onRefused }) {
  const media = new LocalMedia();
  let signaling = null;
  let call = null;
  let view = null;
  let check = null;
  let finished = false;
  let connecting = null;
  let wanted = false;
  let leaving = 0;
  register('media', media);

  /** A socket to every public host of the practice (one per uplink: UPLINKS.md), this one first. */
  function connect() {
    wanted = true;
    if (signaling || finished) return Promise.resolve();
    if (!connecting) connecting = open().finally(() => { connecting = null; });
    return connecting;
  }

  /** The practice's public hosts and this page's ticket for them; null if the box did not say. */
  async function askHosts() {
    try {
      return await api(`${base}/signaling`);
    } catch {
      return null; // e.g. the box is restarting: this host alone for now, the others later
    }
  }

  /** Sockets to the hosts the box named that this page has none to yet. */
  function addHosts(hosts) {
    if (!signaling || !hosts) return;
    if (hosts.ticket) signaling.protocols = ['sz.v1', `sz.ticket.${hosts.ticket}`];
    for (const origin of hosts.origins) signaling.addUrl(socketUrl(origin, `${base}/signal`));
  }

  async function open() {
    const hosts = await askHosts();
    if (signaling || finished || !wanted) return;
    signaling = new Signaling([socketUrl(location.origin, `${base}/signal`)], {
      protocols: ['sz.v1'],
      log: (...args) => console.debug('[signaling]', ...args), // eslint-disable-line no-console
    });
    addHosts(hosts);
    if (!hosts) {
      // once the box answers on this host again, ask once more for the others
      const retry = async () => {
        signaling.removeEventListener('welcome', retry);
        const later = await askHosts();
        if (later) addHosts(later);
        else signaling.addEventListener('welcome', retry);
      };
      signaling.addEventListener('welcome', retry);
    }
    register('signaling', signaling);
    call = new Call({ signaling, media, log: (...args) => console.debug('[call]', ...args) }); // eslint-disable-line no-console
    signaling.addEventListener('admitted', () => onAdmitted());
    signaling.addEventListener('room', (e) => {
      const me = signaling.participant && (e.detail.participants || []).find((p) => p.id === signaling.participant.id);
      if (e.detail.state === 'in_call' && me && me.admitted) onAdmitted();
    });
    call.addEventListener('ended', (e) => finish(e.detail.reason));
    signaling.addEventListener('refused', () => onRefused());
    signaling.start();
  }

  /** Out of the waiting room (the patient left it): no socket until they come back. */
  function disconnect() {
    if (view) return;
    wanted = false;
    if (!signaling) return;
    call.close();
    signaling.close();
    call = null;
    signaling = null;
  }

  /** The waiting room's offer: check camera, microphone and connection now. */
  function offerCheck(container, { onDone }) {
    container.replaceChildren();
    const start = h('button', { type: 'button', class: 'primary big-button', 'data-test': 'start-check' }, t('ui.visit.check_start'));
    const card = h('div', { class: 'check-offer', 'data-test': 'check-offer' },
      h('h2', {}, t('ui.visit.check_title')),
      h('p', {}, t('ui.visit.check_text')), start);
    container.append(card);
    start.addEventListener('click', () => {
      card.remove();
      check = renderDeviceCheck(container, {
        media, url: `${base}/device-check`, doneLabel: t('ui.visit.check_done'),
        onDone: (result) => {
          check.destroy();
          check = null;
          const level = result && result.verdict ? result.verdict.level : null;
          container.append(h('p', { class: `check-summary level-${level || 'none'}`, 'data-test': 'check-summary' },
            level ? t('ui.visit.check_summary', { verdict: result.verdict.text }) : t('ui.visit.check_summary_plain')));
          onDone(result);
        },
      });
      check.focus();
    });
  }

  /** The doctor let the patient in: the call replaces the waiting room. */
  async function enter(container) {
    if (finished) return;
    await connect();
    if (finished || !call) return;
    if (check) {
      check.destroy();
      check = null;
    }
    if (!view) {
      view = renderCallView(container, {
        call, media, role: 'patient',
        onLeave: () => { leaving = call.leave(); finish('left'); },
      });
      await media.start();
      call.join();
    }
  }

  /** The call is over (ended by the doctor, removed, or left): everything stops here. */
  function finish(reason) {
    if (finished) return;
    finished = true;
    if (check) check.destroy();
    if (view) view.destroy();
    view = null;
    if (call) call.close();
    media.stop();
    if (signaling && reason === 'left' && leaving) closeAfterLeave(signaling, leaving);
    else if (signaling) signaling.close();
    onEnded(reason);
  }

  /**
   * Let the last `leave` (reliable message `seq`) reach the hub, then close. The hub drops this
   * page's sockets once it has taken the person out of the room: close right then, before a
   * socket opens again — a new one would bring the person back into the room, "away", and the
   * doctor would see "Verbindung unterbrochen" instead of someone who left.
   */
  function closeAfterLeave(channel, seq) {
    let limit = null;
    let peak = channel.connected;
    const stop = () => {
      channel.removeEventListener('status', onStatus);
      clearTimeout(limit);
      channel.close();
    };
    // any socket lost after the `leave` went out (one per public host) means the hub let go
    const onStatus = () => {
      if (!channel.outbox.has(seq) || channel.connected < peak) stop();
      else peak = Math.max(peak, channel.connected);
    };
    channel.addEventListener('status', onStatus);
    limit = setTimeout(stop, 1500);
  }

  return {
    connect, disconnect, offerCheck, enter, finish,
    get inCall() { return Boolean(view); },
    get finished() { return finished; },
  };
}
