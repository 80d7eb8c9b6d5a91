"""The adapter's per-socket writer: queued frames leave whole and in order; nothing stays corked."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

from aiohttp import WSMsgType, web

from appliance.web.sockets import _Connection

BATCH = 200


def _corked(request: web.Request) -> int | None:
    """The socket's TCP_CORK setting (None where the system has none)."""
    if not hasattr(socket, "TCP_CORK") or request.transport is None:
        return None
    sock = request.transport.get_extra_info("socket")
    return int(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK))


async def test_a_batch_of_frames_arrives_whole_and_in_order(aiohttp_client: Any) -> None:
    """Frames queued at once (as the hub relays a read's worth) all arrive, in order, intact;
    afterwards the socket holds nothing back, and a single frame goes out by itself."""

    corks: list[tuple[bool, bool]] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        connection = _Connection(ws, request.transport)
        cork = connection._cork

        def recorded(on: bool) -> bool:
            done = cork(on)
            corks.append((on, done))
            return done

        connection._cork = recorded  # type: ignore[method-assign]
        for n in range(BATCH):  # one batch: queued before the writer runs
            connection.send(json.dumps({"n": n, "pad": "ü" * (n % 7) * 50}))
        message = await ws.receive()  # the client has them all
        assert message.type is WSMsgType.TEXT and message.data == "all"
        connection.send(json.dumps({"corked": _corked(request)}))
        await ws.receive()
        await connection.async_finish()
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    client = await aiohttp_client(app)
    ws = await client.ws_connect("/ws")
    received = [json.loads((await ws.receive(timeout=10)).data) for _ in range(BATCH)]
    assert [frame["n"] for frame in received] == list(range(BATCH))
    assert all(frame["pad"] == "ü" * (frame["n"] % 7) * 50 for frame in received)
    await ws.send_str("all")
    after = json.loads((await ws.receive(timeout=10)).data)
    assert after["corked"] in (0, None)
    if hasattr(socket, "TCP_CORK"):  # the batch went out corked, and was pushed out
        assert corks[:2] == [(True, True), (False, True)]
    assert corks.count((True, True)) == corks.count((False, True))
    await ws.send_str("bye")
    assert (await ws.receive(timeout=10)).type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
    await ws.close()


async def test_no_tcp_no_cork() -> None:
    """On a socket that is not TCP the writer simply writes (the option is turned off)."""
    left, right = socket.socketpair(socket.AF_UNIX)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, left)
    try:
        connection = _Connection.__new__(_Connection)
        connection._cork_socket = transport.get_extra_info("socket")
        assert connection._cork(True) is False
        assert connection._cork(False) is False
    finally:
        transport.close()
        right.close()
