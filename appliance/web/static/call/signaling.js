// The signaling client (docs/signaling.md, version 1): one WebSocket per origin, all of them
// used at once, with an app-level heartbeat, a reliable outbox and in-order delivery.
//
// Why this much: a socket on a dead uplink never fires `close`, and what is written to it is
// lost (../shared/UPLINKS.md). So every reliable message is numbered, kept until the hub
// acknowledges it and replayed on the next socket; the hub does the same towards us.

const VERSION = 1;
/** until the hub's welcome says its heartbeat, a page pings this often */
const FIRST_PING_MS = 500;
/** a socket silent for this many heartbeats is dead */
const DEAD_BEATS = 4;
const ACK_DELAY_MS = 100;
/** Pauses before reconnecting: short while an outage is young (a restart of the box takes a few
 * seconds, and the pages should be back within about a second of it), then every 5 s; each
 * with ±20 % jitter, so that many waiting pages do not knock all at once. */
const BACKOFF_MS = [0, 250, 500, 750, 1000];
const FAST_ATTEMPTS = 30;
const MAX_BACKOFF_MS = 5000;
/** What the user did (not the peers' negotiation): it must survive a restart of the box. */
const ACTIONS = new Set(['admit', 'remove', 'end', 'leave']);
/** Close codes and HTTP refusals after which retrying makes no sense without asking the box. */
const REFUSAL_LIMIT = 4;
/** Hub errors after which this page must stop: removed, another window took over, room full. */
const FATAL = new Set(['signal_removed', 'signal_replaced', 'signal_room_full']);

/** A random session id for this page load (16–64 chars): a reload is a new session. */
export function newSessionId() {
  const bytes = new Uint8Array(18);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** ws(s)://host/path for an origin ("https://host:8443") and a path ("/v/…/signal"). */
export function socketUrl(origin, path) {
  const url = new URL(path, origin);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}

/**
 * Events (CustomEvent, payload in `detail`): `welcome` (own participant), `room`, `signal`,
 * `admitted`, `restart`, `ended`, `error` (hub error frames), `status` ({connected: n}),
 * `refused` (the box keeps refusing the socket: the page should ask the box what holds),
 * `fatal` ({code, message}: this page is out, e.g. the call was opened in another window),
 * `reset` (the box forgot our session, e.g. it restarted: a new one began, peers must resync).
 */
export class Signaling extends EventTarget {
  /**
   * @param {string[]} urls one WebSocket URL per public host of the practice (one per uplink)
   * @param {object} options `protocols`: offered on every socket (a ticket for the hosts that do
   *   not see this host's cookie travels as one, so it is in no URL)
   */
  constructor(urls, { session = newSessionId(), protocols = [], log = () => {} } = {}) {
    super();
    this.urls = urls;
    this.protocols = protocols;
    this.session = session;
    this.log = log;
    this.participant = null;
    this.links = urls.map((url) => new Link(this, url));
    // our reliable messages: seq → frame, until the hub acknowledges them
    this.nextSeq = 1;
    this.outbox = new Map();
    // the hub's reliable messages: highest seq applied in order, and those that came early
    this.received = 0;
    this.early = new Map();
    this.ackTimer = null;
    this.ackSent = 0;
    this.closed = false;
    this.started = false;
  }

  start() {
    this.started = true;
    for (const link of this.links) link.open();
    return this;
  }

  /** One more socket, to another public host (once; it opens at once if started). */
  addUrl(url) {
    if (this.closed || this.urls.includes(url)) return;
    this.urls.push(url);
    const link = new Link(this, url);
    this.links.push(link);
    if (this.started) link.open();
  }

  /** Queue a reliable message (`signal`, `admit`, `end`, …) and send it on every live socket. */
  send(type, payload = {}) {
    if (this.closed) return 0;
    const seq = this.nextSeq++;
    const frame = JSON.stringify({ v: VERSION, type, seq, ...payload });
    this.outbox.set(seq, frame);
    for (const link of this.links) if (link.ready) link.write(frame);
    return seq;
  }

  /** Stop for good (end of the call, page leaving). */
  close() {
    this.closed = true;
    clearTimeout(this.ackTimer);
    for (const link of this.links) link.shutdown();
  }

  get connected() {
    return this.links.filter((link) => link.ready).length;
  }

  // --- test hooks (window.__sz): a dead path without a close, or a plain close -----------------

  /** Close every socket now (the heartbeat then opens new ones). */
  kill() {
    for (const link of this.links) link.drop('test');
  }

  /** Stop reading and writing on the current sockets, as a dead uplink would. */
  stall() {
    for (const link of this.links) link.stall();
  }

  // --- called by the links --------------------------------------------------------------------

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _status() {
    this._emit('status', { connected: this.connected, sockets: this.links.length });
  }

  _hello(link) {
    link.write(JSON.stringify({ v: VERSION, type: 'hello', session: this.session, received: this.received }));
  }

  _frame(link, message) {
    switch (message.type) {
      case 'welcome':
        this.participant = message.participant || this.participant;
        this._acked(Number(message.received) || 0);
        link.welcomed(Number(message.heartbeat_ms) || FIRST_PING_MS);
        // everything the hub has not processed yet goes out again on this socket, in order
        for (const frame of this.outbox.values()) link.write(frame);
        this._emit('welcome', message);
        this._status();
        return;
      case 'pong':
        return;
      case 'ack':
        this._acked(Number(message.upto) || 0);
        return;
      case 'error':
        this.log('hub error', message);
        if (FATAL.has(message.code)) {
          this.close();
          this._emit('fatal', message);
        } else if (message.code === 'signal_session_unknown') {
          this._newSession();
        } else {
          this._emit('error', message);
        }
        return;
      default:
        if (Number.isInteger(message.seq) && message.seq > 0) this._reliable(message);
    }
  }

  /** The hub does not know our session (it restarted): start afresh, as a reload would. The
   * peers' negotiation starts over (`reset`), but what the user did and the hub has not
   * confirmed — the doctor's "Beenden", an admission, a removal — is sent again. */
  _newSession() {
    const actions = [...this.outbox.values()].map((frame) => JSON.parse(frame))
      .filter((message) => ACTIONS.has(message.type));
    this.session = newSessionId();
    this.received = 0;
    this.early.clear();
    this.outbox.clear();
    this.nextSeq = 1;
    this.ackSent = 0;
    // the box answers again (it just told us): the new session's hello goes out at once
    for (const link of this.links) link.attempt = 0;
    this._emit('reset', {});
    for (const { v, seq, type, ...payload } of actions) this.send(type, payload);
  }

  _acked(upto) {
    for (const seq of this.outbox.keys()) if (seq <= upto) this.outbox.delete(seq);
  }

  /** Apply hub messages strictly in order; duplicates (several sockets, replays) are dropped. */
  _reliable(message) {
    if (message.seq <= this.received) {
      this._scheduleAck(); // a replay: the hub missed our ack, tell it again
      return;
    }
    this.early.set(message.seq, message);
    while (this.early.has(this.received + 1)) {
      const next = this.early.get(this.received + 1);
      this.early.delete(this.received + 1);
      this.received += 1;
      try {
        this._emit(next.type, next);
      } catch (error) {
        this.log('handler failed', error);
      }
    }
    this._scheduleAck();
  }

  _scheduleAck() {
    if (this.ackTimer) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = null;
      this._sendAck();
    }, ACK_DELAY_MS);
  }

  _sendAck() {
    const frame = JSON.stringify({ v: VERSION, type: 'ack', upto: this.received });
    for (const link of this.links) if (link.ready) link.write(frame);
    this.ackSent = this.received;
  }
}

/** One socket towards one origin, reopened with backoff whenever it dies. */
class Link {
  constructor(owner, url) {
    this.owner = owner;
    this.url = url;
    this.socket = null;
    this.ready = false;
    this.attempt = 0;
    this.refusals = 0;
    this.lastFrame = 0;
    this.pingTimer = null;
    this.retryTimer = null;
    this.stopped = false;
    this.stalled = false;
  }

  open() {
    if (this.stopped || this.owner.closed) return;
    clearTimeout(this.retryTimer);
    let socket;
    try {
      socket = this.owner.protocols.length ? new WebSocket(this.url, this.owner.protocols) : new WebSocket(this.url);
    } catch (error) {
      this.owner.log('socket', error);
      this.retry();
      return;
    }
    this.socket = socket;
    this.ready = false;
    this.stalled = false;
    this.lastFrame = Date.now();
    let opened = false;
    socket.addEventListener('open', () => {
      if (socket !== this.socket) return;
      opened = true;
      this.lastFrame = Date.now();
      this.owner._hello(this);
    });
    socket.addEventListener('message', (event) => {
      if (socket !== this.socket || this.stalled) return;
      this.lastFrame = Date.now();
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message && message.v === VERSION && typeof message.type === 'string') {
        this.owner._frame(this, message);
      }
    });
    socket.addEventListener('close', (event) => {
      if (socket !== this.socket) return;
      // refused before it opened (HTTP 401/403/410), or closed by the box on purpose (4xxx)
      if (!opened || (event.code >= 4000 && event.code < 5000)) this.refusals += 1;
      this.lost();
    });
    // the heartbeat runs from the start: a connect that hangs is a dead socket too
    clearInterval(this.pingTimer);
    this.pingMs = FIRST_PING_MS;
    this.pingTimer = setInterval(() => this.beat(socket), this.pingMs);
  }

  beat(socket) {
    if (socket !== this.socket) return;
    if (Date.now() - this.lastFrame > DEAD_BEATS * this.pingMs) {
      this.drop('heartbeat');
      return;
    }
    if (this.ready) {
      this.write(JSON.stringify({ v: VERSION, type: 'ping', t: Date.now() }));
      if (this.owner.received > this.owner.ackSent) this.owner._sendAck();
    }
  }

  /** The hub answered hello: ping at its heartbeat from now on. */
  welcomed(heartbeatMs) {
    if (heartbeatMs !== this.pingMs) {
      const socket = this.socket;
      this.pingMs = heartbeatMs;
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => this.beat(socket), this.pingMs);
    }
    this.ready = true;
    this.attempt = 0;
    this.refusals = 0;
  }

  write(frame) {
    if (this.stalled || !this.socket || this.socket.readyState !== WebSocket.OPEN) return;
    try {
      this.socket.send(frame);
    } catch (error) {
      this.owner.log('send', error);
    }
  }

  /** Give up on this socket (dead or refused) and open a new one after a pause. */
  drop(reason) {
    this.owner.log('drop socket', this.url, reason);
    const socket = this.socket;
    this.lost();
    if (socket) {
      try {
        socket.close(1000, reason);
      } catch {
        // closing a socket that never opened throws in some browsers: it is gone either way
      }
    }
  }

  lost() {
    const wasReady = this.ready;
    this.socket = null;
    this.ready = false;
    this.stalled = false;
    clearInterval(this.pingTimer);
    if (wasReady) this.owner._status();
    if (this.refusals >= REFUSAL_LIMIT) {
      this.refusals = 0;
      this.owner._emit('refused', { url: this.url });
    }
    this.retry();
  }

  retry() {
    if (this.stopped || this.owner.closed) return;
    const base = this.attempt < FAST_ATTEMPTS
      ? BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)] : MAX_BACKOFF_MS;
    this.attempt += 1;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.open(), base * (0.8 + 0.4 * Math.random()));
  }

  /** Frames in both directions are lost from now on; only the heartbeat can notice. */
  stall() {
    if (this.socket) this.stalled = true;
  }

  shutdown() {
    this.stopped = true;
    clearInterval(this.pingTimer);
    clearTimeout(this.retryTimer);
    const socket = this.socket;
    this.socket = null;
    this.ready = false;
    if (socket) {
      try {
        socket.close(1000, 'bye');
      } catch {
        // already closed
      }
    }
  }
}
