// The call of one page: the room as the hub reports it, one Peer per other participant (a full
// mesh of up to 4), chat and files to everyone, and the hub's orders (restart, ended).

import { Peer } from './peer.js';
import { FileTransfers } from './files.js';
import { register } from './debug.js';

/** How long to wait for the hub's `admitted` (TURN credentials) before connecting without. */
const ICE_WAIT_MS = 1500;

/** A random id of this page (load or signaling session), so the other side notices a reload. */
function newPage() {
  return Math.random().toString(36).slice(2) + Date.now().toString(36);
}

/**
 * Events: `room` (the room changed), `peer` ({peer} added), `peer-gone` ({id}), `message`
 * ({from, message}: chat and state from a participant), `ended` ({reason}), `admitted`.
 */
export class Call extends EventTarget {
  constructor({ signaling, media, log = () => {} }) {
    super();
    this.signaling = signaling;
    this.media = media;
    this.log = log;
    this.self = signaling.participant;
    this.participants = new Map();
    this.state = 'waiting';
    this.peers = new Map();
    /** peer connections this page may open: none until the hub's welcome says how many */
    this.maxPeers = 0;
    this.iceServers = null;
    this.icePolicy = 'all';
    this.joined = false;
    this.ended = null;
    this.buffered = [];
    this.files = new FileTransfers();
    this.saving = false;
    this.iceTimer = null;
    this.page = newPage();
    /** when the box last said one of the practice's lines died (0: never) */
    this.lineFailoverAt = 0;
    this.handlers = {
      welcome: (e) => {
        this.self = e.detail.participant || this.self;
        // the hub's limit, the doctor included: this page connects to one fewer
        this.maxPeers = Math.max(0, (Number(e.detail.max_participants) || 1) - 1);
        this.sync();
      },
      room: (e) => this.onRoom(e.detail),
      admitted: (e) => this.onAdmitted(e.detail),
      signal: (e) => this.onSignal(e.detail),
      restart: (e) => this.onRestart(e.detail || {}),
      ended: (e) => this.onEnded(e.detail),
      // the box forgot our session (it restarted, or we were away past the grace period). The
      // participant ids stay the same, so the peer connections (P2P) simply go on; each peer
      // hears again which page this is, and one that started over answers with a new connection.
      reset: () => {
        for (const id of this.peers.keys()) this.sayHello(id);
        this.sync();
      },
      // removed, or the same person opened the call in another window: this page is out
      fatal: (e) => this.onEnded({ reason: e.detail.code === 'signal_removed' ? 'removed' : 'elsewhere' }),
    };
    for (const [type, handler] of Object.entries(this.handlers)) signaling.addEventListener(type, handler);
    register('call', this);
  }

  get isDoctor() {
    return Boolean(this.self && this.self.role === 'doctor');
  }

  /** Participants other than this page's, as the hub reports them. */
  get others() {
    return [...this.participants.values()].filter((p) => !this.self || p.id !== this.self.id);
  }

  /** Start (or resume) media with everyone in the call. */
  join() {
    this.joined = true;
    this.sync();
    if (this.iceServers === null && !this.iceTimer) {
      this.iceTimer = setTimeout(() => {
        if (this.iceServers === null) this.iceServers = [];
        this.sync();
      }, ICE_WAIT_MS);
    }
  }

  // --- doctor's orders (O3: only the doctor admits, removes and ends) -------------------------

  admit(participantId) {
    return this.signaling.send('admit', { participant: participantId });
  }

  remove(participantId) {
    return this.signaling.send('remove', { participant: participantId });
  }

  end() {
    return this.signaling.send('end');
  }

  /** Ask every participant to build new connections (the doctor's "Neu verbinden"). */
  restartAll() {
    if (this.isDoctor) this.signaling.send('restart');
    for (const peer of this.peers.values()) peer.recover('manual');
  }

  leave() {
    return this.signaling.send('leave');
  }

  // --- chat, files, media flags -----------------------------------------------------------------

  sendChat(text) {
    const message = { t: 'chat', id: `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`, text, at: Date.now() };
    let sent = 0;
    for (const peer of this.peers.values()) if (peer.sendControl(message)) sent += 1;
    return { message, sent };
  }

  sendFile(file) {
    return [...this.peers.values()].map((peer) => this.files.send(peer, file));
  }

  setSaving(on) {
    this.saving = on;
    this.media.setSaving(on);
    for (const peer of this.peers.values()) peer.setSaving(on);
  }

  /** Bytes sent and received so far with everyone. */
  get bytes() {
    let total = 0;
    for (const peer of this.peers.values()) total += peer.bytes;
    return total + (this.bytesGone || 0);
  }

  // --- from the hub ------------------------------------------------------------------------------

  onRoom(room) {
    this.state = room.state || this.state;
    this.participants = new Map((room.participants || []).map((p) => [p.id, p]));
    this.dispatchEvent(new CustomEvent('room', { detail: room }));
    if (this.state === 'ended' && !this.ended) this.onEnded({ reason: 'ended' });
    this.sync();
  }

  onAdmitted(message) {
    this.iceServers = Array.isArray(message.ice_servers) ? message.ice_servers : [];
    this.icePolicy = message.ice_policy === 'relay' ? 'relay' : 'all';
    for (const peer of this.peers.values()) peer.setIceServers(this.iceServers, this.icePolicy);
    this.dispatchEvent(new CustomEvent('admitted', { detail: message }));
    this.sync();
  }

  onSignal(message) {
    if (!this.readyFor(message.from)) {
      this.buffered.push(message);
      return;
    }
    const peer = this.peerFor(message.from);
    if (peer) peer.onSignal(message.data);
  }

  onRestart(message) {
    if (message.reason === 'uplink') {
      // one of the practice's lines died (the box's uplink monitor): the new ICE servers came
      // just before; only a connection whose media stopped moves
      this.lineFailoverAt = Date.now();
      for (const peer of this.peers.values()) peer.recoverIfStalled('uplink');
      this.dispatchEvent(new CustomEvent('line-failover'));
      return;
    }
    for (const peer of this.peers.values()) peer.recover('hub');
  }

  /** Whether the box said a line died in the last `ms` milliseconds. */
  lineFailedRecently(ms = 30000) {
    return Boolean(this.lineFailoverAt) && Date.now() - this.lineFailoverAt < ms;
  }

  onEnded(message) {
    if (this.ended) return;
    this.ended = message.reason || 'ended';
    this.close();
    this.dispatchEvent(new CustomEvent('ended', { detail: { reason: this.ended } }));
  }

  /** Whether this participant is part of the running call (the doctor always is). */
  inCall(participant) {
    if (!participant) return false;
    return participant.role === 'doctor' || Boolean(participant.admitted);
  }

  readyFor(from) {
    return this.joined && this.iceServers !== null && this.participants.has(from) && !this.ended;
  }

  /** Peers for every admitted, present participant; none for those who left or were removed. */
  sync() {
    // whoever is not in the room at all any more (left for good, removed) has no peer, whatever
    // the room's state: a peer kept would show a frozen picture and "Verbindung unterbrochen"
    for (const id of [...this.peers.keys()]) if (!this.participants.has(id)) this.dropPeer(id);
    if (!this.joined || this.ended || this.iceServers === null || !this.self) return;
    const me = this.participants.get(this.self.id) || this.self;
    if (this.state !== 'in_call' || !(this.isDoctor || this.inCall(me))) return;
    const wanted = this.others.filter((p) => this.inCall(p)).slice(0, this.maxPeers);
    for (const p of wanted) {
      const peer = this.peerFor(p.id);
      if (peer && p.present !== false) peer.start();
    }
    for (const id of [...this.peers.keys()]) {
      if (!wanted.some((p) => p.id === id)) this.dropPeer(id);
    }
    const waiting = this.buffered;
    this.buffered = [];
    for (const message of waiting) this.onSignal(message);
  }

  peerFor(id) {
    if (this.peers.has(id)) return this.peers.get(id);
    const remote = this.participants.get(id);
    if (!remote || !this.inCall(remote) || this.peers.size >= this.maxPeers) return null;
    const peer = new Peer({
      remote, leader: this.leads(remote), media: this.media, iceServers: this.iceServers,
      icePolicy: this.icePolicy,
      send: (data) => this.signaling.send('signal', { to: id, data }), log: this.log,
    });
    peer.addEventListener('message', (e) => this.dispatchEvent(new CustomEvent('message', {
      detail: { from: id, message: e.detail },
    })));
    peer.addEventListener('file-frame', (e) => this.files.receive(id, e.detail.data));
    peer.addEventListener('stream', () => this.files.channelReset(id));
    if (this.saving) peer.setSaving(true);
    this.peers.set(id, peer);
    this.sayHello(id);
    this.dispatchEvent(new CustomEvent('peer', { detail: { peer } }));
    return peer;
  }

  /** Tell participant `id` which page this is: a leader answers a reloaded page at once. */
  sayHello(id) {
    this.signaling.send('signal', { to: id, data: { kind: 'hello', page: this.page } });
  }

  /** Doctor leads; between two guests the lower participant id does (a fixed, shared rule). */
  leads(remote) {
    if (this.isDoctor) return true;
    if (remote.role === 'doctor') return false;
    return String(this.self.id) < String(remote.id);
  }

  dropPeer(id) {
    const peer = this.peers.get(id);
    if (!peer) return;
    this.bytesGone = (this.bytesGone || 0) + peer.bytes;
    peer.close();
    this.peers.delete(id);
    this.files.channelReset(id);
    this.dispatchEvent(new CustomEvent('peer-gone', { detail: { id } }));
  }

  /** Every RTCPeerConnection of this page (tests read their statistics). */
  get connections() {
    return [...this.peers.values()].flatMap((peer) => peer.connections.map((c) => c.pc));
  }

  close() {
    clearTimeout(this.iceTimer);
    for (const id of [...this.peers.keys()]) this.dropPeer(id);
    for (const [type, handler] of Object.entries(this.handlers)) {
      this.signaling.removeEventListener(type, handler);
    }
  }
}
