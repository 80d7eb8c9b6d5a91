"""Helpers for the TURN tests: a real coturn from our configuration, and relay-only aiortc peers.

Plain helpers rather than pytest fixtures, so ``tests/rtc/conftest.py`` stays free for others;
each test module wraps them in the fixtures it needs. Run as a program
(``python -m tests.rtc.turn_fixtures offer|answer ICE_JSON``) it is one peer of a call that trades
its SDP over standard input and output: the namespace tests start it inside a namespace.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)

from appliance.config import TurnSettings, TurnUplink
from appliance.rtc.turn import coturn_config

SECRET = "praxis-test-secret-0123456789abcdef"
REALM = "test.local"
START_TIMEOUT_S = 10.0
CALL_TIMEOUT_S = 20.0


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def loopback_settings(port: int, **changes: Any) -> TurnSettings:
    """TURN settings for a coturn on 127.0.0.1: box LAN address and "public host" are loopback."""
    values: dict[str, Any] = {
        "enabled": True, "secret": SECRET, "realm": REALM, "lan_address": "127.0.0.1",
        "uplinks": (TurnUplink(public_host="127.0.0.1", public_address="127.0.0.1",
                               lan_address="127.0.0.1"),),
        "port": port, "min_port": 61000, "max_port": 61999,
    } | changes
    return TurnSettings(**values)


@dataclass
class Coturn:
    """A running ``turnserver`` and where it writes its log."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def log_text(self) -> str:
        """What coturn logged so far."""
        return self.log.read_text("utf-8", errors="replace") if self.log.exists() else ""


def _udp_bound(pid: int, port: int) -> bool:
    # /proc/<pid>/net/udp shows the sockets of the process's own network namespace
    try:
        lines = Path(f"/proc/{pid}/net/udp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(line.split()[1].endswith(f":{port:04X}") for line in lines)


@contextmanager
def running_coturn(settings: TurnSettings, directory: Path, *, extra: Sequence[str] = (),
                   netns: str | None = None) -> Iterator[Coturn]:
    """Start coturn with ``coturn_config(settings)`` plus ``extra`` lines; stop it afterwards."""
    log = directory / "turnserver.log"
    config = directory / "turnserver.conf"
    config.touch(mode=0o600)
    config.write_text(coturn_config(settings) + "\n".join(
        [*extra, f"pidfile={directory / 'turnserver.pid'}", f"log-file={log}", "simple-log",
         "no-stdout-log", f"userdb={directory / 'turndb'}", ""]), "utf-8")
    command = ["turnserver", "-c", str(config)]
    if netns:
        command = ["ip", "netns", "exec", netns, *command]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    coturn = Coturn(process=process, port=settings.port, log=log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (_udp_bound(process.pid, settings.port)
                   and "Total General servers" in coturn.log_text()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("coturn did not start:\n" + coturn.log_text()[-3000:])
            time.sleep(0.05)
        yield coturn
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- relay-only aiortc peers -----------------------------------------------------------------


class _SmallPattern(VideoStreamTrack):
    """A 160×120 grey picture: real VP8 frames at little CPU cost."""

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame(width=160, height=120, format="yuv420p")
        for plane in frame.planes:
            plane.update(bytes([128]) * plane.buffer_size)
        frame.pts, frame.time_base = pts, Fraction(time_base)
        return frame


def _configuration(ice_servers: list[dict[str, Any]]) -> RTCConfiguration:
    # TESTING.md: always explicit servers (the default STUN hangs offline), the enum for relay
    return RTCConfiguration(iceServers=[RTCIceServer(**server) for server in ice_servers],
                            iceTransportPolicy=RTCIceTransportPolicy.RELAY)


@dataclass
class CallResult:
    """What one side of a relay-only call saw, in seconds from its own start."""

    connected_s: float
    first_frame_s: float
    echo: str
    candidate_types: list[str]


async def _run_peer(pc: RTCPeerConnection, started: float, *, offerer: bool,
                    exchange: Callable[[dict[str, str]], Awaitable[dict[str, str]]],
                    ) -> CallResult:
    connected = asyncio.get_running_loop().create_future()
    frame_at = asyncio.get_running_loop().create_future()
    echo = asyncio.get_running_loop().create_future()

    @pc.on("connectionstatechange")
    def _state() -> None:
        if pc.connectionState == "connected" and not connected.done():
            connected.set_result(time.monotonic() - started)
        elif pc.connectionState == "failed" and not connected.done():
            connected.set_exception(ConnectionError("ICE failed"))

    @pc.on("track")
    def _track(track: Any) -> None:
        async def first_frame() -> None:
            await track.recv()
            if not frame_at.done():
                frame_at.set_result(time.monotonic() - started)
        asyncio.ensure_future(first_frame())

    def _channel(channel: Any) -> None:
        @channel.on("message")
        def _message(message: str) -> None:
            if message.startswith("ping"):
                channel.send("pong" + message[4:])
            if not echo.done():
                echo.set_result(message)

    pc.addTrack(_SmallPattern())
    if offerer:
        channel = pc.createDataChannel("probe")
        _channel(channel)

        @channel.on("open")
        def _open() -> None:
            channel.send("ping über das Relay")

        await pc.setLocalDescription(await pc.createOffer())
        answer = await exchange(_sdp(pc))
        await pc.setRemoteDescription(RTCSessionDescription(**answer))
    else:
        pc.on("datachannel", _channel)
        offer = await exchange({})
        await pc.setRemoteDescription(RTCSessionDescription(**offer))
        await pc.setLocalDescription(await pc.createAnswer())
        await exchange(_sdp(pc))
    async with asyncio.timeout(CALL_TIMEOUT_S):
        connected_s = await connected
        first_frame_s = await frame_at
        message = await echo
    types = sorted({line.split()[7] for line in pc.localDescription.sdp.splitlines()
                    if line.startswith("a=candidate:")})
    return CallResult(connected_s=connected_s, first_frame_s=first_frame_s, echo=message,
                      candidate_types=types)


def _sdp(pc: RTCPeerConnection) -> dict[str, str]:
    return {"type": pc.localDescription.type, "sdp": pc.localDescription.sdp}


async def relay_only_call(offer_servers: list[dict[str, Any]],
                          answer_servers: list[dict[str, Any]]) -> tuple[CallResult, CallResult]:
    """Two relay-only peers in this process: (offerer's view, answerer's view)."""
    to_answerer: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    to_offerer: asyncio.Queue[dict[str, str]] = asyncio.Queue()

    async def offer_exchange(sdp: dict[str, str]) -> dict[str, str]:
        await to_answerer.put(sdp)
        return await to_offerer.get()

    async def answer_exchange(sdp: dict[str, str]) -> dict[str, str]:
        if sdp:
            await to_offerer.put(sdp)
            return {}
        return await to_answerer.get()

    offerer = RTCPeerConnection(_configuration(offer_servers))
    answerer = RTCPeerConnection(_configuration(answer_servers))
    started = time.monotonic()
    try:
        results = await asyncio.gather(
            _run_peer(offerer, started, offerer=True, exchange=offer_exchange),
            _run_peer(answerer, started, offerer=False, exchange=answer_exchange),
        )
        return results[0], results[1]
    finally:
        await offerer.close()
        await answerer.close()


async def _peer_main(role: str, ice_servers: list[dict[str, Any]]) -> None:
    """One peer whose SDP goes out on stdout and comes in on stdin, one JSON line each."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def exchange(sdp: dict[str, str]) -> dict[str, str]:
        if sdp:
            print(json.dumps(sdp), flush=True)
            if role == "answer":
                return {}
        return json.loads(await reader.readline())

    pc = RTCPeerConnection(_configuration(ice_servers))
    try:
        result = await _run_peer(pc, time.monotonic(), offerer=role == "offer",
                                 exchange=exchange)
        print(json.dumps({"result": result.__dict__}), flush=True)
    except (TimeoutError, ConnectionError) as exc:
        print(json.dumps({"error": repr(exc)}), flush=True)
    finally:
        await pc.close()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(_peer_main(sys.argv[1], json.loads(sys.argv[2])))
