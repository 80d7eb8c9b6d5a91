"""The device-check peer (R13): an aiortc endpoint on the box that sends back what it receives.

A patient (or a practice PC) calls it from the device-check page before the appointment. It
returns the camera picture, the microphone sound and every data-channel probe, so the page can
measure what the real call will get: round-trip time, loss, and throughput both ways.

aiortc cannot forward received media without decoding it (its receiver always decodes and its
sender encodes frames), so the echo keeps the box's CPU low another way: the picture goes back
at most 320×240 and 10 frames per second, and each check ends after ``max_seconds``. A cap on
concurrent checks keeps the box free for the consultations themselves.

Data-channel protocol (text messages are JSON; the page opens the channel):

- any text message, e.g. the probe ``{"n": 7, "t": 1234.5}``, comes back unchanged at once
  (RTT = now − t, loss = probes without an answer);
- ``{"download": <bytes>}`` (at most :data:`DOWNLOAD_MAX_BYTES`) is answered with that many
  bytes of binary messages followed by ``{"downloaded": <bytes>}``: the download rate;
- a binary message is counted, not echoed, and answered with ``{"received": <total bytes>}``:
  the upload rate, without the return leg in the figure.

Probes wait behind a running download (one ordered channel), so measure RTT before or after.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import socket
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import Any, Final

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from av import VideoFrame

from appliance.errors import SprechzimmerError

_LOGGER = logging.getLogger(__name__)

DEFAULT_MAX_CONCURRENT: Final = 2
DEFAULT_MAX_SECONDS: Final = 30.0
#: the echoed picture: enough to see oneself, cheap to encode (~1/4 of 640×480 at 1/3 the rate)
ECHO_WIDTH: Final = 320
ECHO_HEIGHT: Final = 240
ECHO_FPS: Final = 10.0
#: a refused page polls at least this often, so a slot freed early is taken soon
RETRY_MAX_S: Final = 5
#: a waiting page that has not asked again for this long beyond its hint loses its place
WAITER_GRACE_S: Final = 15.0
DOWNLOAD_MAX_BYTES: Final = 4 * 1024 * 1024
#: what one check may download in total (a few measurements, not a bulk transfer)
DOWNLOAD_BUDGET_BYTES: Final = 16 * 1024 * 1024
CHUNK_BYTES: Final = 16 * 1024
_CHUNK: Final = bytes(CHUNK_BYTES)
#: aiortc lets the page keep 1 MiB of data-channel bytes in flight (its SCTP receive window), but
#: a UDP socket holds ~208 KiB by default: while the event loop is busy the rest is dropped, and
#: the dropped RTP looks like loss on the patient's line. Measured with Chromium after a 2 MB
#: upload probe: 6–69 % reported loss and a stalled echo with the default, none with 4 MiB.
#: The kernel grants at most ``net.core.rmem_max``; the box must allow at least this much.
RECEIVE_BUFFER_BYTES: Final = 4 * 1024 * 1024

#: RTCIceServer dicts as the TURN relay hands them out (``TurnRelay.ice_servers_for``)
IceServers = Callable[[], Sequence[Mapping[str, Any]]]


class EchoBusy(SprechzimmerError):
    """Every device-check slot is taken; the page waits at ``position`` and asks again."""

    code = "device_check_busy"
    status = 503

    def __init__(self, *, position: int, retry_after_s: int) -> None:
        super().__init__(position=position, retry_after_s=retry_after_s)

    @property
    def position(self) -> int:
        """1 = next in line."""
        return int(self.params["position"])

    @property
    def retry_after_s(self) -> int:
        """Seconds after which the page should offer again."""
        return int(self.params["retry_after_s"])


class EchoOfferInvalid(SprechzimmerError):
    """The browser's offer is not a WebRTC offer aiortc can answer."""

    code = "device_check_offer_invalid"
    status = 400


class EchoVideoTrack(MediaStreamTrack):
    """The received picture, scaled down to fit ``width``×``height`` at no more than ``fps``."""

    kind = "video"

    def __init__(self, source: MediaStreamTrack, *, width: int = ECHO_WIDTH,
                 height: int = ECHO_HEIGHT, fps: float = ECHO_FPS) -> None:
        super().__init__()
        self._source = source
        self._width = width
        self._height = height
        self._interval = 1.0 / fps
        self._due: float | None = None

    async def recv(self) -> VideoFrame:  # type: ignore[override]
        """The next frame to send back; frames that come too soon are dropped unencoded."""
        while True:
            frame = await self._source.recv()
            assert isinstance(frame, VideoFrame)
            when = frame.time
            if when is not None:
                # a quarter interval of slack: 30 fps thinned to 10 keeps every third frame
                if self._due is not None and when < self._due - self._interval / 4:
                    continue
                late = self._due is None or when - self._due > self._interval
                self._due = when + self._interval if late else self._due + self._interval
            return self._fit(frame)

    def _fit(self, frame: VideoFrame) -> VideoFrame:
        scale = min(self._width / frame.width, self._height / frame.height)
        if scale >= 1.0:
            return frame
        width = max(2, int(frame.width * scale) // 2 * 2)  # yuv420p needs even sides
        height = max(2, int(frame.height * scale) // 2 * 2)
        small = frame.reformat(width=width, height=height, format="yuv420p")
        small.pts = frame.pts
        small.time_base = frame.time_base or Fraction(1, 90000)
        return small

    def stop(self) -> None:
        """Stop this track and the received one behind it."""
        super().stop()
        self._source.stop()


class EchoCheck:
    """One running device check: its peer connection and its deadline."""

    def __init__(self, *, waiter: str | None, deadline: float) -> None:
        self.waiter = waiter
        self.deadline = deadline
        self.pc: RTCPeerConnection | None = None
        self.closed = asyncio.Event()
        #: set the moment a hang-up is decided, before it runs
        self.ending = False
        self._timer: asyncio.TimerHandle | None = None
        #: the receive buffer each UDP socket of the peer got (bytes)
        self.receive_buffers: list[int] = []
        self._downloaded = 0
        self._received = 0

    async def close(self) -> None:
        """Hang up (idempotent)."""
        if self.closed.is_set():
            return
        self.closed.set()
        if self._timer is not None:
            self._timer.cancel()
        if self.pc is not None:
            await self.pc.close()

    def on_message(self, channel: RTCDataChannel, message: str | bytes) -> None:
        """Answer one data-channel message (see the module docstring)."""
        if channel.readyState != "open":
            return
        if isinstance(message, bytes):
            self._received += len(message)
            channel.send(json.dumps({"received": self._received}))
            return
        size = _download_request(message)
        if size is None:
            channel.send(message)
            return
        size = max(0, min(size, DOWNLOAD_MAX_BYTES, DOWNLOAD_BUDGET_BYTES - self._downloaded))
        self._downloaded += size
        whole, rest = divmod(size, CHUNK_BYTES)
        for _ in range(whole):
            channel.send(_CHUNK)
        if rest:
            channel.send(_CHUNK[:rest])
        channel.send(json.dumps({"downloaded": size}))


def _download_request(message: str) -> int | None:
    if not message.startswith('{"download"'):
        return None
    try:
        value = json.loads(message).get("download")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class EchoService:
    """Answers device-check offers with an echo peer; at most ``max_concurrent`` at a time.

    ``ice_servers`` is called for every check, so TURN credentials can be fresh each time.
    A page that is refused waits in line under its ``waiter`` key (one per session): when a
    slot frees, the first in line gets it, and a new check from the same key replaces that
    key's running one (a reloaded page does not hold two slots).
    """

    def __init__(
        self, *, max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        max_seconds: float = DEFAULT_MAX_SECONDS, ice_servers: IceServers = lambda: (),
        video_size: tuple[int, int] = (ECHO_WIDTH, ECHO_HEIGHT), video_fps: float = ECHO_FPS,
    ) -> None:
        if max_concurrent < 1 or max_seconds <= 0:
            raise ValueError("max_concurrent must be ≥ 1 and max_seconds > 0")
        self.max_concurrent = max_concurrent
        self.max_seconds = max_seconds
        self._ice_servers = ice_servers
        self._video_size = video_size
        self._video_fps = video_fps
        self._active: list[EchoCheck] = []
        #: waiter key → when it was told to ask again (insertion order is the line)
        self._waiting: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._warned = False

    @property
    def active(self) -> int:
        """How many checks run now."""
        return len(self._active)

    @property
    def checks(self) -> tuple[EchoCheck, ...]:
        """The checks running now."""
        return tuple(self._active)

    async def accept(
        self, offer_sdp: str, offer_type: str, *, waiter: str | None = None
    ) -> RTCSessionDescription:
        """Answer a browser's offer with a new echo peer, or raise :class:`EchoBusy`."""
        if offer_type != "offer" or not offer_sdp.startswith("v=0"):
            raise EchoOfferInvalid()
        loop = asyncio.get_running_loop()
        replaced, check = self._admit(waiter, loop.time())
        if replaced is not None:
            await replaced.close()
        try:
            return await self._answer(check, offer_sdp)
        except BaseException:
            await self._close(check)
            raise

    async def close_all(self) -> None:
        """Hang up every check (on shutdown) and wait for the hang-ups to finish."""
        self._closing = True
        checks, self._active = self._active, []
        self._waiting.clear()
        await asyncio.gather(*(check.close() for check in checks), return_exceptions=True)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- admission -------------------------------------------------------------------------

    def _admit(self, waiter: str | None, now: float) -> tuple[EchoCheck | None, EchoCheck]:
        """Take a slot for ``waiter`` now (synchronously: no other accept runs in between)."""
        if self._closing:
            raise EchoBusy(position=1, retry_after_s=RETRY_MAX_S)
        self._forget_stale_waiters(now)
        replaced = next((c for c in self._active if c.waiter == waiter), None) if waiter else None
        if replaced is not None:  # a reloaded page: its new check takes over its own slot
            self._active.remove(replaced)
        else:
            queue = list(self._waiting)
            ahead = queue.index(waiter) if waiter in self._waiting else len(queue)
            free = self.max_concurrent - len(self._active)
            if free <= ahead:
                retry = self._retry_after(ahead - max(free, 0), now)
                if waiter is not None:
                    self._waiting[waiter] = now + retry
                raise EchoBusy(position=ahead + 1, retry_after_s=retry)
            if waiter is not None:
                self._waiting.pop(waiter, None)
        check = EchoCheck(waiter=waiter, deadline=now + self.max_seconds)
        self._active.append(check)
        return replaced, check

    def _retry_after(self, slots_before_mine: int, now: float) -> int:
        """Seconds until the slot for the one behind ``slots_before_mine`` others frees (≤ 5)."""
        remaining = sorted(max(0.0, c.deadline - now) for c in self._active) or [0.0]
        rounds, index = divmod(slots_before_mine, len(remaining))
        estimate = remaining[index] + rounds * self.max_seconds
        return max(1, min(RETRY_MAX_S, math.ceil(estimate)))

    def _forget_stale_waiters(self, now: float) -> None:
        for key, due in list(self._waiting.items()):
            if now > due + WAITER_GRACE_S:
                del self._waiting[key]

    # --- the peer --------------------------------------------------------------------------

    async def _answer(self, check: EchoCheck, offer_sdp: str) -> RTCSessionDescription:
        pc = RTCPeerConnection(RTCConfiguration(
            iceServers=[RTCIceServer(**server) for server in self._ice_servers()]))
        check.pc = pc  # registered for closing before anything else can fail
        loop = asyncio.get_running_loop()
        check._timer = loop.call_at(check.deadline, self._close_soon, check)
        width, height = self._video_size

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                pc.addTrack(EchoVideoTrack(track, width=width, height=height,
                                           fps=self._video_fps))
            else:
                pc.addTrack(track)  # the voice back as it came (re-encoded by the sender)

        @pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            channel.on("message", lambda message: check.on_message(channel, message))
            channel.on("close", lambda: self._close_soon(check))

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                self._close_soon(check)

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except Exception as exc:  # untrusted SDP: aiortc raises many kinds of errors
            _LOGGER.debug("device check: offer rejected: %r", exc)
            raise EchoOfferInvalid() from None
        await pc.setLocalDescription(await pc.createAnswer())
        check.receive_buffers = _widen_receive_buffers(pc, RECEIVE_BUFFER_BYTES)
        if min(check.receive_buffers, default=0) < RECEIVE_BUFFER_BYTES and not self._warned:
            self._warned = True
            _LOGGER.warning(
                "device check: UDP receive buffers %s bytes, not %d (net.core.rmem_max?); "
                "under load the check may report loss the patient's line does not have",
                check.receive_buffers, RECEIVE_BUFFER_BYTES,
            )
        answer = pc.localDescription
        assert answer is not None  # set just above
        return answer

    def _close_soon(self, check: EchoCheck) -> None:
        """Free the slot now and hang up in the background (from callbacks and timers)."""
        if check.ending:
            return
        check.ending = True
        self._release(check)
        task = asyncio.ensure_future(self._close(check))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _release(self, check: EchoCheck) -> None:
        with contextlib.suppress(ValueError):
            self._active.remove(check)

    async def _close(self, check: EchoCheck) -> None:
        check.ending = True
        self._release(check)
        try:
            await check.close()
        except Exception:  # a failing hang-up must not keep the slot
            _LOGGER.exception("device check: closing the peer failed")


def _widen_receive_buffers(pc: RTCPeerConnection, size: int) -> list[int]:
    """Give each UDP socket of ``pc`` ``size`` bytes to receive into; what each one got.

    aiortc has no option for it, so this reaches aioice's sockets through two private
    attributes (``RTCIceTransport._connection``, ``Connection._protocols``);
    ``tests/rtc/test_echo_peer.py`` fails if an upgrade moves them. Sockets of a TURN
    allocation are aioice's own and keep their size.
    """
    ice_transports = {t.receiver.transport.transport for t in pc.getTransceivers()}
    if pc.sctp is not None:
        ice_transports.add(pc.sctp.transport.transport)
    granted: list[int] = []
    for ice in ice_transports:
        for protocol in getattr(getattr(ice, "_connection", None), "_protocols", ()):
            transport = getattr(protocol, "transport", None)
            sock = transport.get_extra_info("socket") if transport is not None else None
            if sock is None:
                continue
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
                # Linux reports twice the size it grants (the rest is its bookkeeping)
                granted.append(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2)
            except OSError as exc:
                _LOGGER.debug("device check: receive buffer not widened: %r", exc)
    return granted

__all__ = ["EchoBusy", "EchoCheck", "EchoOfferInvalid", "EchoService", "EchoVideoTrack"]
