"""A tiny STUN server on loopback for the uplink monitor's tests: it answers binding requests
with the asker's address (XOR-MAPPED-ADDRESS), and keeps silent towards the addresses a test
names (a line that just died)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aioice import stun


class StunResponder(asyncio.DatagramProtocol):
    """Answers every binding request except those from ``silenced`` source addresses."""

    def __init__(self) -> None:
        self.silenced: set[str] = set()
        self.transport: asyncio.DatagramTransport | None = None
        self.asked = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            request = stun.parse_message(data)
        except ValueError:
            return
        self.asked += 1
        if addr[0] in self.silenced or request.message_method is not stun.Method.BINDING:
            return
        answer = stun.Message(message_method=stun.Method.BINDING,
                              message_class=stun.Class.RESPONSE,
                              transaction_id=request.transaction_id)
        answer.attributes["XOR-MAPPED-ADDRESS"] = addr
        assert self.transport is not None
        self.transport.sendto(bytes(answer), addr)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])


@contextlib.asynccontextmanager
async def stun_responder() -> AsyncIterator[StunResponder]:
    """A responder on 127.0.0.1 and a free port, for the duration of the block."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        StunResponder, local_addr=("127.0.0.1", 0))
    try:
        yield protocol
    finally:
        transport.close()
