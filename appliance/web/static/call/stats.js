// What getStats() says about one RTCPeerConnection, reduced to the few numbers the call needs:
// inbound packets (the media watchdog), round-trip time, loss and bitrate (the quality shown to
// the participants, R6) and bytes sent and received (the data used so far).

/** One reading of a connection's statistics. */
export async function snapshot(pc) {
  const report = await pc.getStats();
  const s = {
    at: performance.now(),
    packetsIn: 0, packetsLost: 0, videoBytesIn: 0, audioBytesIn: 0, framesDecoded: 0,
    dataMessagesIn: 0, bytesSent: 0, bytesReceived: 0,
    rtt: null, remoteLoss: null, outgoingBitrate: null, relay: false,
    frameWidth: 0, frameHeight: 0,
  };
  let selectedPair = null;
  const pairs = [];
  const candidates = new Map();
  let transportBytes = false;
  report.forEach((stat) => {
    switch (stat.type) {
      case 'inbound-rtp':
        s.packetsIn += stat.packetsReceived || 0;
        s.packetsLost += Math.max(0, stat.packetsLost || 0);
        if (stat.kind === 'video') {
          s.videoBytesIn += stat.bytesReceived || 0;
          s.framesDecoded += stat.framesDecoded || 0;
          s.frameWidth = Math.max(s.frameWidth, stat.frameWidth || 0);
          s.frameHeight = Math.max(s.frameHeight, stat.frameHeight || 0);
        } else {
          s.audioBytesIn += stat.bytesReceived || 0;
        }
        break;
      case 'remote-inbound-rtp':
        if (typeof stat.fractionLost === 'number') {
          s.remoteLoss = Math.max(s.remoteLoss ?? 0, stat.fractionLost);
        }
        if (typeof stat.roundTripTime === 'number' && s.rtt === null) s.rtt = stat.roundTripTime;
        break;
      case 'data-channel':
        s.dataMessagesIn += stat.messagesReceived || 0;
        break;
      case 'transport':
        // every byte on the wire, including RTCP and the data channel: what the phone bill sees
        transportBytes = true;
        s.bytesSent += stat.bytesSent || 0;
        s.bytesReceived += stat.bytesReceived || 0;
        if (stat.selectedCandidatePairId) selectedPair = stat.selectedCandidatePairId;
        break;
      case 'candidate-pair':
        pairs.push(stat);
        break;
      case 'local-candidate':
        candidates.set(stat.id, stat);
        break;
      default:
    }
  });
  const pair = pairs.find((p) => p.id === selectedPair)
    || pairs.find((p) => p.nominated && p.state === 'succeeded');
  if (pair) {
    if (typeof pair.currentRoundTripTime === 'number') s.rtt = pair.currentRoundTripTime;
    if (typeof pair.availableOutgoingBitrate === 'number') s.outgoingBitrate = pair.availableOutgoingBitrate;
    const local = candidates.get(pair.localCandidateId);
    s.relay = Boolean(local && local.candidateType === 'relay');
    if (!transportBytes) {
      s.bytesSent += pair.bytesSent || 0;
      s.bytesReceived += pair.bytesReceived || 0;
    }
  }
  return s;
}

/**
 * The quality between two readings: rtt (ms), loss (0..1), inbound bitrate (bit/s) and a
 * level `good` / `ok` / `poor`. Thresholds follow ITU-T G.114 (≤ 150 ms one way is fine for a
 * conversation) and what video codecs tolerate (a few percent loss). `rampUp`: the connection
 * is new, so the video bitrate says nothing yet.
 */
export function quality(previous, current, { expectVideo = true, lowVideo = false, rampUp = false } = {}) {
  const seconds = Math.max(0.001, (current.at - previous.at) / 1000);
  const received = current.packetsIn - previous.packetsIn;
  const lost = Math.max(0, current.packetsLost - previous.packetsLost);
  const inboundLoss = received + lost > 0 ? lost / (received + lost) : 0;
  const loss = Math.max(inboundLoss, current.remoteLoss ?? 0);
  const bitrate = ((current.videoBytesIn + current.audioBytesIn)
    - (previous.videoBytesIn + previous.audioBytesIn)) * 8 / seconds;
  const videoBitrate = (current.videoBytesIn - previous.videoBytesIn) * 8 / seconds;
  const rttMs = current.rtt === null ? null : Math.round(current.rtt * 1000);
  // a thin video stream is only a sign of trouble when a normal picture is expected: not in
  // data-saving mode, not for a mostly still shared screen, not with the camera off, and not
  // while the browsers' bandwidth estimate still ramps up after the connection came up (every
  // call used to start with "Verbindung mäßig" for its first seconds)
  const judgeVideo = expectVideo && !lowVideo && !rampUp;
  let level = 'good';
  if ((rttMs !== null && rttMs > 400) || loss > 0.08 || (judgeVideo && videoBitrate < 60_000)) {
    level = 'poor';
  } else if ((rttMs !== null && rttMs > 200) || loss > 0.03 || (judgeVideo && videoBitrate < 150_000)) {
    level = 'ok';
  }
  return { level, rttMs, loss, bitrate, videoBitrate, relay: current.relay };
}

/** "12,3 MB" in the page's language. */
export function formatBytes(bytes, locale) {
  const units = ['B', 'kB', 'MB', 'GB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  const digits = unit >= 2 && value < 100 ? 1 : 0;
  return `${new Intl.NumberFormat(locale, { maximumFractionDigits: digits, minimumFractionDigits: digits }).format(value)} ${units[unit]}`;
}

/** "1,2 Mbit/s" / "640 kbit/s". */
export function formatBitrate(bits, locale) {
  if (bits >= 1_000_000) {
    return `${new Intl.NumberFormat(locale, { maximumFractionDigits: 1 }).format(bits / 1_000_000)} Mbit/s`;
  }
  return `${new Intl.NumberFormat(locale, { maximumFractionDigits: 0 }).format(bits / 1000)} kbit/s`;
}
