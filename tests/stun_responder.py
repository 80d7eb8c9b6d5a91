"""A real STUN server for the uplink tests: it answers binding requests with the asker's address
(XOR-MAPPED-ADDRESS) or a fixed one (an answer that came back through another line), and can
fall silent — for everyone (a dead line), towards named source addresses (one of two lines), or
for every other request (a line losing half its packets).

In this process: ``async with StunResponder() as stun`` (or ``stun_responder()``); in a
namespace as a program: ``python -m tests.stun_responder HOST [HOST …]`` answers on port 3478 of
each until killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aioice import stun


@dataclass
class StunResponder(asyncio.DatagramProtocol):
    """Binding responses on ``host:port`` (port 0: a free one)."""

    host: str = "127.0.0.1"
    port: int = 0
    #: answer nothing (a dead line)
    silent: bool = False
    #: answer nothing to these source addresses (that line died)
    silenced: set[str] = field(default_factory=set)
    #: answer only every other request
    every_other: bool = False
    #: report this address instead of the asker's
    mapped: str | None = None
    #: binding requests received
    requests: int = 0
    transport: asyncio.DatagramTransport | None = field(default=None, repr=False)

    async def __aenter__(self) -> StunResponder:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=(self.host, self.port))
        self.port = self.transport.get_extra_info("sockname")[1]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.transport is not None:
            self.transport.close()

    @property
    def target(self) -> str:
        """``host:port`` as ``[[turn.uplinks]] stun_target`` takes it."""
        return f"{self.host}:{self.port}"

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            request = stun.parse_message(data)
        except ValueError:
            return
        if request.message_method is not stun.Method.BINDING:
            return
        self.requests += 1
        if self.silent or addr[0] in self.silenced or (
                self.every_other and self.requests % 2 == 0):
            return
        response = stun.Message(message_method=stun.Method.BINDING,
                                message_class=stun.Class.RESPONSE,
                                transaction_id=request.transaction_id)
        response.attributes["XOR-MAPPED-ADDRESS"] = (self.mapped or addr[0], addr[1])
        assert self.transport is not None
        self.transport.sendto(bytes(response), addr)


@contextlib.asynccontextmanager
async def stun_responder() -> AsyncIterator[StunResponder]:
    """A responder on 127.0.0.1 and a free port, for the duration of the block."""
    async with StunResponder() as responder:
        yield responder


async def _serve(hosts: list[str]) -> None:
    responders = [StunResponder(host, 3478) for host in hosts]
    for responder in responders:
        await responder.__aenter__()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_serve(sys.argv[1:]))
