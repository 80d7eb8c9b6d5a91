"""Call setup through our signaling against a direct SDP hand-over; box CPU per call (web, coturn).

The box: ``python -m appliance serve`` as a subprocess with a temporary configuration (TURN off),
onboarded with ``sprechzimmer init`` and then over HTTP like a practice would (admin logs in, adds
the doctor; the doctor adds a patient and an appointment per call; the patient enters code and
name on the public site from an address of its own). Peers: aiortc in this process
(``tests.rtc.peers.CallPeer``: 320×240 synthetic video, silent audio, a data channel), on
loopback, host candidates only (127.0.0.2, see TESTING.md).

- **setup**: from the doctor sending ``admit`` (both pages open, the patient waiting) until both
  peer connections are ``connected`` and both sides decoded their first remote video frame.
  Everything in between is real: the hub admits through the appointment book (a vault write),
  sends ``admitted`` and ``room``, the doctor offers, the answer comes back, all over the two
  sites' WebSockets (aiortc gathers before it offers: no trickle, one description each way).
  Baseline: two RTCPeerConnections with the same tracks and configuration, the offer and answer
  handed over directly in this process; timed from before the offerer's peer connection exists.
  Median of 8 calls each (after one warm-up each), interleaved; "offer starts" is admit → the
  doctor's peer connection is made (the hub's round trip).
- **web process**: CPU time of the ``serve`` process (all threads) while 2 calls (two doctors:
  one call each at a time) run P2P for 10 s, against the same 4 sockets in the 10 s before
  admit (patients waiting, pages pinging every 500 ms: heartbeats only), and against the CPU of
  the calls' 4 aiortc endpoints (this process) in the same 10 s. ``/proc/<pid>/stat`` counts
  10 ms ticks, 0.1 % of a core over 10 s, and the web process uses a few ticks; so the figures
  come from each process's CPU-time clock (``clock_gettime`` of ``clock_getcpuclockid(pid)``,
  nanoseconds, all threads), with the ticks in the notes as a cross-check.
- **coturn**: a real ``turnserver`` on 127.0.0.1 with our ``coturn_config`` (plus
  ``allow-loopback-peers``, as in tests/rtc/turn_fixtures.py); one call between two relay-only
  aiortc peers with ``TurnCredentials``, the same media as above, held 10 s; coturn's CPU against
  the two endpoints' (idle coturn in the notes). Both peers are relay-only, so every media packet
  crosses coturn twice (client → relay → relay → client); a call where one side is on the LAN
  and reaches the other's relay directly costs about half. The synthetic picture compresses to
  one packet per frame: coturn's cost follows packets, so a real camera's call (several packets
  per frame) costs proportionally more; µs per packet is the figure to scale with.
- **idle**: web process (no sockets) and coturn (no allocations) for 5 s, before the calls.

Ratios: ours / baseline (setup goal ≤ 1.2×). "% core" is the share of one CPU core.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import aiohttp
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack

from appliance.rtc import messages as m
from appliance.rtc.turn import TurnCredentials
from tests.rtc.peers import CallPeer, SignalingPage, SmallVideo
from tests.rtc.turn_fixtures import SECRET, free_udp_port, loopback_settings, running_coturn

ROOT: Final = Path(__file__).resolve().parents[1]
WORK: Final = ROOT / "bench" / ".work"
HOST: Final = "127.0.0.1"
RUNS: Final = 8
WARMUP: Final = 1
HOLD_S: Final = 10.0
IDLE_S: Final = 5.0
CALLS: Final = 2
TIMEOUT_S: Final = 20.0
ADMIN_PASSWORD: Final = "bench-admin-passwort-1"
DOCTOR_PASSWORD: Final = "bench-arzt-passwort-12"
#: a doctor is in one call at a time: one per concurrent call
DOCTORS: Final = tuple(f"drbench{n}" for n in range(1, CALLS + 1))
#: TESTING.md: peers on loopback are for tests only
TEST_ONLY: Final = ("allow-loopback-peers",)


# --- CPU clocks ----------------------------------------------------------------------------------


def _stat_cpu_s(pid: int) -> float:
    """utime + stime of a process, all its threads (``/proc/<pid>/stat``: 10 ms ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _clock_cpu_s(pid: int) -> float:
    """The same, to the nanosecond: the process's POSIX CPU-time clock (Linux encodes the clock
    of ``clock_getcpuclockid(pid)`` as ``~pid << 3 | CPUCLOCK_SCHED``), all threads."""
    return time.clock_gettime(((~pid) << 3) | 2)


class _Window:
    """CPU seconds of processes over a stretch of wall time; shares of one core.

    ``None`` is this process (the aiortc endpoints). Both clocks are read: the nanosecond one
    for the figures, ``/proc/<pid>/stat`` as the cross-check.
    """

    def __init__(self, **pids: int | None) -> None:
        self._pids = pids
        self._start = self._read()
        self._wall = time.perf_counter()

    def _read(self) -> dict[str, tuple[float, float]]:
        own = os.getpid()
        return {name: (_clock_cpu_s(pid or own), _stat_cpu_s(pid or own))
                for name, pid in self._pids.items()}

    def share(self) -> dict[str, float]:
        """Per process: CPU seconds / wall seconds since the window opened (1.0 = one core);
        ``<name> stat`` is the same from ``/proc/<pid>/stat``."""
        now, wall = self._read(), time.perf_counter() - self._wall
        shares = {}
        for name, (clock, stat) in now.items():
            shares[name] = (clock - self._start[name][0]) / wall
            shares[f"{name} stat"] = (stat - self._start[name][1]) / wall
        return shares


# --- the box as a subprocess ---------------------------------------------------------------------


def _free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass
class _Box:
    """``python -m appliance serve`` with its own configuration and vault."""

    process: subprocess.Popen[bytes]
    staff_url: str
    public_url: str
    log: Path


@contextlib.contextmanager
def _running_box(directory: Path) -> Iterator[_Box]:
    staff_port, public_port = _free_tcp_port(), _free_tcp_port()
    config = directory / "sprechzimmer.toml"
    config.write_text(
        f'[web]\nstaff_host = "{HOST}"\nstaff_port = {staff_port}\npublic_host = "{HOST}"\n'
        f'public_port = {public_port}\npublic_urls = ["http://{HOST}:{public_port}"]\n'
        f'[vault]\npath = "{directory / "vault"}"\n[turn]\nenabled = false\n', "utf-8")
    password = directory / "admin-password"
    password.write_text(ADMIN_PASSWORD + "\n", "utf-8")
    command = [sys.executable, "-m", "appliance", "--config", str(config)]
    subprocess.run([*command, "init", "--practice-name", "Praxis Bench", "--bsnr", "123456789",
                    "--street", "Hauptstr. 1", "--postal-code", "50667", "--city", "Köln",
                    "--kv-region", "NO", "--admin-username", "admin", "--admin-name",
                    "Anna Admin", "--admin-password-file", str(password),
                    "--recovery-key-file", str(directory / "recovery-key")],
                   cwd=ROOT, check=True, capture_output=True, timeout=60)
    log = directory / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen([*command, "serve"], cwd=ROOT, stdout=output,
                                   stderr=subprocess.STDOUT)
    box = _Box(process, f"http://{HOST}:{staff_port}", f"http://{HOST}:{public_port}", log)
    try:
        deadline = time.monotonic() + 30
        while "public site on" not in log.read_text("utf-8", errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("serve did not start:\n" + log.read_text("utf-8")[-3000:])
            time.sleep(0.05)
        yield box
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _client(origin: str, local_host: str | None = None) -> aiohttp.ClientSession:
    """A browser stand-in for one site: cookies on an IP host, the site's own Origin."""
    connector = aiohttp.TCPConnector(local_addr=(local_host, 0) if local_host else None)
    return aiohttp.ClientSession(origin, cookie_jar=aiohttp.CookieJar(unsafe=True),
                                 connector=connector, headers={"Origin": origin})


async def _login(session: aiohttp.ClientSession, username: str, password: str) -> None:
    async with session.post("/api/login", json={"username": username,
                                                "password": password}) as response:
        assert response.status == 200, await response.text()
        session.headers["X-CSRF-Token"] = (await response.json())["csrf_token"]


async def _post(session: aiohttp.ClientSession, path: str, body: dict[str, Any]) -> Any:
    async with session.post(path, json=body) as response:
        assert response.status in (200, 201), f"{path}: {await response.text()}"
        return await response.json()


# --- timed participants --------------------------------------------------------------------------


@dataclass
class _Marks:
    """When a peer connection got connected and decoded its first remote video frame."""

    #: when the peer connection was made (the doctor: on the ``room`` that admits the patient)
    created: float | None = None
    connected: float | None = None
    frame: float | None = None
    frames: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)


def _watch(pc: RTCPeerConnection, marks: _Marks, tasks: list[asyncio.Task[None]]) -> None:
    """Mark connected and count decoded video frames (the baseline's peers)."""

    @pc.on("connectionstatechange")
    def _state() -> None:
        if pc.connectionState == "connected" and marks.connected is None:
            marks.connected = time.perf_counter()
            marks.changed.set()

    @pc.on("track")
    def _track(track: MediaStreamTrack) -> None:
        tasks.append(asyncio.create_task(_consume(track, marks)))


async def _consume(track: MediaStreamTrack, marks: _Marks) -> None:
    while True:
        try:
            await track.recv()
        except MediaStreamError:
            return
        if track.kind == "video":
            if marks.frame is None:
                marks.frame = time.perf_counter()
            marks.frames += 1
            marks.changed.set()


async def _until(marks: _Marks, *, frames: int = 1, what: str = "peer") -> None:
    try:
        async with asyncio.timeout(TIMEOUT_S):
            while marks.connected is None or marks.frames < frames:
                marks.changed.clear()
                await marks.changed.wait()
    except TimeoutError:
        raise TimeoutError(f"{what}: no call after {TIMEOUT_S:.0f} s (connected: "
                           f"{marks.connected is not None}, frames: {marks.frames})") from None


def _call_state(call: _Call) -> str:
    """What the pages saw: for the error when a call through the box does not come up."""
    return "; ".join(
        f"{peer.page.name}: errors {[e.code for e in peer.page.errors]}, closes "
        f"{peer.page.closes}, last {[type(msg).__name__ for msg in peer.page.inbox[-3:]]}, "
        f"pcs {[pc.connectionState for pc in peer.pcs.values()]}"
        for peer in (call.doctor, call.patient))


async def _call_up(call: _Call, frames: int = 1) -> None:
    try:
        await asyncio.gather(_until(call.doctor.marks, frames=frames, what="doctor"),
                             _until(call.patient.marks, frames=frames, what="patient"))
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; {_call_state(call)}") from None


class _TimedPeer(CallPeer):
    """tests.rtc.peers' participant, marking connected and first frame (one remote only)."""

    def __init__(self, page: SignalingPage) -> None:
        super().__init__(page)
        self.marks = _Marks()

    def _new_pc(self, remote: str, *, add_tracks: bool = True) -> RTCPeerConnection:
        self.marks.created = time.perf_counter()
        pc = super()._new_pc(remote, add_tracks=add_tracks)

        @pc.on("connectionstatechange")
        def _state() -> None:
            if pc.connectionState == "connected" and self.marks.connected is None:
                self.marks.connected = time.perf_counter()
                self.marks.changed.set()

        return pc

    async def _consume(self, remote: str, track: Any) -> None:
        await _consume(track, self.marks)


@dataclass
class _Call:
    """A call through the box: the doctor's and the patient's participant."""

    doctor: _TimedPeer
    patient: _TimedPeer
    patient_session: aiohttp.ClientSession
    admitted_at: float = 0.0

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.doctor.page.send("end")
            await self.patient.wait(lambda: self.patient.ended is not None, 5)
        await self.patient.close()
        await self.doctor.close()
        await self.patient_session.close()


class _Practice:
    """The doctors' logged-in sessions; a waiting patient per call, each from its own address."""

    def __init__(self, box: _Box) -> None:
        self.box = box
        self.doctors = {username: _client(box.staff_url) for username in DOCTORS}
        self._patients = 0

    async def onboard(self) -> None:
        async with _client(self.box.staff_url) as admin:
            await _login(admin, "admin", ADMIN_PASSWORD)
            for number, username in enumerate(DOCTORS, 1):
                await _post(admin, "/api/staff", {
                    "username": username, "display_name": f"Dr. Bea Bench {number}",
                    "roles": ["doctor"], "password": DOCTOR_PASSWORD,
                    "lanr": f"1234567{number:02d}"})
        for username, session in self.doctors.items():
            await _login(session, username, DOCTOR_PASSWORD)

    async def waiting_call(self, doctor_name: str = DOCTORS[0]) -> _Call:
        """Appointment, check-in, both pages open and the patient seen waiting: ready to admit."""
        staff = self.doctors[doctor_name]
        self._patients += 1
        number = self._patients
        name = f"Erika Bench {number}"
        patient = await _post(staff, "/api/patients", {"full_name": name})
        start = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
        appt = await _post(staff, "/api/appointments", {
            "doctor": doctor_name, "patient_id": patient["id"], "start": start})
        token = appt["link"].rsplit("/", 1)[1]
        # every patient has an address of their own (the code's rate limit is per address)
        browser = _client(self.box.public_url, f"127.0.{number // 250 + 1}.{number % 250 + 2}")
        await _post(browser, f"/v/{token}/code", {"code": appt["access_code"]})
        await _post(browser, f"/v/{token}/check-in",
                    {"full_name": name, "consent": True, "rules": True})
        doctor = _TimedPeer(SignalingPage(
            lambda: staff.ws_connect(f"/api/appointments/{appt['id']}/signal"),
            name="doctor"))
        patient = _TimedPeer(SignalingPage(lambda: browser.ws_connect(f"/v/{token}/signal"),
                                           name="patient"))
        await doctor.page.open()
        await patient.page.open()
        await doctor.page.wait_for(lambda msg: isinstance(msg, m.Room) and any(
            p.role == "patient" and p.present for p in msg.participants))
        return _Call(doctor, patient, browser)

    async def admit(self, call: _Call) -> None:
        call.admitted_at = time.perf_counter()
        await call.doctor.page.send("admit", participant=call.patient.page.id)

    async def close(self) -> None:
        for session in self.doctors.values():
            await session.close()


# --- a direct call (the baseline) and a relayed one ----------------------------------------------


@dataclass
class _Pair:
    """Two aiortc peers whose SDP is handed over directly."""

    offerer: RTCPeerConnection
    answerer: RTCPeerConnection
    marks: tuple[_Marks, _Marks]
    tasks: list[asyncio.Task[None]]
    started: float

    async def close(self) -> None:
        await self.offerer.close()
        await self.answerer.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def _direct_pair(servers: list[RTCIceServer], relay_only: bool = False) -> _Pair:
    """What CallPeer does on both sides, minus the signaling: same tracks, same order."""
    policy = RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL
    marks, tasks = (_Marks(), _Marks()), []
    started = time.perf_counter()
    offerer = RTCPeerConnection(RTCConfiguration(iceServers=servers, iceTransportPolicy=policy))
    _watch(offerer, marks[0], tasks)
    offerer.addTrack(SmallVideo())
    offerer.addTrack(AudioStreamTrack())
    offerer.createDataChannel("chat")
    await offerer.setLocalDescription(await offerer.createOffer())
    answerer = RTCPeerConnection(RTCConfiguration(iceServers=servers, iceTransportPolicy=policy))
    _watch(answerer, marks[1], tasks)
    await answerer.setRemoteDescription(offerer.localDescription)
    answerer.addTrack(SmallVideo())
    answerer.addTrack(AudioStreamTrack())
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)
    marks[0].created = started
    pair = _Pair(offerer, answerer, marks, tasks, started)
    try:
        await asyncio.gather(_until(marks[0]), _until(marks[1]))
    except BaseException:
        await pair.close()
        raise
    return pair


def _selected(pc: RTCPeerConnection) -> str:
    """'<local>-<remote>' candidate types of the pair ICE nominated (aioice's bookkeeping)."""
    ice = pc.getTransceivers()[0].receiver.transport.transport
    pair = next(iter(ice._connection._nominated.values()))
    return f"{pair.local_candidate.type}-{pair.remote_candidate.type}"


async def _media_packets(*pcs: RTCPeerConnection) -> tuple[int, int]:
    """RTP packets and bytes sent by these peer connections so far."""
    packets = octets = 0
    for pc in pcs:
        for stats in (await pc.getStats()).values():
            if stats.type == "outbound-rtp":
                packets += stats.packetsSent
                octets += stats.bytesSent
    return packets, octets


# --- the measurements ----------------------------------------------------------------------------


def _setup_times(start: float, marks: tuple[_Marks, _Marks]) -> tuple[float, float, float]:
    """(both connected, both first frame, offerer's peer connection made) in ms after ``start``."""
    connected = max(mark.connected or 0.0 for mark in marks) - start
    frame = max(mark.frame or 0.0 for mark in marks) - start
    created = (marks[0].created or start) - start
    return connected * 1000, frame * 1000, created * 1000


async def _setup(practice: _Practice) -> dict[str, list[tuple[float, float, float]]]:
    times: dict[str, list[tuple[float, float, float]]] = {"box": [], "direct": []}
    for run in range(WARMUP + RUNS):
        call = await practice.waiting_call()
        try:
            await practice.admit(call)
            await _call_up(call)
            box = _setup_times(call.admitted_at, (call.doctor.marks, call.patient.marks))
        finally:
            await call.close()
        pair = await _direct_pair([])
        direct = _setup_times(pair.started, pair.marks)
        await pair.close()
        if run >= WARMUP:
            times["box"].append(box)
            times["direct"].append(direct)
    return times


async def _web_cpu(practice: _Practice) -> dict[str, float]:
    """The web process with the calls' sockets open: patients waiting, then the calls running."""
    pid = practice.box.process.pid
    calls = []
    try:
        for doctor in DOCTORS:
            calls.append(await practice.waiting_call(doctor))
        await asyncio.sleep(0.5)  # the joins are through
        window = _Window(web=pid)
        await asyncio.sleep(HOLD_S)
        heartbeats = window.share()
        for call in calls:
            await practice.admit(call)
        for call in calls:
            await _call_up(call, frames=10)
            selected = _selected(next(iter(call.doctor.pcs.values())))
            assert selected == "host-host", f"P2P call took {selected}"
        frames = sum(c.doctor.marks.frames + c.patient.marks.frames for c in calls)
        window = _Window(web=pid, peers=None)
        await asyncio.sleep(HOLD_S)
        share = window.share()
        frames = sum(c.doctor.marks.frames + c.patient.marks.frames for c in calls) - frames
        assert all(not c.doctor.page.closes and not c.patient.page.closes for c in calls)
    finally:
        for call in calls:
            await call.close()
    return {**share, "heartbeats": heartbeats["web"], "heartbeats stat": heartbeats["web stat"],
            "fps": frames / HOLD_S / (2 * CALLS)}


async def _coturn_cpu(port: int, pid: int) -> dict[str, float]:
    def servers(participant: str) -> list[RTCIceServer]:
        credentials = TurnCredentials.issue(SECRET, ("bench", participant), ttl_s=600,
                                            now=time.time())
        return [RTCIceServer(urls=f"turn:{HOST}:{port}", username=credentials.username,
                             credential=credentials.password)]

    # one credential per participant, as the box hands out; both peers share the relay config
    pair = await _direct_pair(servers("doctor") + servers("patient"), relay_only=True)
    try:
        await asyncio.gather(_until(pair.marks[0], frames=10), _until(pair.marks[1], frames=10))
        selected = _selected(pair.offerer)
        assert selected == "relay-relay", f"relay-only call took {selected}"
        frames = pair.marks[0].frames + pair.marks[1].frames
        packets, octets = await _media_packets(pair.offerer, pair.answerer)
        window = _Window(coturn=pid, peers=None)
        await asyncio.sleep(HOLD_S)
        share = window.share()
        packets_after, octets_after = await _media_packets(pair.offerer, pair.answerer)
        frames = pair.marks[0].frames + pair.marks[1].frames - frames
    finally:
        await pair.close()
    return {**share, "pps": (packets_after - packets) / HOLD_S,
            "kbps": (octets_after - octets) * 8 / 1000 / HOLD_S, "fps": frames / HOLD_S / 2}


async def _measure(box: _Box, coturn_port: int, coturn_pid: int) -> dict[str, Any]:
    practice = _Practice(box)
    try:
        await practice.onboard()
        idle = _Window(web=box.process.pid, coturn=coturn_pid)
        await asyncio.sleep(IDLE_S)
        figures: dict[str, Any] = {"idle": idle.share()}
        figures["setup"] = await _setup(practice)
        figures["web"] = await _web_cpu(practice)
    finally:
        await practice.close()
    figures["coturn"] = await _coturn_cpu(coturn_port, coturn_pid)
    return figures


def _ratio(ours: float, baseline: float) -> float | str:
    return round(ours / baseline, 3) if baseline > 0 else "∞ (baseline 0)"


def _pct(share: float) -> float:
    """A share of one core in % (the clock counts 10 ms ticks: 0.1 % over 10 s)."""
    return round(share * 100, 2)


def _range(times: list[tuple[float, ...]], index: int) -> str:
    return f"{min(t[index] for t in times):.0f}–{max(t[index] for t in times):.0f}"


COLUMNS: Final = ("name", "ours ms", "baseline ms", "ours % core", "baseline % core", "ratio",
                  "baseline", "notes")


def _row(**values: Any) -> dict[str, Any]:
    """A result row with every column, in the same order (the table's columns follow row 1)."""
    return {column: values.get(column.replace(" % ", "_").replace(" ", "_"), "")
            for column in COLUMNS}


def _rows(figures: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    box, direct = figures["setup"]["box"], figures["setup"]["direct"]
    offer = statistics.median(t[2] for t in box)
    for index, what in ((0, "connected"), (1, "first remote video frame")):
        ours = statistics.median(t[index] for t in box)
        base = statistics.median(t[index] for t in direct)
        rows.append(_row(
            name=f"setup: admit → {what}, both sides ({RUNS} calls)",
            ours_ms=round(ours, 1), baseline_ms=round(base, 1), ratio=_ratio(ours, base),
            baseline="two aiortc peers, SDP handed over in-process",
            notes=(f"ours {_range(box, index)} ms, direct {_range(direct, index)} ms; "
                   f"admit → doctor's offer starts {offer:.1f} ms")))
    idle, web, coturn = figures["idle"], figures["web"], figures["coturn"]
    ms = HOLD_S * 1000
    rows.append(_row(
        name=f"web process, {CALLS} P2P calls for {HOLD_S:.0f} s",
        ours_core=_pct(web["web"]), baseline_core=_pct(web["heartbeats"]),
        ratio=_ratio(web["web"], web["heartbeats"]),
        baseline=f"the same {2 * CALLS} sockets before admit: heartbeats only, {HOLD_S:.0f} s",
        notes=(f"CPU in {HOLD_S:.0f} s: {web['web'] * ms:.1f} ms with calls, "
               f"{web['heartbeats'] * ms:.1f} ms heartbeats only (/proc stat: "
               f"{web['web stat'] * ms:.0f} / {web['heartbeats stat'] * ms:.0f} ms); "
               f"idle without sockets {_pct(idle['web'])} %")))
    rows.append(_row(
        name="web process per P2P call",
        ours_core=_pct(web["web"] / CALLS), baseline_core=round(web["peers"] * 100 / CALLS, 1),
        ratio=_ratio(web["web"], web["peers"]),
        baseline=f"the call's 2 aiortc endpoints, same {HOLD_S:.0f} s",
        notes=f"video {web['fps']:.0f} fps per endpoint, host-host pairs"))
    per_packet = coturn["coturn"] / coturn["pps"] * 1e6 if coturn["pps"] else 0.0
    rows.append(_row(
        name=f"coturn per relayed call ({HOLD_S:.0f} s, relay-only on both sides)",
        ours_core=_pct(coturn["coturn"]), baseline_core=round(coturn["peers"] * 100, 1),
        ratio=_ratio(coturn["coturn"], coturn["peers"]),
        baseline=f"the call's 2 aiortc endpoints, same {HOLD_S:.0f} s",
        notes=(f"/proc stat {_pct(coturn['coturn stat'])} %; coturn idle "
               f"{_pct(idle['coturn'])} %; {coturn['pps']:.0f} RTP packets/s "
               f"({coturn['kbps']:.0f} kbit/s), each crossing coturn twice: {per_packet:.0f} µs "
               f"CPU per packet; video {coturn['fps']:.0f} fps per endpoint, relay-relay pair")))
    return rows


def run() -> list[dict[str, Any]]:
    """Setup times, then CPU of the web process and of coturn; one row per figure."""
    WORK.mkdir(parents=True, exist_ok=True)
    with (tempfile.TemporaryDirectory(dir=WORK) as directory,
          _running_box(Path(directory)) as box):
        turn = Path(directory) / "turn"
        turn.mkdir()
        with running_coturn(loopback_settings(free_udp_port()), turn,
                            extra=TEST_ONLY) as coturn:
            figures = asyncio.run(_measure(box, coturn.port, coturn.process.pid))
    rows = _rows(figures)
    setup = rows[1]
    print(f"call: admit → first frame both sides {setup['ours ms']} ms through the box, "
          f"{setup['baseline ms']} ms direct: {setup['ratio']}× (goal ≤ 1.2)", flush=True)
    return rows


if __name__ == "__main__":
    started = time.perf_counter()
    for row in run():
        print(row)
    print(f"took {time.perf_counter() - started:.0f} s")
