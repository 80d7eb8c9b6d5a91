// File transfer over the peers' RTCDataChannel "files": the file goes browser to browser,
// end-to-end encrypted (DTLS), and never touches the box (R4, R5, R7).
//
// Frames on the (ordered, reliable) channel: a JSON header {t:'file', id, name, size, type},
// then the bytes in binary chunks, then {t:'file-end', id}; either side may send
// {t:'file-cancel', id}. One file at a time per channel, so chunks need no header of their own.

const CHUNK = 16 * 1024;
const HIGH_WATER = 1024 * 1024;
const LOW_WATER = 256 * 1024;
export const MAX_FILE_BYTES = 100 * 1024 * 1024;

let counter = 0;

/**
 * Events: `transfer` ({id, direction: 'out'|'in', name, size, done, state: 'running' |
 * 'complete' | 'failed' | 'cancelled', peer, url?}) for every change of a transfer.
 */
export class FileTransfers extends EventTarget {
  constructor() {
    super();
    this.incoming = new Map(); // peer id → transfer being received
    this.queues = new Map(); // peer id → promise chain of sends
    this.transfers = new Map();
    this.urls = [];
  }

  /** Send `file` to one peer (a Peer from peer.js); resolves when done or failed. */
  send(peer, file) {
    const transfer = {
      id: `${Date.now().toString(36)}-${(++counter).toString(36)}`,
      direction: 'out', name: file.name, size: file.size, type: file.type, done: 0,
      state: 'running', peer: peer.remote.id, cancelled: false,
    };
    this.transfers.set(transfer.id, transfer);
    this.update(transfer);
    const previous = this.queues.get(peer.remote.id) || Promise.resolve();
    const next = previous.then(() => this.pump(peer, file, transfer));
    this.queues.set(peer.remote.id, next.catch(() => {}));
    return transfer;
  }

  async pump(peer, file, transfer) {
    if (transfer.cancelled) return;
    const channel = peer.openChannel('files');
    if (!channel) {
      this.finish(transfer, 'failed');
      return;
    }
    channel.bufferedAmountLowThreshold = LOW_WATER;
    const closed = new Promise((resolve) => channel.addEventListener('close', resolve, { once: true }));
    try {
      channel.send(JSON.stringify({ t: 'file', id: transfer.id, name: file.name, size: file.size, type: file.type }));
      let offset = 0;
      while (offset < file.size) {
        if (transfer.cancelled) {
          channel.send(JSON.stringify({ t: 'file-cancel', id: transfer.id }));
          this.finish(transfer, 'cancelled');
          return;
        }
        if (channel.readyState !== 'open') throw new Error('channel closed');
        if (channel.bufferedAmount > HIGH_WATER) {
          await Promise.race([
            new Promise((resolve) => channel.addEventListener('bufferedamountlow', resolve, { once: true })),
            closed,
          ]);
          continue;
        }
        const chunk = await file.slice(offset, offset + CHUNK).arrayBuffer();
        channel.send(chunk);
        offset += chunk.byteLength;
        transfer.done = offset;
        this.update(transfer);
      }
      channel.send(JSON.stringify({ t: 'file-end', id: transfer.id }));
      this.finish(transfer, 'complete');
    } catch {
      this.finish(transfer, 'failed');
    }
  }

  cancel(id) {
    const transfer = this.transfers.get(id);
    if (!transfer || transfer.state !== 'running') return;
    transfer.cancelled = true;
    if (transfer.direction === 'in') {
      this.incoming.delete(transfer.peer);
      this.finish(transfer, 'cancelled');
    } else if (transfer.done === 0) {
      this.finish(transfer, 'cancelled');
    }
  }

  /** A frame from a peer's file channel (string header/end, or an ArrayBuffer chunk). */
  receive(peerId, data) {
    if (typeof data === 'string') {
      let message;
      try {
        message = JSON.parse(data);
      } catch {
        return;
      }
      if (message.t === 'file') this.begin(peerId, message);
      else if (message.t === 'file-end') this.complete(peerId, message.id);
      else if (message.t === 'file-cancel') this.abort(peerId, message.id, 'cancelled');
      return;
    }
    const transfer = this.incoming.get(peerId);
    if (!transfer) return;
    transfer.chunks.push(data);
    transfer.done += data.byteLength;
    if (transfer.done > transfer.size) {
      this.abort(peerId, transfer.id, 'failed');
      return;
    }
    this.update(transfer);
  }

  begin(peerId, header) {
    const size = Number(header.size);
    if (!Number.isSafeInteger(size) || size < 0 || size > MAX_FILE_BYTES) return;
    const previous = this.incoming.get(peerId);
    if (previous) this.finish(previous, 'failed');
    const transfer = {
      id: String(header.id), direction: 'in', name: safeName(header.name), size,
      type: typeof header.type === 'string' ? header.type : '', done: 0, state: 'running',
      peer: peerId, chunks: [],
    };
    this.incoming.set(peerId, transfer);
    this.transfers.set(transfer.id, transfer);
    this.update(transfer);
  }

  complete(peerId, id) {
    const transfer = this.incoming.get(peerId);
    if (!transfer || transfer.id !== id) return;
    this.incoming.delete(peerId);
    if (transfer.done !== transfer.size) {
      this.finish(transfer, 'failed');
      return;
    }
    // a download link for a blob in this page's memory: the file is stored nowhere else
    const blob = new Blob(transfer.chunks, { type: 'application/octet-stream' });
    transfer.chunks = [];
    transfer.url = URL.createObjectURL(blob);
    this.urls.push(transfer.url);
    this.finish(transfer, 'complete');
  }

  abort(peerId, id, state) {
    const transfer = this.incoming.get(peerId);
    if (!transfer || transfer.id !== id) return;
    this.incoming.delete(peerId);
    this.finish(transfer, state);
  }

  /** The connection to `peerId` was replaced or lost: a half-received file is lost with it. */
  channelReset(peerId) {
    const transfer = this.incoming.get(peerId);
    if (transfer) {
      this.incoming.delete(peerId);
      this.finish(transfer, 'failed');
    }
  }

  finish(transfer, state) {
    if (transfer.state !== 'running') return;
    transfer.state = state;
    if (state !== 'complete') transfer.chunks = [];
    this.update(transfer);
  }

  update(transfer) {
    this.dispatchEvent(new CustomEvent('transfer', { detail: transfer }));
  }

  /** Forget every received file (end of the call). */
  close() {
    for (const url of this.urls) URL.revokeObjectURL(url);
    this.urls = [];
  }
}

/** A file name that is only a name (no path, no control characters). */
function safeName(name) {
  const text = String(name || 'Datei').replace(/[\u0000-\u001f\u007f/\\]/g, '_').trim();
  return text.slice(0, 200) || 'Datei';
}
