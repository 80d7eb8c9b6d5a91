"""An aiortc stand-in for the device-check page (R13): synthetic camera and microphone, probes."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError
from av import VideoFrame

VIDEO_CLOCK: int = 90_000


class SyntheticCamera(MediaStreamTrack):
    """A camera of ``width``×``height`` at ``fps`` whose picture changes every frame."""

    kind = "video"

    def __init__(self, width: int = 320, height: int = 240, fps: float = 15.0) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self._count = 0
        self._start: float | None = None

    async def recv(self) -> VideoFrame:  # type: ignore[override]
        """The next frame, on time."""
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        self._count += 1
        await asyncio.sleep(max(0.0, self._start + self._count / self.fps - time.monotonic()))
        frame = VideoFrame(self.width, self.height, "yuv420p")
        for index, plane in enumerate(frame.planes):
            shade = (self._count * 5 + 70 * index) % 256
            plane.update(bytes([shade]) * (plane.line_size * plane.height))
        frame.pts = int(self._count * VIDEO_CLOCK / self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return frame


async def eventually(condition: Callable[[], bool], seconds: float) -> None:
    """Until ``condition()`` holds (for state the box offers no event for), at most ``seconds``."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - polling a plain counter
            await asyncio.sleep(0.02)


class EchoClient:
    """One device check from the page's side: offer, answer, then count what comes back."""

    def __init__(self, *, width: int = 320, height: int = 240, fps: float = 15.0) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # TESTING.md: explicit
        self.pc.addTrack(SyntheticCamera(width, height, fps))
        self.pc.addTrack(AudioStreamTrack())
        self.channel: RTCDataChannel = self.pc.createDataChannel("probe")
        self.frame_sizes: list[tuple[int, int]] = []
        self.frame_times: list[float] = []
        self.audio_frames = 0
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.binary_bytes = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = asyncio.Event()
        self._open = asyncio.Event()
        self._frame = asyncio.Event()
        self.channel.on("open", self._open.set)
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)
        self.channel.on("message", self._on_message)

    async def offer(self) -> dict[str, str]:
        """The offer as the page posts it: ``{"sdp", "type"}`` (candidates included)."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        description = self.pc.localDescription
        return {"sdp": description.sdp, "type": description.type}

    async def accept(self, answer: dict[str, Any] | RTCSessionDescription) -> None:
        """Apply the box's answer."""
        if isinstance(answer, dict):
            answer = RTCSessionDescription(sdp=answer["sdp"], type=answer["type"])
        await self.pc.setRemoteDescription(answer)

    async def wait_open(self, seconds: float = 5.0) -> None:
        """Until the data channel is open (the call is connected)."""
        async with asyncio.timeout(seconds):
            await self._open.wait()

    async def probe(self, n: int, seconds: float = 2.0) -> float:
        """Send the page's probe ``{"n", "t"}``; the round-trip time in ms when it comes back."""
        self.channel.send(json.dumps({"n": n, "t": time.monotonic() * 1000}))
        async with asyncio.timeout(seconds):
            while True:
                message = await self.messages.get()
                if message.get("n") == n:
                    return time.monotonic() * 1000 - message["t"]

    async def reply(self, key: str, seconds: float = 5.0) -> dict[str, Any]:
        """The next text message that has ``key``."""
        async with asyncio.timeout(seconds):
            while True:
                message = await self.messages.get()
                if key in message:
                    return message

    async def wait_frames(self, count: int, seconds: float = 5.0) -> None:
        """Until ``count`` echoed video frames arrived."""
        async with asyncio.timeout(seconds):
            while len(self.frame_sizes) < count:
                self._frame.clear()
                await self._frame.wait()

    async def wait_hung_up(self, seconds: float) -> float:
        """Until the box ends the call; how long that took."""
        start = time.monotonic()
        async with asyncio.timeout(seconds):
            await self._closed.wait()
        return time.monotonic() - start

    async def close(self) -> None:
        """Hang up from the page's side."""
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, MediaStreamError):
                await task

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._tasks.append(asyncio.ensure_future(self._pull(track)))

    async def _pull(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if track.kind == "video":
                    assert isinstance(frame, VideoFrame)
                    self.frame_sizes.append((frame.width, frame.height))
                    self.frame_times.append(time.monotonic())
                    self._frame.set()
                else:
                    self.audio_frames += 1

    def _on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self.binary_bytes += len(message)
        else:
            self.messages.put_nowait(json.loads(message))

    def _on_state(self) -> None:
        if self.pc.connectionState in ("closed", "failed"):
            self._closed.set()


@pytest.fixture(name="clients")
async def clients_fixture() -> AsyncIterator[list[EchoClient]]:
    """Clients a test opens; all hung up afterwards."""
    opened: list[EchoClient] = []
    yield opened
    for client in opened:
        await client.close()
