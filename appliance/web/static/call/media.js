// The local camera, microphone and (for doctors) screen: one object per page, shared by the
// device check and the call, so the devices chosen in the check are the ones the call uses
// and the browser asks for permission only once.

const FULL = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
const SAVING = { width: { ideal: 320 }, height: { ideal: 240 }, frameRate: { ideal: 15 } };
const STORE = 'sz.devices';

function remembered() {
  try {
    return JSON.parse(localStorage.getItem(STORE) || '{}') || {};
  } catch {
    return {};
  }
}

function remember(kind, deviceId) {
  try {
    const all = remembered();
    all[kind] = deviceId;
    localStorage.setItem(STORE, JSON.stringify(all));
  } catch {
    // private mode: the choice holds for this page only
  }
}

/**
 * Events: `change` ({kind: 'audio'|'video'}) whenever the track to send changes (device switch,
 * camera on/off, screen sharing), `state` for mute/camera/screen/saving flags.
 */
export class LocalMedia extends EventTarget {
  constructor() {
    super();
    const saved = remembered();
    this.audioDevice = saved.audio || '';
    this.videoDevice = saved.video || '';
    this.outputDevice = saved.output || '';
    this.stream = new MediaStream();
    this.audio = null;
    this.camera = null;
    this.screen = null;
    this.micOn = true;
    this.cameraOn = true;
    this.saving = false;
    this.error = null;
  }

  /** Camera and microphone (whichever the browser grants); remembers why one is missing. */
  async start() {
    if (this.audio || this.camera) return this;
    this.error = null;
    try {
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: this.audioConstraints(), video: this.videoConstraints(),
      });
      for (const track of stream.getTracks()) this.adopt(track);
    } catch (error) {
      this.error = error;
      // a missing or blocked camera should not cost the patient their voice
      try {
        const stream = await navigator.mediaDevices.getUserMedia({ audio: this.audioConstraints() });
        for (const track of stream.getTracks()) this.adopt(track);
      } catch {
        // nothing at all: the call still works receive-only
      }
    }
    this.emitState();
    return this;
  }

  audioConstraints() {
    const c = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
    if (this.audioDevice) c.deviceId = { exact: this.audioDevice };
    return c;
  }

  videoConstraints() {
    const c = { ...(this.saving ? SAVING : FULL) };
    if (this.videoDevice) c.deviceId = { exact: this.videoDevice };
    return c;
  }

  adopt(track) {
    if (track.kind === 'audio') {
      if (this.audio) this.drop(this.audio);
      this.audio = track;
      track.enabled = this.micOn;
      this.audioDevice = track.getSettings().deviceId || this.audioDevice;
    } else {
      if (this.camera) this.drop(this.camera);
      this.camera = track;
      this.videoDevice = track.getSettings().deviceId || this.videoDevice;
    }
    this.stream.addTrack(track);
    track.addEventListener('ended', () => {
      // unplugged: stop sending a dead track; the person can choose another device
      if (track === this.camera || track === this.audio) this.emit(track.kind);
    });
  }

  drop(track) {
    this.stream.removeTrack(track);
    track.stop();
  }

  /** The video track to send now: the screen while sharing, the camera unless switched off. */
  get videoTrack() {
    if (this.screen) return this.screen;
    return this.cameraOn ? this.camera : null;
  }

  get audioTrack() {
    return this.audio;
  }

  track(kind) {
    return kind === 'audio' ? this.audioTrack : this.videoTrack;
  }

  async setCamera(deviceId) {
    this.videoDevice = deviceId;
    remember('video', deviceId);
    if (!this.cameraOn) return;
    const stream = await navigator.mediaDevices.getUserMedia({ video: this.videoConstraints() });
    this.adopt(stream.getVideoTracks()[0]);
    this.emit('video');
  }

  async setMicrophone(deviceId) {
    this.audioDevice = deviceId;
    remember('audio', deviceId);
    const stream = await navigator.mediaDevices.getUserMedia({ audio: this.audioConstraints() });
    this.adopt(stream.getAudioTracks()[0]);
    this.emit('audio');
  }

  setOutput(deviceId) {
    this.outputDevice = deviceId;
    remember('output', deviceId);
    this.emitState();
  }

  setMicOn(on) {
    this.micOn = on;
    if (this.audio) this.audio.enabled = on;
    this.emitState();
  }

  /** Switching the camera off stops it (its light goes out), not just a black picture. */
  async setCameraOn(on) {
    this.cameraOn = on;
    if (!on && this.camera) {
      this.drop(this.camera);
      this.camera = null;
    } else if (on && !this.camera) {
      try {
        const stream = await navigator.mediaDevices.getUserMedia({ video: this.videoConstraints() });
        this.adopt(stream.getVideoTracks()[0]);
      } catch (error) {
        this.cameraOn = false;
        this.emitState();
        throw error;
      }
    }
    if (!this.screen) this.emit('video');
    this.emitState();
  }

  /** Data-saving mode: a smaller, slower picture from the camera itself. */
  async setSaving(on) {
    this.saving = on;
    if (this.camera) {
      try {
        await this.camera.applyConstraints(on ? SAVING : FULL);
      } catch {
        // some cameras refuse; the sender's bitrate limit still applies
      }
    }
    this.emitState();
  }

  async shareScreen() {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
    const track = stream.getVideoTracks()[0];
    // text on a screen must stay sharp: prefer resolution over motion
    if ('contentHint' in track) track.contentHint = 'detail';
    track.addEventListener('ended', () => this.stopScreen());
    this.screen = track;
    this.emit('video');
    this.emitState();
  }

  stopScreen() {
    if (!this.screen) return;
    this.screen.stop();
    this.screen = null;
    this.emit('video');
    this.emitState();
  }

  /** Cameras, microphones and speakers, with labels once permission was granted. */
  async devices() {
    const list = await navigator.mediaDevices.enumerateDevices();
    return {
      video: list.filter((d) => d.kind === 'videoinput'),
      audio: list.filter((d) => d.kind === 'audioinput'),
      output: list.filter((d) => d.kind === 'audiooutput'),
    };
  }

  stop() {
    for (const track of [this.audio, this.camera, this.screen]) if (track) track.stop();
    this.audio = null;
    this.camera = null;
    this.screen = null;
    this.stream = new MediaStream();
  }

  emit(kind) {
    this.dispatchEvent(new CustomEvent('change', { detail: { kind } }));
    this.emitState();
  }

  emitState() {
    this.dispatchEvent(new CustomEvent('state', { detail: this.flags() }));
  }

  flags() {
    return {
      mic: Boolean(this.micOn && this.audio), camera: Boolean(this.cameraOn && this.camera),
      screen: Boolean(this.screen), saving: this.saving, hasAudio: Boolean(this.audio),
      hasCamera: Boolean(this.camera) || this.cameraOn === false,
    };
  }
}

/** Whether this browser can pick the loudspeaker (Chromium, Firefox; not Safari on iOS). */
export function canChooseOutput() {
  return typeof HTMLMediaElement !== 'undefined' && 'setSinkId' in HTMLMediaElement.prototype;
}
