// One remote participant: the RTCPeerConnection to them, rebuilt as a new connection whenever
// the media path dies (../shared/UPLINKS.md: a new connection recovers in ~1.2 s, ICE restart
// on a relayed path in ~4 s, waiting for ICE states takes 5 s or forever).
//
// Roles per pair: the leader (the doctor; between two guests the lower participant id) is the
// impolite side of perfect negotiation and the one that builds new connections; the follower
// is polite, adds its tracks after the first offer and follows the highest connection id.

import { snapshot, quality } from './stats.js';

const WATCH_MS = 250;
/**
 * No inbound packet for this long on a connection that carries the remote's sound or picture:
 * the path died (bench/RESULTS.md, failover_bench: 500 ms recovers in ~1.1 s, 1000 ms in
 * ~1.6 s; tests/e2e/test_call.py shows no needless rebuild at 500). With camera and
 * microphone both off only the data channel's heartbeat arrives, which a phone's background tab
 * may slow to once a second: then a longer silence is needed before calling the path dead.
 */
const SILENCE_MS = 500;
const QUIET_SILENCE_MS = 2500;
const GRACE_MS = 2000;
const RETRY_MS = 8000;
const QUALITY_MS = 1000;
/** How long after connecting the video bitrate is not judged (the bandwidth estimate ramps up). */
const VIDEO_RAMP_UP_MS = 8000;
const HEARTBEAT_MS = 250;
const TROUBLE_REPEAT_MS = 2000;
/** How long the box's word that a line died waits for a packet before it rebuilds. */
const STALL_CHECK_MS = 400;
const STALL_POLL_MS = 100;

/** Connection ids start from the clock, so a reloaded leader's ids still beat the old ones. */
let idBase = Date.now();

/**
 * Events: `stream` (the remote MediaStream to show changed), `state` ({state: 'connecting' |
 * 'connected' | 'reconnecting'}), `quality` ({level, rttMs, loss, bitrate, bytes}), `message`
 * (a chat/control object from the remote), `file-frame` (a frame of the file channel),
 * `files-ready` (a new file channel opened), `closed`.
 */
export class Peer extends EventTarget {
  constructor({ remote, leader, send, media, iceServers = [], icePolicy = 'all', log = () => {} }) {
    super();
    this.remote = remote;
    this.leader = leader;
    this.sendSignal = send;
    this.media = media;
    this.iceServers = iceServers;
    // 'relay' (a doctor's PC whose LAN addresses stay hidden) or 'all', as the hub says
    this.icePolicy = icePolicy;
    this.log = log;
    this.current = null;
    this.pending = null;
    this.highest = 0;
    this.remotePage = null;
    this.state = 'connecting';
    this.remoteFlags = { mic: true, camera: true, screen: false, saving: false };
    this.localSaving = false;
    this.bytesRetired = 0;
    this.lastTroubleSent = 0;
    this.closed = false;
    this.lastQuality = null;
    /** counts the ICE servers the hub gave; a connection remembers the count it was built with */
    this.iceVersion = 0;
    this.watchTimer = setInterval(() => this.watch(), WATCH_MS);
    this.onMediaChange = (event) => this.replaceTracks(event.detail.kind);
    this.onMediaState = () => this.sendFlags();
    media.addEventListener('change', this.onMediaChange);
    media.addEventListener('state', this.onMediaState);
  }

  /** The leader opens the first connection; the follower waits for its offer. */
  start() {
    if (this.leader && !this.current && !this.pending) this.current = this.connection(++idBase);
  }

  get stream() {
    return this.current ? this.current.stream : null;
  }

  /** All live RTCPeerConnections (for the tests' debug hook and statistics). */
  get connections() {
    return [this.current, this.pending].filter(Boolean);
  }

  connection(id) {
    this.highest = Math.max(this.highest, id);
    const conn = new Connection(this, id);
    this.log('new connection', this.remote.id, id);
    return conn;
  }

  // --- signaling from the remote ------------------------------------------------------------------

  onSignal(data) {
    if (!data || typeof data !== 'object') return;
    if (data.kind === 'hello') {
      this.onHello(data);
      return;
    }
    if (data.kind === 'trouble') {
      if (this.leader && this.current && data.connection === this.current.id) this.recover('remote');
      return;
    }
    const id = Number(data.connection);
    if (!Number.isFinite(id)) return;
    let conn = [this.current, this.pending].find((c) => c && c.id === id);
    if (!conn && id > this.highest && !this.leader) {
      // the leader built a new connection: follow it, and drop a half-built older one
      if (this.pending) this.pending.close();
      conn = this.connection(id);
      if (this.current) this.pending = conn;
      else this.current = conn;
    }
    if (conn) conn.onSignal(data);
  }

  /** A (re)loaded page on the other side: a leader answers a new page with a new connection. */
  onHello(data) {
    const known = this.remotePage;
    this.remotePage = data.page;
    if (!this.leader) return;
    if (known && known !== data.page) this.recover('reload');
    else this.start();
  }

  // --- recovery --------------------------------------------------------------------------------

  /** Build a new connection (leader) or ask the leader to (follower); debounced. */
  recover(reason) {
    if (this.closed) return;
    this.setState('reconnecting');
    if (!this.leader) {
      if (Date.now() - this.lastTroubleSent >= TROUBLE_REPEAT_MS && this.current) {
        this.lastTroubleSent = Date.now();
        this.sendSignal({ kind: 'trouble', connection: this.current.id });
      }
      return;
    }
    if (this.pending && Date.now() - this.pending.createdAt < RETRY_MS) return;
    this.log('recover', this.remote.id, reason);
    if (this.pending) this.pending.close();
    const id = Math.max(this.highest, this.current ? this.current.id : 0) + 1;
    if (this.current) this.pending = this.connection(id);
    else this.current = this.connection(id);
  }

  /**
   * The box says one of the practice's lines died: rebuild unless media still flows (the box
   * cannot see which line this call uses, and the watchdog may have moved it already).
   */
  async recoverIfStalled(reason) {
    const conn = this.current;
    if (this.pending && this.pending.iceVersion !== this.iceVersion && this.leader) {
      // a new connection is being built with servers of a line that just died: build it again
      // with the servers the box just gave (setConfiguration does not make it gather anew)
      this.pending.close();
      this.pending = null;
      this.recover(reason);
      return;
    }
    if (this.closed || !conn || !conn.everConnected || this.pending) {
      if (conn && !conn.everConnected) this.recover(reason);
      return;
    }
    let before = null;
    for (let waited = 0; waited <= STALL_CHECK_MS; waited += STALL_POLL_MS) {
      let s;
      try {
        s = await snapshot(conn.pc);
      } catch {
        break;
      }
      const activity = s.packetsIn + s.dataMessagesIn;
      if (before !== null && activity > before) return; // still flowing: stay
      before = activity;
      await new Promise((resolve) => { setTimeout(resolve, STALL_POLL_MS); });
      if (conn !== this.current || this.closed) return;
    }
    this.recover(reason);
  }

  /** The new connection works: it replaces the old one, which closes now. */
  promote(conn) {
    if (conn === this.pending) {
      const old = this.current;
      this.current = conn;
      this.pending = null;
      if (old) {
        this.bytesRetired += old.bytes;
        old.close();
      }
      this.dispatchEvent(new CustomEvent('stream', { detail: { stream: conn.stream } }));
    }
    if (conn === this.current) {
      this.setState('connected');
      this.applySaving();
      this.sendFlags(true);
      this.dispatchEvent(new CustomEvent('files-ready', { detail: { channel: conn.files } }));
    }
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state } }));
  }

  // --- the media watchdog and the quality indicator --------------------------------------------

  async watch() {
    if (this.closed) return;
    if (this.leader && this.pending && Date.now() - this.pending.createdAt >= RETRY_MS) {
      this.recover('retry'); // the new connection did not come up in time: another one
    }
    if (this.leader && this.current && !this.current.everConnected
        && Date.now() - this.current.createdAt >= RETRY_MS && !this.pending) {
      this.recover('connect-timeout');
    }
    const conn = this.current;
    if (!conn || !conn.everConnected || conn.reading) return;
    conn.reading = true;
    let s;
    try {
      s = await snapshot(conn.pc);
    } catch {
      return;
    } finally {
      conn.reading = false;
    }
    if (conn !== this.current || this.closed) return;
    conn.bytes = s.bytesSent + s.bytesReceived;
    const activity = s.packetsIn + s.dataMessagesIn;
    const now = performance.now();
    if (activity > conn.activity) {
      conn.activity = activity;
      conn.activeAt = now;
      if (conn.troubled) {
        conn.troubled = false;
        if (!this.pending) this.setState('connected');
      }
    } else if (now - conn.activeAt > this.silenceMs() && now - conn.connectedAt > GRACE_MS) {
      conn.troubled = true;
      this.recover('silence');
    }
    if (!conn.qualityBase) conn.qualityBase = s;
    else if (s.at - conn.qualityBase.at >= QUALITY_MS) {
      const expectVideo = this.remoteFlags.camera || this.remoteFlags.screen;
      const lowVideo = this.localSaving || Boolean(this.remoteFlags.saving) || Boolean(this.remoteFlags.screen);
      const rampUp = now - conn.connectedAt < VIDEO_RAMP_UP_MS;
      const q = quality(conn.qualityBase, s, { expectVideo, lowVideo, rampUp });
      conn.qualityBase = s;
      if (conn.troubled) q.level = 'poor';
      this.lastQuality = { ...q, bytes: this.bytes };
      this.dispatchEvent(new CustomEvent('quality', { detail: this.lastQuality }));
    }
  }

  /** How long a silence means a dead path: short while the remote sends sound or picture. */
  silenceMs() {
    const flags = this.remoteFlags;
    return flags.mic || flags.camera || flags.screen ? SILENCE_MS : QUIET_SILENCE_MS;
  }

  /** Bytes sent and received with this participant so far, over every connection. */
  get bytes() {
    return this.bytesRetired + this.connections.reduce((sum, c) => sum + c.bytes, 0);
  }

  // --- local media and sending ------------------------------------------------------------------

  replaceTracks(kind) {
    for (const conn of this.connections) conn.replaceTrack(kind);
    if (kind === 'video') this.applySaving();
    this.sendFlags();
  }

  /** Tell the remote what we send (mic, camera, screen, data saving) when that changed. */
  sendFlags(force = false) {
    const flags = { t: 'state', ...this.media.flags(), saving: this.localSaving };
    const text = JSON.stringify(flags);
    if (!force && text === this.flagsSent) return;
    if (this.sendControl(flags)) this.flagsSent = text;
  }

  setSaving(on) {
    this.localSaving = on;
    this.applySaving();
    // the remote lowers what it sends us, too: data saving works in both directions
    this.sendFlags();
  }

  applySaving() {
    const saving = this.localSaving || Boolean(this.remoteFlags.saving);
    for (const conn of this.connections) conn.limitVideo(saving);
  }

  /** A control or chat object over the data channel of the working connection. */
  sendControl(message) {
    const channel = this.openChannel('chat');
    if (!channel) return false;
    try {
      channel.send(JSON.stringify(message));
      return true;
    } catch {
      return false;
    }
  }

  openChannel(name) {
    for (const conn of [this.current, this.pending]) {
      if (conn && conn[name] && conn[name].readyState === 'open') return conn[name];
    }
    return null;
  }

  onControl(conn, message) {
    if (message.t === 'hb') return;
    if (message.t === 'state') {
      this.remoteFlags = { ...this.remoteFlags, ...message };
      this.applySaving();
    }
    this.dispatchEvent(new CustomEvent('message', { detail: message }));
  }

  setIceServers(iceServers, icePolicy = this.icePolicy) {
    this.iceServers = iceServers;
    this.icePolicy = icePolicy;
    this.iceVersion += 1;
    for (const conn of this.connections) {
      try {
        conn.pc.setConfiguration({
          ...conn.pc.getConfiguration(), iceServers, iceTransportPolicy: icePolicy,
        });
      } catch (error) {
        this.log('setConfiguration', error);
      }
    }
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.watchTimer);
    this.media.removeEventListener('change', this.onMediaChange);
    this.media.removeEventListener('state', this.onMediaState);
    for (const conn of this.connections) {
      this.bytesRetired += conn.bytes;
      conn.close();
    }
    this.current = null;
    this.pending = null;
    this.dispatchEvent(new CustomEvent('closed'));
  }
}

/** One RTCPeerConnection with its perfect-negotiation state, tagged with a connection id. */
class Connection {
  constructor(peer, id) {
    this.peer = peer;
    this.id = id;
    this.createdAt = Date.now();
    this.iceVersion = peer.iceVersion;
    this.polite = !peer.leader;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.tracksAdded = false;
    this.everConnected = false;
    this.connectedAt = 0;
    this.activity = 0;
    this.activeAt = 0;
    this.troubled = false;
    this.bytes = 0;
    this.qualityBase = null;
    this.queue = Promise.resolve();
    this.closed = false;
    this.stream = new MediaStream();
    this.senders = {};
    const pc = new RTCPeerConnection({
      iceServers: peer.iceServers, iceTransportPolicy: peer.icePolicy,
      bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require',
    });
    this.pc = pc;
    // negotiated channels exist on both sides without a second offer: chat/control and files
    this.chat = pc.createDataChannel('chat', { negotiated: true, id: 0, ordered: true });
    this.files = pc.createDataChannel('files', { negotiated: true, id: 1, ordered: true });
    this.files.binaryType = 'arraybuffer';
    this.chat.addEventListener('open', () => this.startHeartbeat());
    this.chat.addEventListener('message', (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message && typeof message.t === 'string') peer.onControl(this, message);
    });
    this.files.addEventListener('message', (event) => {
      peer.dispatchEvent(new CustomEvent('file-frame', { detail: { data: event.data, connection: this.id } }));
    });
    pc.addEventListener('icecandidate', ({ candidate }) => {
      if (candidate && !this.closed) this.send({ kind: 'candidate', candidate: candidate.toJSON() });
    });
    pc.addEventListener('track', (event) => {
      if (!this.stream.getTracks().includes(event.track)) this.stream.addTrack(event.track);
      if (this === peer.current) {
        peer.dispatchEvent(new CustomEvent('stream', { detail: { stream: this.stream } }));
      }
    });
    pc.addEventListener('connectionstatechange', () => {
      if (this.closed) return;
      if (pc.connectionState === 'connected') {
        if (!this.everConnected) {
          this.everConnected = true;
          this.connectedAt = performance.now();
          this.activeAt = this.connectedAt;
        }
        peer.promote(this);
      } else if (pc.connectionState === 'failed' && this === peer.current) {
        peer.recover('failed');
      }
    });
    pc.addEventListener('negotiationneeded', () => this.negotiate());
    if (peer.leader) {
      // the leader offers audio, video and both channels at once; the follower answers into them
      for (const kind of ['audio', 'video']) {
        const track = peer.media.track(kind);
        const transceiver = pc.addTransceiver(track || kind, {
          direction: 'sendrecv', streams: [peer.media.stream],
        });
        this.senders[kind] = transceiver.sender;
      }
      this.tracksAdded = true;
    }
  }

  send(data) {
    this.peer.sendSignal({ ...data, connection: this.id });
  }

  negotiate() {
    this.queue = this.queue.then(async () => {
      if (this.closed) return;
      try {
        this.makingOffer = true;
        await this.pc.setLocalDescription();
        this.send({ kind: 'description', description: this.pc.localDescription.toJSON() });
      } catch (error) {
        this.peer.log('offer failed', error);
      } finally {
        this.makingOffer = false;
      }
    });
  }

  onSignal(data) {
    this.queue = this.queue.then(() => this.handle(data)).catch((error) => this.peer.log('signal', error));
  }

  async handle(data) {
    if (this.closed) return;
    const pc = this.pc;
    if (data.kind === 'description' && data.description) {
      const description = data.description;
      const collision = description.type === 'offer'
        && (this.makingOffer || pc.signalingState !== 'stable');
      this.ignoreOffer = !this.polite && collision;
      if (this.ignoreOffer) return;
      await pc.setRemoteDescription(description); // the polite side rolls back implicitly
      if (description.type === 'offer') {
        if (!this.tracksAdded) this.addTracksAfterOffer();
        await pc.setLocalDescription();
        this.send({ kind: 'description', description: pc.localDescription.toJSON() });
      }
    } else if (data.kind === 'candidate' && data.candidate) {
      try {
        await pc.addIceCandidate(data.candidate);
      } catch (error) {
        if (!this.ignoreOffer) this.peer.log('candidate', error);
      }
    }
  }

  /** The follower sends into the transceivers the offer created (no second negotiation). */
  addTracksAfterOffer() {
    this.tracksAdded = true;
    for (const transceiver of this.pc.getTransceivers()) {
      const kind = transceiver.receiver.track && transceiver.receiver.track.kind;
      if (!kind || this.senders[kind]) continue;
      this.senders[kind] = transceiver.sender;
      transceiver.direction = 'sendrecv';
      const track = this.peer.media.track(kind);
      if (track) transceiver.sender.replaceTrack(track);
      if (typeof transceiver.sender.setStreams === 'function') transceiver.sender.setStreams(this.peer.media.stream);
    }
  }

  replaceTrack(kind) {
    const sender = this.senders[kind];
    if (!sender || this.closed) return;
    sender.replaceTrack(this.peer.media.track(kind)).catch((error) => this.peer.log('replaceTrack', error));
  }

  /** Data saving: at most ~250 kbit/s, half the resolution, 15 frames per second. */
  async limitVideo(saving) {
    const sender = this.senders.video;
    if (!sender || this.closed) return;
    const params = sender.getParameters();
    if (!params.encodings || params.encodings.length === 0) return; // not negotiated yet
    for (const encoding of params.encodings) {
      if (saving) {
        encoding.maxBitrate = 250_000;
        encoding.maxFramerate = 15;
        encoding.scaleResolutionDownBy = this.peer.media.saving ? 1 : 2;
      } else {
        delete encoding.maxBitrate;
        delete encoding.maxFramerate;
        encoding.scaleResolutionDownBy = 1;
      }
    }
    try {
      await sender.setParameters(params);
    } catch (error) {
      this.peer.log('setParameters', error);
    }
  }

  /** A small message 4× a second keeps the watchdog fed while camera and microphone are off. */
  startHeartbeat() {
    clearInterval(this.heartbeat);
    this.heartbeat = setInterval(() => {
      if (this.chat.readyState === 'open') {
        try {
          this.chat.send('{"t":"hb"}');
        } catch {
          // the channel is closing; the watchdog decides what that means
        }
      }
    }, HEARTBEAT_MS);
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    try {
      this.pc.close();
    } catch {
      // already closed
    }
  }
}
