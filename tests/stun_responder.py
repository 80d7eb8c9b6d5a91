"""A real STUN server for the uplink tests: answers binding requests on a UDP address, can be
silenced (a dead line) or made to drop every other request (a flapping line), and can report a
fixed mapped address (an answer that came back through another line).

Run in this process (``async with StunResponder(host) as stun``) or in a namespace as a program:
``python -m tests.stun_responder HOST [HOST …]`` answers on port 3478 of each until killed.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from typing import Any

from aioice import stun


@dataclass
class StunResponder(asyncio.DatagramProtocol):
    """Binding responses with XOR-MAPPED-ADDRESS: the sender's address, or ``mapped``."""

    host: str = "127.0.0.1"
    port: int = 0
    #: answer nothing (a dead line)
    silent: bool = False
    #: answer only every other request (a line losing half its packets)
    every_other: bool = False
    #: report this address instead of the sender's
    mapped: str | None = None
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
        self.requests += 1
        if self.silent or (self.every_other and self.requests % 2 == 0):
            return
        response = stun.Message(message_method=stun.Method.BINDING,
                                message_class=stun.Class.RESPONSE,
                                transaction_id=request.transaction_id)
        response.attributes["XOR-MAPPED-ADDRESS"] = (self.mapped or addr[0], addr[1])
        assert self.transport is not None
        self.transport.sendto(bytes(response), addr)


async def _serve(hosts: list[str]) -> None:
    responders = [StunResponder(host, 3478) for host in hosts]
    for responder in responders:
        await responder.__aenter__()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_serve(sys.argv[1:]))
