// The real connectivity test of the device check (R13): a WebRTC connection to the box's echo
// peer (rtc/echo_peer.py) carrying this page's camera and microphone, plus data-channel
// probes: round-trip time and loss from probes (and RTP statistics), download and upload
// rate from bulk transfers the echo peer answers.

import { snapshot } from './stats.js';

const GATHER_MS = 3000;
const CONNECT_MS = 8000;
const PROBES = 20;
const PROBE_EVERY_MS = 100;
const PROBE_LOST_MS = 1000;
const FIRST_BYTES = 256 * 1024;
const MORE_BYTES = 2 * 1024 * 1024;
const TRANSFER_MS = 6000;
const CHUNK = 16 * 1024;

/** The echo peer has no free slot: try again after `retryAfter` seconds (position in line). */
export class EchoBusyError extends Error {
  constructor(body) {
    super(body.message || 'device_check_busy');
    this.retryAfter = Math.max(1, Number(body.retry_after_s) || 5);
    this.position = Number(body.position) || 1;
  }
}

/** The box has no device-check route (or refused it): the test is skipped, not failed. */
export class EchoUnavailableError extends Error {}

function wait(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function until(target, event, test, ms) {
  return new Promise((resolve, reject) => {
    if (test()) {
      resolve();
      return;
    }
    const timer = setTimeout(() => { target.removeEventListener(event, check); reject(new Error(`timeout: ${event}`)); }, ms);
    function check() {
      if (!test()) return;
      clearTimeout(timer);
      target.removeEventListener(event, check);
      resolve();
    }
    target.addEventListener(event, check);
  });
}

/**
 * Run the test. `url` is the device-check route, `headers` extra request headers (the staff
 * site's CSRF token), `media` a LocalMedia, `onStep` is told 'connecting', 'rtt', 'download',
 * 'upload'. Resolves {figures: {rtt_ms, loss_percent, download_kbps, upload_kbps,
 * relay_protocol}, thresholds}.
 */
export async function echoTest({ url, headers = {}, media, iceServers = [], onStep = () => {}, signal }) {
  // the page's own TURN servers must be known before the offer (it carries every candidate):
  // behind a NAT a patient reaches the box's echo peer only through the relay
  const servers = iceServers.length ? iceServers : await pageIceServers(url);
  const pc = new RTCPeerConnection({ iceServers: servers });
  const stop = () => pc.close();
  if (signal) signal.addEventListener('abort', stop);
  try {
    onStep('connecting');
    const channel = pc.createDataChannel('probe', { ordered: true });
    channel.binaryType = 'arraybuffer';
    // the echo peer decodes what it gets: a small picture keeps the box's CPU for the calls
    if (media.audio) pc.addTransceiver(media.audio, { direction: 'sendrecv', streams: [media.stream] });
    pc.addTransceiver(media.camera || 'video', {
      direction: media.camera ? 'sendrecv' : 'recvonly', streams: [media.stream],
      sendEncodings: [{ maxBitrate: 500_000, scaleResolutionDownBy: scaleFor(media.camera), maxFramerate: 15 }],
    });
    await pc.setLocalDescription();
    // the box answers once, with all its candidates: it needs ours the same way (no trickle)
    await until(pc, 'icegatheringstatechange', () => pc.iceGatheringState === 'complete', GATHER_MS).catch(() => {});
    const answer = await post(url, headers, { sdp: pc.localDescription.sdp, type: 'offer' });
    await pc.setRemoteDescription({ type: answer.type, sdp: answer.sdp });
    await until(channel, 'open', () => channel.readyState === 'open', CONNECT_MS);

    const inbox = new Inbox(channel);
    const before = await snapshot(pc);
    onStep('rtt');
    const probes = await probe(channel, inbox);
    // RTP loss only while nothing else runs: the bulk transfers below fill the line on purpose
    const quiet = await snapshot(pc);
    onStep('download');
    const download = await measureDownload(channel, inbox);
    onStep('upload');
    const upload = await measureUpload(channel, inbox);
    const received = quiet.packetsIn - before.packetsIn;
    const lost = quiet.packetsLost - before.packetsLost;
    const rtpLoss = received + lost > 0 ? (lost / (received + lost)) * 100 : 0;
    const figures = {
      rtt_ms: probes.rttMs ?? (quiet.rtt !== null ? Math.round(quiet.rtt * 1000) : null),
      loss_percent: Math.round(Math.max(probes.lossPercent, rtpLoss) * 10) / 10,
      download_kbps: download,
      upload_kbps: upload,
      relay_protocol: await relayProtocol(pc),
    };
    const detail = { probe_loss: probes.lossPercent, rtp_loss: rtpLoss, rtp_packets: received };
    return { figures, detail, thresholds: answer.thresholds || {} };
  } finally {
    if (signal) signal.removeEventListener('abort', stop);
    pc.close();
  }
}

/** Send at most about 640×360 to the echo peer, whatever the camera gives. */
function scaleFor(track) {
  if (!track) return 1;
  const { width = 640 } = track.getSettings();
  return Math.max(1, width / 640);
}

/** The TURN servers for this page's side of the test; none when the box has no relay. */
async function pageIceServers(url) {
  try {
    const response = await fetch(url, { credentials: 'same-origin', cache: 'no-store',
      headers: { Accept: 'application/json' } });
    if (!response.ok) return [];
    const data = await response.json();
    return Array.isArray(data.ice_servers) ? data.ice_servers : [];
  } catch {
    return [];
  }
}

async function post(url, headers, body) {
  let response;
  try {
    response = await fetch(url, {
      method: 'POST', credentials: 'same-origin', cache: 'no-store',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...headers },
      body: JSON.stringify(body),
    });
  } catch {
    throw new Error('network');
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (response.status === 503 && data && data.error === 'device_check_busy') throw new EchoBusyError(data);
  if (response.status === 404 || response.status === 405) throw new EchoUnavailableError('no route');
  if (!response.ok || !data || !data.sdp) {
    const error = new Error((data && data.message) || `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return data;
}

/** Messages from the echo peer, for whoever waits for a certain kind. */
class Inbox {
  constructor(channel) {
    this.waiters = [];
    this.binaryBytes = 0;
    channel.addEventListener('message', (event) => {
      if (typeof event.data !== 'string') {
        this.binaryBytes += event.data.byteLength || event.data.size || 0;
        return;
      }
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      for (const waiter of [...this.waiters]) waiter(message);
    });
  }

  on(fn) {
    this.waiters.push(fn);
    return () => { this.waiters = this.waiters.filter((w) => w !== fn); };
  }

  next(test, ms) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { off(); reject(new Error('timeout')); }, ms);
      const off = this.on((message) => {
        if (!test(message)) return;
        clearTimeout(timer);
        off();
        resolve(message);
      });
    });
  }
}

/** RTT and loss from numbered probes {n, t} the echo peer returns unchanged. */
async function probe(channel, inbox) {
  const rtts = [];
  const off = inbox.on((message) => {
    if (typeof message.n === 'number' && typeof message.t === 'number') rtts.push(performance.now() - message.t);
  });
  for (let n = 0; n < PROBES; n += 1) {
    if (channel.readyState !== 'open') break;
    channel.send(JSON.stringify({ n, t: performance.now() }));
    await wait(PROBE_EVERY_MS);
  }
  await wait(PROBE_LOST_MS);
  off();
  const answered = rtts.filter((rtt) => rtt <= PROBE_LOST_MS + PROBES * PROBE_EVERY_MS);
  const sorted = [...answered].sort((a, b) => a - b);
  return {
    rttMs: sorted.length ? Math.round(sorted[Math.floor(sorted.length / 2)]) : null,
    lossPercent: ((PROBES - answered.length) / PROBES) * 100,
  };
}

/** kbit/s the echo peer can send us: a small transfer first, a bigger one on a fast line. */
async function measureDownload(channel, inbox) {
  let rate = null;
  for (const bytes of [FIRST_BYTES, MORE_BYTES]) {
    const start = performance.now();
    const startBytes = inbox.binaryBytes;
    channel.send(JSON.stringify({ download: bytes }));
    try {
      await inbox.next((m) => typeof m.downloaded === 'number', TRANSFER_MS);
    } catch {
      // a slow line: what arrived in the time is the figure
    }
    const seconds = Math.max(0.001, (performance.now() - start) / 1000);
    const got = inbox.binaryBytes - startBytes;
    if (got === 0) return rate;
    rate = Math.round((got * 8) / seconds / 1000);
    if (seconds > 0.5) break; // long enough to be a fair figure
  }
  return rate;
}

/** kbit/s we can send: binary chunks, the echo peer reports the total it received. */
async function measureUpload(channel, inbox) {
  let rate = null;
  let total = 0;
  channel.bufferedAmountLowThreshold = 256 * 1024;
  const chunk = new Uint8Array(CHUNK);
  for (const bytes of [FIRST_BYTES, MORE_BYTES]) {
    const start = performance.now();
    const target = total + bytes;
    const done = inbox.next((m) => typeof m.received === 'number' && m.received >= target, TRANSFER_MS);
    let latest = total;
    const off = inbox.on((m) => { if (typeof m.received === 'number') latest = m.received; });
    for (let sent = 0; sent < bytes && channel.readyState === 'open';) {
      if (channel.bufferedAmount > 1024 * 1024) {
        await until(channel, 'bufferedamountlow', () => channel.bufferedAmount <= 256 * 1024, TRANSFER_MS).catch(() => {});
        if (performance.now() - start > TRANSFER_MS) break;
        continue;
      }
      channel.send(chunk);
      sent += CHUNK;
    }
    try {
      await done;
    } catch {
      // a slow line: what the echo peer confirmed so far counts
    }
    off();
    const seconds = Math.max(0.001, (performance.now() - start) / 1000);
    const got = latest - total;
    total = target;
    if (got <= 0) return rate;
    rate = Math.round((got * 8) / seconds / 1000);
    if (seconds > 0.5 || got < bytes) break;
  }
  return rate;
}

/** null for a direct path, else how this page reaches the relay ('udp', 'tcp', 'tls'). */
async function relayProtocol(pc) {
  const report = await pc.getStats();
  let pairId = null;
  const stats = new Map();
  report.forEach((s) => {
    stats.set(s.id, s);
    if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
  });
  const pair = pairId ? stats.get(pairId) : [...stats.values()].find((s) => s.type === 'candidate-pair' && s.nominated);
  const local = pair && stats.get(pair.localCandidateId);
  if (!local || local.candidateType !== 'relay') return null;
  return local.relayProtocol || 'udp';
}
