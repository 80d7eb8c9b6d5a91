"""Test pages in Python: the signaling protocol over aiohttp's client WebSocket, aiortc calls.

:class:`SignalingPage` behaves like the call page of docs/signaling.md (hello with ``received``,
pings every 500 ms, seq numbering, outbox until acknowledged, replay after ``welcome``, in-order
delivery, duplicate drop, several sockets at once). :class:`CallPeer` puts an aiortc
RTCPeerConnection per remote participant on top: 320×240 synthetic video, silent audio and a
data channel for chat and files (which never pass the box).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack

from appliance.rtc import messages as m

Connect = Callable[[], Awaitable[aiohttp.ClientWebSocketResponse]]
PING_S = 0.5
CHUNK = 16 * 1024
WIDTH, HEIGHT = 320, 240


async def eventually(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll ``condition`` (state outside the pages, e.g. the hub's) until it holds."""
    async with asyncio.timeout(seconds):
        while True:
            if condition():
                return
            await asyncio.sleep(0.05)


class SmallVideo(VideoStreamTrack):
    """A 320×240 synthetic camera (aiortc's own is 640×480; TESTING.md: keep peers cheap)."""

    def __init__(self) -> None:
        super().__init__()
        self._count = 0

    async def recv(self) -> av.VideoFrame:
        """The next frame: a grey level that changes, so the encoder has something to do."""
        pts, time_base = await self.next_timestamp()
        self._count += 1
        frame = av.VideoFrame(width=WIDTH, height=HEIGHT)
        for plane in frame.planes:
            plane.update(bytes([self._count % 256]) * plane.buffer_size)
        frame.pts, frame.time_base = pts, time_base
        return frame


@dataclass(eq=False)
class Line:
    """One socket of a page (one per uplink in the real page)."""

    ws: aiohttp.ClientWebSocketResponse
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    #: the path died: nothing is read, written or pinged any more, but nothing closes either
    dead: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class SignalingPage:
    """One participant's page: sessions, sequences and sockets as docs/signaling.md asks."""

    def __init__(self, connect: Connect, *, name: str = "page") -> None:
        self.connect_socket = connect
        self.name = name
        self.session = secrets.token_urlsafe(18)
        self.me: m.ParticipantInfo | None = None
        self.lines: list[Line] = []
        #: client → hub
        self.seq = 0
        self.outbox: dict[int, str] = {}
        #: hub → client: last seq processed in order, and what came early
        self.received = 0
        self.held: dict[int, m.HubMessage] = {}
        self.inbox: list[m.HubMessage] = []
        self.errors: list[m.Error] = []
        self.closes: list[int | None] = []
        self.queue: asyncio.Queue[m.HubMessage] = asyncio.Queue()
        self._changed = asyncio.Event()

    @property
    def id(self) -> str:
        """The hub's id for this participant."""
        assert self.me is not None, "no welcome yet"
        return self.me.id

    async def open(self) -> Line:
        """Open one more socket, say hello and wait for the welcome."""
        ws = await self.connect_socket()
        line = Line(ws)
        self.lines.append(line)
        await ws.send_str(m.serialize(m.Hello(session=self.session, received=self.received)))
        line.tasks.append(asyncio.create_task(self._read(line)))
        line.tasks.append(asyncio.create_task(self._ping(line)))
        await asyncio.wait_for(line.ready.wait(), 10)
        return line

    async def send(self, kind: str, **payload: Any) -> int:
        """Send a reliable message on every live socket; kept until the hub acknowledges it."""
        self.seq += 1
        text = json.dumps({"v": 1, "type": kind, "seq": self.seq, **payload})
        self.outbox[self.seq] = text
        for line in self.live_lines():
            with contextlib.suppress(ConnectionError):
                await line.ws.send_str(text)
        return self.seq

    async def send_raw(self, text: str | bytes, line: Line | None = None) -> None:
        """Put any frame on a socket (for the garbage tests)."""
        target = line or self.live_lines()[0]
        if isinstance(text, bytes):
            await target.ws.send_bytes(text)
        else:
            await target.ws.send_str(text)

    def live_lines(self) -> list[Line]:
        """Sockets that are open, welcomed and not on a dead path."""
        return [ln for ln in self.lines if ln.ready.is_set() and not ln.dead
                and not ln.ws.closed]

    def kill_path(self, line: Line) -> None:
        """The uplink of ``line`` dies: silence both ways, no close (the hub must notice)."""
        line.dead = True

    async def wait_for(self, predicate: Callable[[m.HubMessage], bool],
                       seconds: float = 10.0) -> m.HubMessage:
        """The first processed hub message (old or new) that matches ``predicate``."""
        async with asyncio.timeout(seconds):
            while True:
                for message in self.inbox:
                    if predicate(message):
                        return message
                self._changed.clear()
                await self._changed.wait()

    async def wait_error(self, code: str, seconds: float = 5.0) -> m.Error:
        """The first error frame with ``code``."""
        async with asyncio.timeout(seconds):
            while True:
                for error in self.errors:
                    if error.code == code:
                        return error
                self._changed.clear()
                await self._changed.wait()

    async def close(self) -> None:
        """Close every socket and stop its tasks."""
        for line in self.lines:
            for task in line.tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                await line.ws.close()
        for line in self.lines:
            for task in line.tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    # --- inside ---------------------------------------------------------------------------

    async def _ping(self, line: Line) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            while not line.ws.closed:
                if not line.dead:
                    await line.ws.send_str(m.serialize(m.Ping(t=asyncio.get_running_loop().time())))
                await asyncio.sleep(PING_S)

    async def _read(self, line: Line) -> None:
        async for raw in line.ws:
            if line.dead:
                continue  # lost on the dead path
            if raw.type is not aiohttp.WSMsgType.TEXT:
                continue
            await self._handle(line, m.parse_hub(raw.data))
        self.closes.append(line.ws.close_code)
        self._changed.set()

    async def _handle(self, line: Line, message: m.HubMessage) -> None:
        if isinstance(message, m.Welcome):
            self.me = message.participant
            self._prune(message.received)
            line.ready.set()
            for seq in sorted(self.outbox):  # replay what the hub has not processed
                await line.ws.send_str(self.outbox[seq])
        elif isinstance(message, m.Ack):
            self._prune(message.upto)
        elif isinstance(message, m.Error):
            self.errors.append(message)
        elif isinstance(message, m.Pong):
            return
        else:
            seq = message.seq
            if seq <= self.received:
                return  # duplicate (another socket, or a replay)
            self.held[seq] = message
            while self.received + 1 in self.held:
                self.received += 1
                current = self.held.pop(self.received)
                self.inbox.append(current)
                self.queue.put_nowait(current)
            if not line.dead:
                with contextlib.suppress(ConnectionError):
                    await line.ws.send_str(m.serialize(m.Ack(upto=self.received)))
        self._changed.set()

    def _prune(self, upto: int) -> None:
        for seq in [s for s in self.outbox if s <= upto]:
            del self.outbox[seq]


class CallPeer:
    """A participant with aiortc: a peer connection to everyone admitted (a mesh)."""

    def __init__(self, page: SignalingPage) -> None:
        self.page = page
        self.ice_servers: list[dict[str, Any]] | None = None
        self.room: m.Room | None = None
        self.pcs: dict[str, RTCPeerConnection] = {}
        self.channels: dict[str, RTCDataChannel] = {}
        self.frames: Counter[tuple[str, str]] = Counter()
        self.chat: list[tuple[str, str]] = []
        self.files: dict[str, bytes] = {}
        self.ended: m.Ended | None = None
        self._incoming: dict[str, dict[str, Any]] = {}
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = [asyncio.create_task(self._dispatch())]

    @property
    def doctor(self) -> bool:
        """Whether this page is the doctor's (the impolite side that offers)."""
        return self.page.me is not None and self.page.me.role == "doctor"

    async def wait(self, condition: Callable[[], bool], seconds: float = 15.0) -> None:
        """Until ``condition()`` holds."""
        async with asyncio.timeout(seconds):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    async def wait_media(self, remote: str, frames: int = 5, seconds: float = 15.0) -> None:
        """Until video and audio frames from ``remote`` were decoded."""
        await self.wait(lambda: self.frames[(remote, "video")] >= frames
                        and self.frames[(remote, "audio")] >= frames, seconds)

    def nominated_pair(self, remote: str) -> Any:
        """The ICE candidate pair the media to and from ``remote`` uses (aioice's own object)."""
        transport = self.pcs[remote].getTransceivers()[0].receiver.transport.transport
        return transport.iceGatherer._connection._nominated[1]

    async def send_chat(self, remote: str, text: str) -> None:
        """A chat line over the data channel."""
        await self._open_channel(remote)
        self.channels[remote].send(json.dumps({"chat": text}))

    async def send_file(self, remote: str, name: str, data: bytes) -> None:
        """A file over the data channel: a header, then binary chunks."""
        await self._open_channel(remote)
        channel = self.channels[remote]
        channel.send(json.dumps({"file": name, "size": len(data),
                                 "sha256": hashlib.sha256(data).hexdigest()}))
        for start in range(0, len(data), CHUNK):
            channel.send(data[start:start + CHUNK])

    async def close(self) -> None:
        """Hang up every connection and close the page."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for pc in self.pcs.values():
            await pc.close()
        await self.page.close()

    # --- inside ---------------------------------------------------------------------------

    async def _open_channel(self, remote: str) -> None:
        await self.wait(lambda: remote in self.channels
                        and self.channels[remote].readyState == "open")

    def _should_offer(self, other: m.ParticipantInfo) -> bool:
        if self.doctor:
            return True
        return other.role != "doctor" and self.page.id < other.id

    async def _dispatch(self) -> None:
        while True:
            message = await self.page.queue.get()
            if isinstance(message, m.Admitted):
                self.ice_servers = [dict(s) for s in message.ice_servers]
            elif isinstance(message, m.Room):
                self.room = message
                await self._offer_to_newcomers(message)
            elif isinstance(message, m.SignalFrom):
                await self._on_signal(message.sender, dict(message.data))
            elif isinstance(message, m.Ended):
                self.ended = message
            self._changed.set()

    async def _offer_to_newcomers(self, room: m.Room) -> None:
        if self.ice_servers is None:
            return  # not admitted yet
        for other in room.participants:
            if (other.id != self.page.id and other.admitted and other.present
                    and other.id not in self.pcs and self._should_offer(other)):
                pc = self._new_pc(other.id)
                self._watch_channel(other.id, pc.createDataChannel("chat"))
                await pc.setLocalDescription(await pc.createOffer())
                await self._send_description(other.id, pc)

    async def _on_signal(self, sender: str, data: dict[str, Any]) -> None:
        if data.get("kind") != "description":
            return  # e.g. notes of the reconnect test: the page just records them
        description = RTCSessionDescription(**data["description"])
        if description.type == "offer":
            pc = self.pcs.get(sender) or self._new_pc(sender, add_tracks=False)
            await pc.setRemoteDescription(description)
            pc.addTrack(SmallVideo())
            pc.addTrack(AudioStreamTrack())
            await pc.setLocalDescription(await pc.createAnswer())
            await self._send_description(sender, pc)
        elif sender in self.pcs:
            await self.pcs[sender].setRemoteDescription(description)

    async def _send_description(self, remote: str, pc: RTCPeerConnection) -> None:
        local = pc.localDescription
        await self.page.send("signal", to=remote, data={
            "kind": "description", "connection": 1,
            "description": {"type": local.type, "sdp": local.sdp}})

    def _new_pc(self, remote: str, *, add_tracks: bool = True) -> RTCPeerConnection:
        servers = [RTCIceServer(**s) for s in self.ice_servers or []]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))  # explicit: no Google STUN
        self.pcs[remote] = pc
        if add_tracks:
            pc.addTrack(SmallVideo())
            pc.addTrack(AudioStreamTrack())

        @pc.on("track")
        def on_track(track: Any) -> None:
            self._tasks.append(asyncio.create_task(self._consume(remote, track)))

        @pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            self._watch_channel(remote, channel)

        return pc

    async def _consume(self, remote: str, track: Any) -> None:
        while True:
            try:
                await track.recv()
            except MediaStreamError:
                return
            self.frames[(remote, track.kind)] += 1
            self._changed.set()

    def _watch_channel(self, remote: str, channel: RTCDataChannel) -> None:
        self.channels[remote] = channel

        @channel.on("open")
        def on_open() -> None:
            self._changed.set()

        @channel.on("message")
        def on_message(message: str | bytes) -> None:
            if isinstance(message, str):
                header = json.loads(message)
                if "chat" in header:
                    self.chat.append((remote, header["chat"]))
                else:
                    self._incoming[remote] = {**header, "parts": []}
            else:
                incoming = self._incoming[remote]
                incoming["parts"].append(message)
                data = b"".join(incoming["parts"])
                if len(data) == incoming["size"]:
                    self.files[incoming["file"]] = data
            self._changed.set()

        if channel.readyState == "open":
            self._changed.set()
