"""Measuring a call across the death of a practice line (issue 12): shared by the failover tests
(``test_failover.py``) and the benchmark (``bench/failover_bench.py``).

- :data:`SAMPLER` runs in a page and records, every :data:`SAMPLE_MS`, the video frames the page
  decoded so far over all its RTCPeerConnections, old and new (a closed connection keeps its last
  count): ``window.__szSamples = [[Date.now(), frames], …]``. The pages run on this machine, so
  their ``Date.now()`` is the test's ``time.time()``.
- :func:`recovery_s`: from those samples, how long after the cut the page decoded video again.
- :func:`bare_call` is "Chromium alone": two pages with one plain RTCPeerConnection each, the fake
  camera, the offer and answer handed over by the test (complete candidates, no trickle), no
  watchdog and no signaling after the start: what Chromium does by itself when a line dies.
"""

from __future__ import annotations

import ipaddress
import time
from typing import Any

from appliance.rtc.turn import TurnCredentials
from appliance.uplinks import LineState, read_status
from tests.rtc.turn_fixtures import BOX, SECRET, WAN_PUBLIC, WAN_PUBLIC_B

from .netlab import PUBLIC_URL, STAFF_URL, TURN_PORT, CallLab

#: each line's side of the internet (its WAN subnet)
LINE_NETWORKS = {"a": ipaddress.ip_network(f"{WAN_PUBLIC}/24", strict=False),
                 "b": ipaddress.ip_network(f"{WAN_PUBLIC_B}/24", strict=False)}
SAMPLE_MS = 50
#: how long a call runs on its connection before a cut: longer than the page watchdog's grace
#: after a connection comes up (``GRACE_MS`` in peer.js, 2 s), in which it judges no silence; a
#: call cut sooner would measure the grace, not the watchdog
STABLE_S = 3.0
#: a stall: no new frame for this long after the cut (the last frames in flight are decoded
#: within a few tens of milliseconds of it)
STALL_S = 0.3
#: decoding counts as back when this many frames follow within SUSTAIN_S
SUSTAIN_FRAMES = 5
SUSTAIN_S = 1.0

SAMPLER = f"""() => {{
  if (window.__szSampler) return true;
  const seen = new Map();
  const samples = window.__szSamples = [];
  const list = () => (window.__sz && window.__sz.connections) || window.__pcs || [];
  let busy = false;
  window.__szSampler = setInterval(async () => {{
    if (busy) return;
    busy = true;
    try {{
      for (const pc of list()) {{
        if (pc.connectionState === 'closed') continue;
        let frames = 0;
        try {{
          (await pc.getStats()).forEach((s) => {{
            if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded || 0;
          }});
        }} catch (error) {{
          continue;
        }}
        seen.set(pc, Math.max(seen.get(pc) || 0, frames));
      }}
      let total = 0;
      for (const frames of seen.values()) total += frames;
      samples.push([Date.now(), total]);
    }} finally {{
      busy = false;
    }}
  }}, {SAMPLE_MS});
  return true;
}}"""
SAMPLES = "() => window.__szSamples || []"


def recovery_s(samples: list[list[float]], cut_at: float) -> float | None:
    """Seconds from ``cut_at`` (Unix time) until the page decoded video again, or None.

    The frames still in flight at the cut are decoded within a few samples; the stall is the
    first :data:`STALL_S` without a new frame after the cut; decoding is back at the first new
    frame after the stall that :data:`SUSTAIN_FRAMES` more frames follow within
    :data:`SUSTAIN_S` (a lone frame is no recovery)."""
    after = [(at / 1000, frames) for at, frames in samples if at / 1000 >= cut_at]
    stalled = False
    last_new = cut_at
    for index in range(1, len(after)):
        at, frames = after[index]
        if frames <= after[index - 1][1]:
            if not stalled and at - last_new >= STALL_S:
                stalled = True
            continue
        if not stalled:
            last_new = at
            continue
        later = [f for t, f in after[index:] if t <= at + SUSTAIN_S]
        if later and later[-1] - after[index - 1][1] >= SUSTAIN_FRAMES:
            return at - cut_at
    return None


async def start_sampling(*pages: Any) -> None:
    for page in pages:
        await page.evaluate(SAMPLER)


async def recovered(pages: tuple[Any, ...], cut_at: float, timeout_s: float
                    ) -> list[float | None]:
    """Wait until every page decodes video again (or ``timeout_s`` passed since the cut); each
    page's recovery time (None: not within the time)."""
    while True:
        times = [recovery_s(await page.evaluate(SAMPLES), cut_at) for page in pages]
        # a recovery needs SUSTAIN_S of samples after it: wait for them as well
        if all(t is not None for t in times) or time.time() > cut_at + timeout_s + SUSTAIN_S:
            return times
        await pages[0].wait_for_timeout(200)


async def until_more_frames(page: Any, frames: int = SUSTAIN_FRAMES,
                            timeout_s: float = 15.0) -> None:
    """Wait until the sampler of ``page`` counted ``frames`` more video frames than now (over
    all connections: a connection closing in between takes nothing away)."""
    base = (await page.evaluate(SAMPLES) or [[0, 0]])[-1][1]
    deadline = time.monotonic() + timeout_s
    while (now := (await page.evaluate(SAMPLES))[-1][1]) < base + frames:
        if time.monotonic() > deadline:
            raise AssertionError(f"not {frames} more video frames within {timeout_s} s "
                                 f"({base} -> {now})")
        await page.wait_for_timeout(100)


def both(times: list[float | None]) -> float | None:
    """Recovered on both sides: the later of the two; None if one side never did."""
    return None if any(t is None for t in times) else max(t for t in times if t is not None)


def shown(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.2f}"


# --- where the media goes ---------------------------------------------------------------------

#: the selected candidate pair of every connected RTCPeerConnection of the page (ours or bare)
SELECTED_PATHS = """async () => {
  const pcs = (window.__sz && window.__sz.connections) || window.__pcs || [];
  const pairs = [];
  for (const pc of pcs) {
    if (pc.connectionState !== 'connected') continue;
    const report = await pc.getStats();
    let pair = null;
    report.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) {
        pair = report.get(s.selectedCandidatePairId);
      }
    });
    if (!pair) continue;
    const local = report.get(pair.localCandidateId);
    const remote = report.get(pair.remoteCandidateId);
    pairs.push({local: local.candidateType, localAddress: local.address,
                remote: remote.candidateType, remoteAddress: remote.address});
  }
  return pairs;
}"""


def line_of(doctor_pairs: list[dict[str, str]], patient_pairs: list[dict[str, str]]) -> str:
    """Which line the media crosses: "a", "b", or "?" (several or no connection).

    A relaying patient sends to its relay, the public address of one line. A patient on the
    direct path sends to the doctor PC's address behind the practice's NAT, which Chromium hides
    in the statistics (a peer-reflexive candidate); the doctor's side shows the patient's
    address it sends to instead, and that address sits on one line's side of the internet."""
    if len(doctor_pairs) != 1 or len(patient_pairs) != 1:
        return "?"
    patient = patient_pairs[0]
    address = (patient["localAddress"] if patient["local"] == "relay"
               else doctor_pairs[0]["remoteAddress"])
    for line, network in LINE_NETWORKS.items():
        if address and ipaddress.ip_address(address) in network:
            return line
    return "?"


def describe(pairs: list[dict[str, str]]) -> str:
    return ", ".join(f"{p['local']} {p['localAddress']} ↔ {p['remote']} {p['remoteAddress']}"
                     for p in pairs) or "none"


# --- the box's view of the lines ----------------------------------------------------------------


def line_states(lab: CallLab) -> dict[str, tuple[LineState, float | None]]:
    """Each line's state and since when, from the uplink monitor's history file.

    TODO(issue 12): read ``/api/uplinks`` once the status page's endpoint exists."""
    found = read_status(lab.uplinks_file)
    return {} if found is None else {line.name: (line.state, line.since) for line in found[1]}


async def until_line(page: Any, lab: CallLab, name: str, healthy: bool,
                     timeout_s: float = 20.0) -> tuple[LineState, float | None]:
    """Wait until the box says line ``name`` is down (``healthy=False``) or not down; its
    state and since when."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = line_states(lab).get(name)
        if state is not None and (state[0] is not LineState.DOWN) == healthy:
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"line {name} not {'healthy' if healthy else 'down'} within "
                                 f"{timeout_s} s: {line_states(lab)}")
        await page.wait_for_timeout(200)


# --- Chromium alone ---------------------------------------------------------------------------

_BARE_OFFER = """async ([config]) => {
  const stream = await navigator.mediaDevices.getUserMedia({audio: true, video: true});
  const pc = new RTCPeerConnection(config);
  window.__pcs = [pc];
  for (const track of stream.getTracks()) pc.addTrack(track, stream);
  pc.ontrack = () => {};
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') resolve();
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') resolve();
    });
    setTimeout(resolve, 8000);
  });
  return pc.localDescription.toJSON();
}"""
_BARE_ANSWER = """async ([config, offer]) => {
  const stream = await navigator.mediaDevices.getUserMedia({audio: true, video: true});
  const pc = new RTCPeerConnection(config);
  window.__pcs = [pc];
  pc.ontrack = () => {};
  await pc.setRemoteDescription(offer);
  for (const track of stream.getTracks()) pc.addTrack(track, stream);
  await pc.setLocalDescription(await pc.createAnswer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') resolve();
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') resolve();
    });
    setTimeout(resolve, 8000);
  });
  return pc.localDescription.toJSON();
}"""
_BARE_FINISH = "async ([answer]) => { await window.__pcs[0].setRemoteDescription(answer); }"
BARE_FRAMES = """async () => {
  let frames = 0;
  for (const pc of window.__pcs || []) {
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded || 0;
    });
  }
  return frames;
}"""


def bare_ice_servers(lab: CallLab) -> tuple[dict[str, Any], dict[str, Any]]:
    """RTCConfigurations as the box hands them out (credentials minted with the lab's secret):
    the doctor the box's LAN address, the patient the public host of every line."""
    now = time.time()
    doctor = TurnCredentials.issue(SECRET, ("bare", "doctor"), ttl_s=3600, now=now)
    patient = TurnCredentials.issue(SECRET, ("bare", "patient"), ttl_s=3600, now=now)
    assert lab.settings is not None
    hosts = [uplink.public_host for uplink in lab.settings.uplinks]
    return (
        {"iceServers": [{"urls": [f"turn:{BOX}:{TURN_PORT}"], "username": doctor.username,
                         "credential": doctor.password}],
         "bundlePolicy": "max-bundle"},
        {"iceServers": [{"urls": [f"turn:{host}:{TURN_PORT}?transport=udp" for host in hosts],
                         "username": patient.username, "credential": patient.password}],
         "bundlePolicy": "max-bundle"},
    )


async def bare_call(lab: CallLab, doctor_browser: Any, patient_browser: Any,
                    timeout_s: float = 20.0) -> tuple[Any, Any]:
    """Chromium alone: a page on the doctor PC calls a page on the patient's side with plain
    RTCPeerConnections; returns (doctor page, patient page) once both decode video."""
    doctor_config, patient_config = bare_ice_servers(lab)
    pages = []
    # a page of each site, for a secure context (the fake camera); nothing of it is used
    for browser, url in ((doctor_browser, STAFF_URL), (patient_browser, PUBLIC_URL)):
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(f"{url}/nutzungsbedingungen")
        pages.append(page)
    doctor, patient = pages
    offer = await doctor.evaluate(_BARE_OFFER, [doctor_config])
    answer = await patient.evaluate(_BARE_ANSWER, [patient_config, offer])
    await doctor.evaluate(_BARE_FINISH, [answer])
    deadline = time.monotonic() + timeout_s
    for page in pages:
        while await page.evaluate(BARE_FRAMES) == 0:
            if time.monotonic() > deadline:
                raise AssertionError("Chromium alone: no video frames within "
                                     f"{timeout_s} s: {await page.evaluate(SELECTED_PATHS)}")
            await page.wait_for_timeout(200)
    return doctor, patient


async def paths(doctor: Any, patient: Any, timeout_s: float = 15.0
                ) -> tuple[str, list[dict[str, str]]]:
    """The line the call's media crosses (:func:`line_of`), and both sides' selected pairs."""
    deadline = time.monotonic() + timeout_s
    while True:
        doctor_pairs = await doctor.evaluate(SELECTED_PATHS)
        patient_pairs = await patient.evaluate(SELECTED_PATHS)
        line = line_of(doctor_pairs, patient_pairs)
        if line != "?" or time.monotonic() > deadline:
            return line, doctor_pairs + patient_pairs
        await doctor.wait_for_timeout(200)


async def bare_call_on_line_a(lab: CallLab, doctor_browser: Any, patient_browser: Any,
                              tries: int = 4) -> tuple[Any, Any, list[dict[str, str]]]:
    """:func:`bare_call` until its media crosses line A (a relay-only patient has a relay on
    each line and may nominate either): (doctor page, patient page, the selected pairs)."""
    for _ in range(tries):
        doctor, patient = await bare_call(lab, doctor_browser, patient_browser)
        line, pairs = await paths(doctor, patient)
        if line == "a":
            return doctor, patient, pairs
        await doctor.context.close()
        await patient.context.close()
    raise AssertionError(f"Chromium alone never ran over line A: {describe(pairs)}")


# --- our call, on line A ----------------------------------------------------------------------

#: when the box's push (line down) last reached the page, and when the leader built its newest
#: connection (the watchdog's or the push's recovery); Unix time in milliseconds
PAGE_EVENTS = """() => {
  const call = window.__sz.call;
  const peer = [...call.peers.values()][0];
  return {push: call.lineFailoverAt || null,
          newest: peer && peer.current ? peer.current.createdAt : null};
}"""
#: the leader builds a new connection now (as its watchdog would)
REBUILD = "() => { for (const peer of window.__sz.call.peers.values()) peer.recover('test'); }"
NEWEST_ID = """() => Math.max(0, ...[...window.__sz.call.peers.values()].flatMap(
  (p) => p.connections.map((c) => c.id)))"""


def newer_connected(than: int) -> str:
    """A page expression: the page's current connection is newer than ``than`` and connected."""
    return f"""() => [...window.__sz.call.peers.values()].some(
        (p) => p.current && p.current.id > {than}
               && p.current.pc.connectionState === 'connected')"""


async def until(page: Any, expression: str, timeout_s: float = 15.0) -> Any:
    """Poll ``expression`` in ``page`` until it is truthy (the pages' CSP forbids
    ``wait_for_function``); its value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout_s} s: {expression}")
        await page.wait_for_timeout(100)


async def on_line_a(doctor: Any, visit: Any, tries: int = 4) -> list[dict[str, str]]:
    """Our call's media made to cross line A: a relay-only patient may have nominated the relay
    on line B (both are offered); the doctor then builds new connections until the path is on
    A. Both sides' selected pairs."""
    pairs: list[dict[str, str]] = []
    for _ in range(tries):
        line, pairs = await paths(doctor, visit)
        if line == "a":
            return pairs
        old = await doctor.evaluate(NEWEST_ID)
        await doctor.evaluate(REBUILD)
        await until(visit, newer_connected(old), timeout_s=20)
        await until(doctor, newer_connected(old), timeout_s=20)
    raise AssertionError(f"the call never ran over line A: {describe(pairs)}")
