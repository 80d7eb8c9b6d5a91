"""The signaling hub against a bare aiohttp WebSocket relay: waiting patients, relayed messages.

Server: a subprocess pinned to one core (the clients get the other) running either our hub
behind the real adapter (``appliance.web.sockets.serve_socket``, its per-socket writer included;
members pre-admitted to a waiting appointment, no vault) or a bare relay that answers pings with
a fixed pong and forwards every other text frame to the socket's partner unread. Clients: this
process, aiohttp client WebSockets on loopback, building and reading frames with string
operations so that the servers are the bottleneck. Both servers get byte-identical client
traffic, except that hub clients acknowledge (every 32 messages, as pages do). The frames have
the shape pages give them (``JSON.stringify``: compact, keys ``v, type, seq, to, data``): the
hub decodes such a frame once and relays its ``data`` as written (checked, not serialized
anew); frames of any other shape take its general path. Neither side negotiates
permessage-deflate (browsers do; aiohttp then compresses every frame, on the hub and on a bare
relay alike).

- **waiting**: N patients, one room each, every socket pinging every 500 ms for 10 s; "alive" is
  the number of sockets still open at the end, RTT is ping → pong; server RSS and CPU share.
- **relay burst**: 50 doctor → patient pairs, 600 ``signal`` messages each (an ICE candidate,
  ~330 bytes of JSON), 8 in flight per pair; messages/s over the whole burst, latency from
  send to receipt, server CPU per message; the median of 5 rounds, hub and bare interleaved,
  and the lowest and highest round (the spread: other load on the machine shows there first).
- **relay single**: one pair, one message at a time (pure latency).
- The pipe is the floor (no routing at all); the routing relay is the least a signaling relay
  does (parse, route by ``to``, set ``from``, serialize). Our hub adds validation, sequence
  numbers, outbox and replay on top of that; its writer sends what queued up for a socket
  in one go (TCP_CORK), the bare relays write each frame as it comes.

Ratios are hub / bare (throughput: higher is better, goal ≥ 0.7).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import aiohttp
from aiohttp import web

ROOT: Final = Path(__file__).resolve().parents[1]
HOST: Final = "127.0.0.1"
WAITING: Final = 2000
HOLD_S: Final = 10.0
PING_S: Final = 0.5
PAIRS: Final = 50
MESSAGES: Final = 600
WINDOW: Final = 8
#: burst rounds per server, interleaved hub/bare (the figures are medians)
ROUNDS: Final = 5
SINGLE: Final = 300
ACK_EVERY: Final = 32
CONNECT_BATCH: Final = 100
TIMEOUT_S: Final = 60.0
CANDIDATE: Final = {
    "kind": "candidate", "connection": 1,
    "candidate": {
        "candidate": "candidate:842163049 1 udp 1677729535 203.0.113.7 51234 typ srflx "
                     "raddr 192.168.178.20 rport 51234 generation 0 ufrag 4ZcD network-cost 999",
        "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "4ZcD",
    },
}
PONG: Final = '{"v":1,"type":"pong"}'
MODES: Final = ("pipe", "route", "hub")
#: the data with the send time appended last: clients build and read frames with string
#: operations, so the servers rather than the clients are the bottleneck
DATA_PREFIX: Final = json.dumps(CANDIDATE, separators=(",", ":"))[:-1] + ',"t":'
SIGNAL_PREFIX: Final = '{"v":1,"type":"signal"'


# --- the servers (run in a subprocess) -----------------------------------------------------------


def _hub_app() -> web.Application:
    from types import SimpleNamespace

    from appliance.practice.models import AppointmentState
    from appliance.rtc.signaling import Member, SignalingHub
    from appliance.web.context import HUB, SERVICES
    from appliance.web.sockets import TICK_S, serve_socket, setup_public_signaling

    app = web.Application()
    setup_public_signaling(app, SignalingHub())  # the adapter's state, as on the public site
    # no vault: a waiting appointment has no running call whose places the adapter would take
    # up again, so the services are never asked
    app[SERVICES] = None  # type: ignore[assignment]

    async def signal(request: web.Request) -> web.StreamResponse:
        role = request.match_info["role"]
        member = Member(key=role, role=role, name=role, username="bench", admitted=True)
        appointment = SimpleNamespace(id=request.match_info["room"],
                                      state=AppointmentState.WAITING, removed_from_call=())
        return await serve_socket(request, appointment, member)  # type: ignore[arg-type]

    async def tick(app: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(TICK_S)
                await app[HUB].async_tick()

        task = asyncio.create_task(loop())
        yield
        task.cancel()

    app.router.add_get("/{room}/{role}", signal)
    app.cleanup_ctx.append(tick)
    return app


def _bare_app(route: bool) -> web.Application:
    """The pipe (``route=False``) or the routing relay (``route=True``)."""
    rooms: dict[str, dict[str, web.WebSocketResponse]] = {}

    async def relay(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=64 * 1024)
        await ws.prepare(request)
        room, role = request.match_info["room"], request.match_info["role"]
        pair = rooms.setdefault(room, {})
        pair[role] = ws
        partner = "patient" if role == "doctor" else "doctor"
        try:
            async for message in ws:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    break
                if message.data.startswith('{"v":1,"type":"ping"'):
                    await ws.send_str(PONG)
                elif route:  # the least a signaling relay does: read, route, say who sent it
                    frame = json.loads(message.data)
                    if (other := pair.get(frame.get("to"))) is not None:
                        frame["from"] = role
                        await other.send_str(json.dumps(frame, separators=(",", ":")))
                elif (other := pair.get(partner)) is not None:
                    await other.send_str(message.data)
        finally:
            pair.pop(role, None)
        return ws

    app = web.Application()
    app.router.add_get("/{room}/{role}", relay)
    return app


def serve(mode: str) -> None:
    """Run one server on a free port; print it; stop when standard input closes."""

    async def main() -> None:
        app = _hub_app() if mode == "hub" else _bare_app(route=mode == "route")
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, HOST, 0, backlog=4096)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"PORT {port}", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)
        await runner.cleanup()

    _raise_file_limit()
    _pin(0)
    asyncio.run(main())


def _pin(core: int) -> None:
    """Give server and clients a core each (less noise on a 2-core box)."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) >= 2:
        os.sched_setaffinity(0, {cores[core % len(cores)]})


def _raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, 4 * WAITING + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


class _Server:
    """A server subprocess and its resource use."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.signaling_bench", "serve", mode], cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"{mode} server did not start: {line!r}")
        self.url = f"http://{HOST}:{int(line.split()[1])}"

    def cpu_s(self) -> float:
        """User plus system CPU time so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mib(self) -> float:
        """Resident memory now."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        """End the subprocess."""
        with contextlib.suppress(Exception):
            assert self.process.stdin is not None
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --- the clients ----------------------------------------------------------------------------------


def _hello(name: str) -> str:
    # a fresh session per socket: a reused one would resume the old (acknowledged) sequences
    return json.dumps({"v": 1, "type": "hello", "session": f"bench-{name}-{time.time_ns()}",
                       "received": 0})


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _connect(session: aiohttp.ClientSession, url: str,
                   hub: bool) -> tuple[aiohttp.ClientWebSocketResponse, str | None]:
    """Open a socket, say hello; the hub's welcome names the participant."""
    ws = await session.ws_connect(url, max_msg_size=64 * 1024, autoping=False)
    await ws.send_str(_hello(url.rsplit("/", 2)[-2]))
    if not hub:
        return ws, None
    while True:
        message = await ws.receive()
        frame = json.loads(message.data)
        if frame["type"] == "welcome":
            return ws, frame["participant"]["id"]


async def _waiting(server: _Server) -> dict[str, Any]:
    hub = server.mode == "hub"
    rtts: list[float] = []
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    sent_at: dict[int, float] = {}
    stop = asyncio.Event()

    async def read(index: int, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type is aiohttp.WSMsgType.TEXT and '"pong"' in message.data:
                if (sent := sent_at.pop(index, None)) is not None:
                    rtts.append(time.perf_counter() - sent)

    async def ping_all() -> None:
        """Every open socket pings every 500 ms from the moment it is open, as pages do."""
        while not stop.is_set():
            round_started = time.perf_counter()
            for index, ws in enumerate(list(sockets)):  # spread over the interval
                if ws.closed:
                    continue
                sent_at[index] = time.perf_counter()
                with contextlib.suppress(ConnectionError):
                    await ws.send_str('{"v":1,"type":"ping","t":1}')
                if index % 100 == 99:
                    await asyncio.sleep(0)
            await asyncio.sleep(max(0.0, PING_S - (time.perf_counter() - round_started)))

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        pinger = asyncio.create_task(ping_all())
        readers = []
        started = time.perf_counter()
        for first in range(0, WAITING, CONNECT_BATCH):
            opened = await asyncio.gather(*(
                _connect(session, f"{server.url}/wait-{n}/patient", hub)
                for n in range(first, min(WAITING, first + CONNECT_BATCH))))
            for ws, _ in opened:
                readers.append(asyncio.create_task(read(len(sockets), ws)))
                sockets.append(ws)
        connect_s = time.perf_counter() - started
        rtts.clear()
        cpu_before, hold_started = server.cpu_s(), time.perf_counter()
        await asyncio.sleep(HOLD_S)
        cpu = (server.cpu_s() - cpu_before) / (time.perf_counter() - hold_started)
        alive = sum(not ws.closed for ws in sockets)
        rss = server.rss_mib()
        stop.set()
        await pinger
        for ws in sockets:
            await ws.close()
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    return {"alive": alive, "connect_s": connect_s, "rtt_p50_ms": _percentile(rtts, 0.5) * 1000,
            "rtt_p99_ms": _percentile(rtts, 0.99) * 1000, "cpu": cpu, "rss_mib": rss}


async def _relay(server: _Server, name: str, pairs: int, messages: int,
                 window: int) -> dict[str, Any]:
    hub = server.mode == "hub"
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        opened = []
        for n in range(pairs):
            room = f"{server.url}/{name}-{n}"
            patient, pid = await _connect(session, f"{room}/patient", hub)
            doctor, _ = await _connect(session, f"{room}/doctor", hub)
            opened.append((doctor, patient, pid or "patient"))
        await asyncio.sleep(0.3)  # room updates of the joins are through

        async def one_pair(doctor: aiohttp.ClientWebSocketResponse,
                           patient: aiohttp.ClientWebSocketResponse, pid: str) -> None:
            free = asyncio.Semaphore(window)
            done = asyncio.Event()

            async def receive() -> None:
                count = 0
                async for message in patient:
                    text: str = message.data
                    if not text.startswith(SIGNAL_PREFIX):
                        continue
                    start = text.rindex('"t":') + 4
                    sent = float(text[start:text.index("}", start)])
                    latencies.append(time.perf_counter() - sent)
                    count += 1
                    free.release()
                    if hub and count % ACK_EVERY == 0:
                        start = text.index('"seq":') + 6
                        seq = text[start:text.index(",", start)]
                        await patient.send_str(f'{{"v":1,"type":"ack","upto":{seq}}}')
                    if count == messages:
                        done.set()
                        return

            async def drain_doctor() -> None:
                async for _ in doctor:  # acks and pongs of the hub
                    pass

            reader = asyncio.create_task(receive())
            drainer = asyncio.create_task(drain_doctor())
            for seq in range(1, messages + 1):
                await free.acquire()
                await doctor.send_str(f'{SIGNAL_PREFIX},"seq":{seq},"to":"{pid}","data":'
                                      f'{DATA_PREFIX}{time.perf_counter()!r}}}}}')
            await asyncio.wait_for(done.wait(), TIMEOUT_S)
            reader.cancel()
            drainer.cancel()
            await asyncio.gather(reader, drainer, return_exceptions=True)

        cpu_before, started = server.cpu_s(), time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(one_pair(*pair) for pair in opened)), TIMEOUT_S)
        elapsed = time.perf_counter() - started
        cpu = server.cpu_s() - cpu_before
        for doctor, patient, _ in opened:
            await doctor.close()
            await patient.close()
    total = pairs * messages
    return {"msgs_per_s": total / elapsed, "p50_ms": _percentile(latencies, 0.5) * 1000,
            "p99_ms": _percentile(latencies, 0.99) * 1000, "cpu_us_per_msg": cpu / total * 1e6}


def _median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median throughput (its latencies belong to it), and the spread."""
    ordered = sorted(rounds, key=lambda r: r["msgs_per_s"])
    return {**ordered[len(rounds) // 2], "min_msgs_per_s": ordered[0]["msgs_per_s"],
            "max_msgs_per_s": ordered[-1]["msgs_per_s"]}


def _measure() -> dict[str, dict[str, dict[str, Any]]]:
    servers = {mode: _Server(mode) for mode in MODES}
    figures: dict[str, dict[str, Any]] = {mode: {} for mode in servers}
    bursts: dict[str, list[dict[str, Any]]] = {mode: [] for mode in servers}
    try:
        for mode in ("pipe", "hub"):  # the routing relay pongs exactly like the pipe
            figures[mode]["waiting"] = asyncio.run(_waiting(servers[mode]))
        for number in range(ROUNDS):
            for mode, server in servers.items():
                bursts[mode].append(asyncio.run(
                    _relay(server, f"burst{number}", PAIRS, MESSAGES, WINDOW)))
        for mode, server in servers.items():
            figures[mode]["burst"] = _median_round(bursts[mode])
            figures[mode]["single"] = asyncio.run(_relay(server, "single", 1, SINGLE, 1))
    finally:
        for server in servers.values():
            server.stop()
    return figures


def run() -> list[dict[str, Any]]:
    """Measure hub, routing relay and pipe in the same run; one row per scenario."""
    _raise_file_limit()
    _pin(1)
    figures = _measure()
    hub, pipe = figures["hub"]["waiting"], figures["pipe"]["waiting"]
    rows: list[dict[str, Any]] = [{
        "name": f"waiting: {WAITING} patients, ping 500 ms, {HOLD_S:.0f} s",
        "hub": f"{hub['alive']} alive, pong p50 {hub['rtt_p50_ms']:.0f} ms / p99 "
               f"{hub['rtt_p99_ms']:.0f} ms, CPU {hub['cpu']:.0%}, RSS {hub['rss_mib']:.0f} MiB",
        "pipe": f"{pipe['alive']} alive, pong p50 {pipe['rtt_p50_ms']:.0f} ms / p99 "
                f"{pipe['rtt_p99_ms']:.0f} ms, CPU {pipe['cpu']:.0%}, RSS "
                f"{pipe['rss_mib']:.0f} MiB",
        "hub connect s": round(hub["connect_s"], 1),
    }]
    for key, name in (("burst", f"relay burst: {PAIRS} pairs × {MESSAGES}, window {WINDOW}"),
                      ("single", f"relay single: 1 pair × {SINGLE}, one at a time")):
        h, r, p = (figures[mode][key] for mode in ("hub", "route", "pipe"))
        rows.append({
            "name": name,
            "hub msgs/s": round(h["msgs_per_s"]), "route msgs/s": round(r["msgs_per_s"]),
            "pipe msgs/s": round(p["msgs_per_s"]),
            "hub / route": round(h["msgs_per_s"] / r["msgs_per_s"], 2),
            "hub / pipe": round(h["msgs_per_s"] / p["msgs_per_s"], 2),
            "p50 ms hub/route/pipe": "/".join(f"{x['p50_ms']:.2f}" for x in (h, r, p)),
            "p99 ms hub/route/pipe": "/".join(f"{x['p99_ms']:.2f}" for x in (h, r, p)),
        })
        if key == "burst":  # a few hundred messages are below the CPU clock's resolution
            rows[-1]["server µs/msg hub/route/pipe"] = "/".join(
                f"{x['cpu_us_per_msg']:.0f}" for x in (h, r, p))
            rows[-1][f"msgs/s of the {ROUNDS} rounds, min–max hub/route/pipe"] = " / ".join(
                f"{x['min_msgs_per_s'] / 1000:.1f}k–{x['max_msgs_per_s'] / 1000:.1f}k"
                for x in (h, r, p))
    burst = rows[1]
    print(f"signaling: the hub relays {burst['hub / route']:.2f}× the messages/s of a bare "
          f"routing relay and {burst['hub / pipe']:.2f}× those of a bare pipe (goal ≥ 0.7)",
          flush=True)
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        started = time.perf_counter()
        for row in run():
            print(row)
        print(f"took {time.perf_counter() - started:.0f} s")
