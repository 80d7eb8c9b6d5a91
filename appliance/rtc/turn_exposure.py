"""Whether the box's TURN relay is a door into the practice: checked on the running box itself.

``sprechzimmer turn-config --check`` runs :func:`check_exposure`. It asks what coturn and the
kernel actually do, not what a file says: a real Allocate per relay instance, an IPv6 relay and a
TCP relay asked for (both must be refused), permissions asked for a LAN neighbour, loopback and
an internet address (refused unless the settings allow the internet), coturn looked for on the
box's IPv6 addresses (it must not listen there), and the firewall rule tried with a real datagram
from a relay port to another port of the box (it must not arrive, e.g. after a reload of nftables
dropped the rule). Every packet goes to the box's own addresses; no peer ever receives one (a
permission is only asked for, nothing is sent to it).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from aioice import stun
from aioice.turn import TCP_TRANSPORT, UDP_TRANSPORT, TurnClientTcpProtocol, TurnClientUdpProtocol

from appliance.config import TurnSettings, ephemeral_ports
from appliance.i18n import translate
from appliance.rtc.turn import (
    HEALTH_CHECK_BINDING,
    TurnCredentials,
    allowed_peers,
    check_turn,
    read_turn_secret,
    relay_instances,
)

_LOGGER = logging.getLogger(__name__)

#: RFC 6156 REQUESTED-ADDRESS-FAMILY (aioice does not know it): 0x02 asks for an IPv6 relay
REQUESTED_ADDRESS_FAMILY: Final = (0x0017, "REQUESTED-ADDRESS-FAMILY",
                                   lambda family: bytes([family, 0, 0, 0]),
                                   lambda data: data[0])
IPV6_FAMILY: Final = 0x02
#: peers no credential may reach, whatever the setup: loopback, link-local, the private ranges
FORBIDDEN_PEERS: Final = ("127.0.0.1", "169.254.1.1", "10.0.0.1", "172.16.0.1", "192.168.0.1")
#: stands for "any host on the internet" (TEST-NET-3: only a permission is asked, nothing sent)
INTERNET_PEER: Final = "203.0.113.200"
TIMEOUT_S: Final = 2.0
#: coturn on the box answers within milliseconds; silence this long means it does not listen
IPV6_TIMEOUT_S: Final = 1.0


@dataclass(frozen=True)
class Finding:
    """One check's outcome; ``key`` names its message in the catalogue."""

    ok: bool
    key: str
    values: dict[str, Any] = field(default_factory=dict)

    def message(self, lang: str = "de") -> str:
        """The outcome in plain words (German first)."""
        return translate(f"turn.exposure.{self.key}", lang, **self.values)


def register_address_family_attribute() -> None:
    """Teach aioice's STUN codec RFC 6156's attribute (an addition; nothing it knows changes)."""
    stun.ATTRIBUTES_BY_TYPE.setdefault(REQUESTED_ADDRESS_FAMILY[0], REQUESTED_ADDRESS_FAMILY)
    stun.ATTRIBUTES_BY_NAME.setdefault(REQUESTED_ADDRESS_FAMILY[1], REQUESTED_ADDRESS_FAMILY)


async def check_exposure(settings: TurnSettings, *, secret: str | None = None) -> list[Finding]:
    """Every check, for every relay instance of the box; exposed if any finding is not ok."""
    secret = secret or read_turn_secret(settings)
    findings = [_ephemeral_range(settings)]
    for address in relay_instances(settings):
        health = await check_turn(address, settings.port, secret, settings.realm,
                                  timeout_s=TIMEOUT_S)
        if not health.ok:
            findings.append(Finding(False, "relay_down", {"detail": health.message()}))
            continue
        findings += await _coturn(settings, address, secret)
        findings.append(await _firewall(settings, address))
    findings += await _ipv6_listeners(settings, secret)
    return findings


def _ephemeral_range(settings: TurnSettings) -> Finding:
    low, high = ephemeral_ports()
    values = {"low": low, "high": high, "min": settings.min_port, "max": settings.max_port}
    overlap = settings.min_port <= high and low <= settings.max_port
    return Finding(not overlap, "ephemeral_overlap" if overlap else "ephemeral_ok", values)


async def _coturn(settings: TurnSettings, address: str, secret: str) -> list[Finding]:
    """What coturn on ``address`` hands out and whom it lets its relay reach."""
    register_address_family_attribute()
    loop = asyncio.get_running_loop()
    server = (address, settings.port)
    credentials = TurnCredentials.issue(secret, HEALTH_CHECK_BINDING, ttl_s=60, now=time.time())
    login = {"username": credentials.username, "password": credentials.password,
             "lifetime": 60, "channel_refresh_time": 50}
    findings = []

    async def outcome(request: stun.Message, *, tcp: bool = False) -> str:
        """'refused' or 'granted', for one request on a fresh connection to coturn."""
        if tcp:
            link, client = await loop.create_connection(
                lambda: TurnClientTcpProtocol(server, **login), host=address, port=settings.port)
        else:
            link, client = await loop.create_datagram_endpoint(
                lambda: TurnClientUdpProtocol(server, **login), remote_addr=server)
        try:
            async with asyncio.timeout(TIMEOUT_S):
                await client.request_with_retry(request)
            return "granted"
        except stun.TransactionFailed:
            return "refused"
        finally:
            link.close()

    ipv6 = _allocate(UDP_TRANSPORT)
    ipv6.attributes["REQUESTED-ADDRESS-FAMILY"] = IPV6_FAMILY
    granted = await outcome(ipv6) == "granted"
    findings.append(Finding(not granted, "ipv6_relay" if granted else "ipv6_relay_refused",
                            {"address": address}))
    granted = await outcome(_allocate(TCP_TRANSPORT), tcp=True) == "granted"
    findings.append(Finding(not granted, "tcp_relay" if granted else "tcp_relay_refused",
                            {"address": address}))
    transport, client = await loop.create_datagram_endpoint(
        lambda: TurnClientUdpProtocol(server, **login), remote_addr=server)
    try:
        async with asyncio.timeout(TIMEOUT_S):
            await client.connect()
        forbidden = [*FORBIDDEN_PEERS, _neighbour(address, allowed_peers(settings))]
        if not settings.allow_internet_peers:
            forbidden.append(INTERNET_PEER)
        reached = [peer for peer in forbidden if await _permitted(client, peer)]
        findings.append(Finding(not reached, "peers_open" if reached else "peers_closed",
                                {"address": address, "peers": ", ".join(reached)}))
        own = await _permitted(client, address)
        findings.append(Finding(own, "relay_to_relay" if own else "relay_to_relay_denied",
                                {"address": address}))
        await client.delete()
    finally:
        transport.close()
    return findings


def _allocate(transport: int) -> stun.Message:
    request = stun.Message(message_method=stun.Method.ALLOCATE, message_class=stun.Class.REQUEST)
    request.attributes.update({"LIFETIME": 60, "REQUESTED-TRANSPORT": transport})
    return request


async def _permitted(client: TurnClientUdpProtocol, peer: str) -> bool:
    """Whether coturn grants a permission for ``peer`` (CreatePermission sends it nothing)."""
    request = stun.Message(message_method=stun.Method.CREATE_PERMISSION,
                           message_class=stun.Class.REQUEST)
    request.attributes["XOR-PEER-ADDRESS"] = (peer, 0)
    try:
        async with asyncio.timeout(TIMEOUT_S):
            await client.request_with_retry(request)
    except stun.TransactionFailed:
        return False
    return True


def _neighbour(address: str, box: tuple[str, ...]) -> str:
    """Another host of the box's LAN next to ``address``, none of the box's own addresses."""
    ip = ipaddress.ip_address(address)
    for step in range(1, 256):
        for candidate in (ip - step, ip + step):
            if str(candidate) not in box and 0 < int(candidate) & 0xFF < 255:
                return str(candidate)
    return str(ip)


async def _firewall(settings: TurnSettings, address: str) -> Finding:
    """A real datagram from a relay port of ``address`` to another port of the box: the rule
    must drop it, as it drops what coturn relays to the box's services."""
    values = {"address": address, "min": settings.min_port, "max": settings.max_port}
    loop = asyncio.get_running_loop()
    arrived = loop.create_future()

    class _Service(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            if not arrived.done():
                arrived.set_result(addr)

    try:
        service, _ = await loop.create_datagram_endpoint(_Service, local_addr=(address, 0))
    except OSError as exc:
        return Finding(False, "not_on_this_box", values | {"detail": exc.strerror or str(exc)})
    try:
        sender = _relay_port_socket(settings, address)
        if sender is None:
            return Finding(False, "relay_ports_taken", values)
        with sender:
            sender.sendto(b"sprechzimmer turn-config --check", service.get_extra_info("sockname"))
            try:
                async with asyncio.timeout(0.5):
                    await arrived
            except TimeoutError:
                return Finding(True, "rule_active", values)
        return Finding(False, "rule_missing", values)
    finally:
        service.close()


def _relay_port_socket(settings: TurnSettings, address: str) -> socket.socket | None:
    """A UDP socket on ``address`` and a free port of the relay range (coturn's are taken)."""
    ports = random.sample(range(settings.min_port, settings.max_port + 1),
                          min(50, settings.max_port - settings.min_port + 1))
    for port in ports:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((address, port))
        except OSError:
            sock.close()
            continue
        return sock
    return None


def box_ipv6_addresses(path: Path = Path("/proc/net/if_inet6")) -> list[str]:
    """The box's global and unique-local IPv6 addresses (what a relay could be opened on)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        raw, _, _, scope, *_ = line.split()
        if int(scope, 16) == 0:  # global scope: global unicast and ULA alike
            found.append(str(ipaddress.IPv6Address(bytes.fromhex(raw))))
    return found


async def _ipv6_listeners(settings: TurnSettings, secret: str) -> list[Finding]:
    """coturn must answer on none of the box's IPv6 addresses (it relays over IPv4 only)."""
    findings = []
    for address in box_ipv6_addresses():
        health = await check_turn(address, settings.port, secret, settings.realm,
                                  timeout_s=IPV6_TIMEOUT_S)
        answering = health.state != "unreachable"
        findings.append(Finding(not answering, "listens_on_ipv6" if answering
                                else "silent_on_ipv6", {"address": address}))
    return findings
