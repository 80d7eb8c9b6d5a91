"""Live updates for open pages: appointment changes fanned out to the dashboard and patients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Final

import msgspec
from aiohttp import web

HEARTBEAT_S: Final = 15.0
QUEUE_LIMIT: Final = 256


class EventHub:
    """Queues of subscribed streams; publishing never blocks the caller."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[dict[str, Any] | None]] = set()

    def publish(self, event: dict[str, Any]) -> None:
        """Hand ``event`` to every subscriber; a subscriber that does not keep up is dropped."""
        for queue in list(self._queues):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self._queues.discard(queue)
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(None)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[dict[str, Any] | None]]:
        """A queue receiving every event until the context ends."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(QUEUE_LIMIT)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    def close(self) -> None:
        """End every open stream (on shutdown)."""
        for queue in list(self._queues):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        self._queues.clear()


async def stream_events(  # noqa: ANN001 - plain callables
    request: web.Request, hub: EventHub, accept, render, still_allowed=None, *,
    heartbeat_s: float = HEARTBEAT_S,
) -> web.StreamResponse:
    """Serve ``text/event-stream``: events that ``accept`` keeps, rendered by ``render``.

    ``still_allowed()`` is asked before every event and heartbeat: a stream outlives neither
    its session (logout, a removed member) nor its link (a reissue). A keep-alive goes out when
    *this* stream has written nothing for ``heartbeat_s``, however many events of others pass
    by (a patient's stream in a busy practice stayed silent for minutes otherwise, long enough
    for a mobile NAT or a proxy to cut it).
    """
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-store",
        "X-Accel-Buffering": "no",
    })
    await response.prepare(request)
    # a closed tab or a lost connection shows up as a failed write: the stream simply ends
    loop = asyncio.get_running_loop()
    with contextlib.suppress(ConnectionResetError):
        await response.write(b"retry: 2000\n\n")
        keep_alive_at = loop.time() + heartbeat_s
        async with hub.subscribe() as queue:
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(),
                                                   max(0.0, keep_alive_at - loop.time()))
                except TimeoutError:
                    event = {"type": "keep-alive"}
                if event is None or (still_allowed is not None and not still_allowed()):
                    break
                if event["type"] == "keep-alive":
                    await response.write(b": keep-alive\n\n")
                    keep_alive_at = loop.time() + heartbeat_s
                    continue
                if not accept(event):
                    continue
                payload = render(event)
                if payload is None:
                    continue
                await response.write(b"event: %s\ndata: %s\n\n" % (
                    event["type"].encode(), msgspec.json.encode(payload)))
                keep_alive_at = loop.time() + heartbeat_s
    return response
