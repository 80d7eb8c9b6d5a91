// The patient's side of the call: the device check offered in the waiting room, the signaling
// socket (opened while waiting, so the doctor's "admit" arrives at once), and the call view.
//
// A patient on a weak mobile line waits for every byte before the page shows anything: the
// waiting room needs only the signaling socket. The call's code (peer connections, chat, files,
// the call view) loads when the doctor admits, the device check's when the patient starts it;
// what the hub says before the call's code is there is kept and handed to it.

import { api } from '/static/common/api.js';
import { t } from '/static/common/i18n.js';
import { h } from '/static/common/dom.js';
import { Signaling, socketUrl } from '/static/call/signaling.js';

/** The tests' window into the page (call/debug.js), loaded only when a test asked for it. */
function register(name, value) {
  if (window.__szDebug === true) import('/static/call/debug.js').then((debug) => debug.register(name, value));
}

/** What the hub may say before the call's code is loaded; of some only the last one counts. */
const EARLY = ['welcome', 'room', 'admitted', 'signal', 'restart', 'ended', 'reset', 'fatal'];
const LATEST_ONLY = new Set(['welcome', 'room', 'admitted']);

let callStyles = null;

/** The call's style sheet, added to the page once the call's code is needed; resolves once it
 * applies (so nothing shows unstyled first). */
function loadCallStyles() {
  if (!callStyles) {
    callStyles = new Promise((resolve) => {
      const link = h('link', { rel: 'stylesheet', href: '/static/call/call.css' });
      link.addEventListener('load', resolve);
      link.addEventListener('error', resolve); // unstyled beats not at all
      document.head.append(link);
    });
  }
  return callStyles;
}

/**
 * One per page. `base` is "/v/<token>"; `onAdmitted()` / `onEnded(reason)` / `onRefused()`
 * tell patient.js.
 */
export function createVisitCall({ base, onAdmitted, onEnded, onRefused }) {
  let media = null;
  let signaling = null;
  let call = null;
  let view = null;
  let check = null;
  let finished = false;
  let connecting = null;
  let wanted = false;
  let leaving = 0;
  let early = [];
  const keep = (event) => {
    if (LATEST_ONLY.has(event.type)) early = early.filter((e) => e.type !== event.type);
    early.push(event);
  };

  /** Camera and microphone (for the check and the call), loaded on first use. */
  async function localMedia() {
    if (!media) {
      const { LocalMedia } = await import('/static/call/media.js');
      media = media || new LocalMedia();
      register('media', media);
    }
    return media;
  }

  /** The call's code, loaded when it is needed; it hears what the hub said meanwhile. */
  async function loadCall() {
    const [{ Call }, mediaNow] = await Promise.all([
      import('/static/call/call.js'), localMedia(), loadCallStyles()]);
    if (call || !signaling || finished) return call;
    call = new Call({ signaling, media: mediaNow, log: (...args) => console.debug('[call]', ...args) }); // eslint-disable-line no-console
    for (const type of EARLY) signaling.removeEventListener(type, keep);
    for (const event of early) if (call.handlers[event.type]) call.handlers[event.type](event);
    early = [];
    call.addEventListener('ended', (e) => finish(e.detail.reason));
    return call;
  }

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
    early = [];
    for (const type of EARLY) signaling.addEventListener(type, keep);
    signaling.addEventListener('admitted', () => onAdmitted());
    signaling.addEventListener('room', (e) => {
      const me = signaling.participant && (e.detail.participants || []).find((p) => p.id === signaling.participant.id);
      if (e.detail.state === 'in_call' && me && me.admitted) onAdmitted();
      if (e.detail.state === 'ended' && !call) finish('ended');
    });
    // ended or removed while still waiting: no call's code needed to say so
    signaling.addEventListener('ended', (e) => { if (!call) finish(e.detail.reason || 'ended'); });
    signaling.addEventListener('fatal', (e) => {
      if (!call) finish(e.detail.code === 'signal_removed' ? 'removed' : 'elsewhere');
    });
    signaling.addEventListener('refused', () => onRefused());
    signaling.start();
  }

  /** Out of the waiting room (the patient left it): no socket until they come back. */
  function disconnect() {
    if (view) return;
    wanted = false;
    if (!signaling) return;
    if (call) call.close();
    signaling.close();
    call = null;
    signaling = null;
    early = [];
  }

  /** The waiting room's offer: check camera, microphone and connection now. */
  function offerCheck(container, { onDone }) {
    container.replaceChildren();
    const start = h('button', { type: 'button', class: 'primary big-button', 'data-test': 'start-check' }, t('ui.visit.check_start'));
    const card = h('div', { class: 'check-offer', 'data-test': 'check-offer' },
      h('h2', {}, t('ui.visit.check_title')),
      h('p', {}, t('ui.visit.check_text')), start);
    container.append(card);
    start.addEventListener('click', async () => {
      start.disabled = true;
      const [{ renderDeviceCheck }, mediaNow] = await Promise.all([
        import('/static/call/device-check.js'), localMedia(), loadCallStyles()]);
      if (finished || view) return;
      card.remove();
      check = renderDeviceCheck(container, {
        media: mediaNow, url: `${base}/device-check`, doneLabel: t('ui.visit.check_done'),
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
    const [{ renderCallView }] = await Promise.all([import('/static/call/call-view.js'), loadCall()]);
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
    if (media) media.stop();
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
