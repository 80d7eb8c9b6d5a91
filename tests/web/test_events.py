"""The live event streams: keep-alives per stream, whatever else the practice publishes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestClient

from appliance.web.events import EventHub, stream_events


async def test_a_quiet_stream_gets_keep_alives_in_a_busy_practice(
    aiohttp_client: Callable[..., Awaitable[TestClient]],
) -> None:
    """Issue 8 (soak): a patient's stream whose own appointment stays quiet gets its keep-alive
    although events of other appointments pass by all the time (they reset a shared timer
    before, and a stream stayed silent for 226 s in a busy practice)."""
    hub = EventHub()

    async def events(request: web.Request) -> web.StreamResponse:
        return await stream_events(request, hub, lambda e: e["appointment"] == "mine",
                                   lambda e: e, heartbeat_s=0.2)

    app = web.Application()
    app.router.add_get("/events", events)
    client = await aiohttp_client(app)
    response = await client.get("/events")
    assert await response.content.readline() == b"retry: 2000\n"

    async def busy_practice() -> None:
        while True:  # another appointment changes every 20 ms
            hub.publish({"type": "appointment", "appointment": "other"})
            await asyncio.sleep(0.02)

    others = asyncio.ensure_future(busy_practice())
    try:
        async with asyncio.timeout(5):
            while (line := await response.content.readline()) != b": keep-alive\n":
                assert b"other" not in line
    finally:
        others.cancel()
        response.close()
