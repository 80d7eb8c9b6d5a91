// Sound made on the page with Web Audio: one AudioContext for all (browsers limit them), and
// the chime for the device check's loudspeaker test and the dashboard's waiting-room alerts.

let audioContext = null;
/** One AudioContext per page (browsers limit them); resumed on the person's click. */
export function sharedAudioContext() {
  const Ctor = window.AudioContext || window.webkitAudioContext;
  if (!Ctor) return null;
  if (!audioContext) audioContext = new Ctor();
  if (audioContext.state === 'suspended') audioContext.resume().catch(() => {});
  return audioContext;
}

/** A soft two-tone chime (E5, then A5) from oscillators: for the test and for alerts. */
export function chime(ctx, { volume = 0.2 } = {}) {
  const now = ctx.currentTime;
  [[659.25, 0], [880, 0.18]].forEach(([frequency, offset]) => {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = 'sine';
    osc.frequency.value = frequency;
    gain.gain.setValueAtTime(0.0001, now + offset);
    gain.gain.exponentialRampToValueAtTime(volume, now + offset + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + offset + 0.6);
    osc.connect(gain).connect(ctx.destination);
    osc.start(now + offset);
    osc.stop(now + offset + 0.65);
  });
}
