"""Helpers for the TURN tests: a real coturn from our configuration, and relay-only aiortc peers.

Plain helpers rather than pytest fixtures, so ``tests/rtc/conftest.py`` stays free for others;
each test module wraps them in the fixtures it needs. The namespace tests run this module as a
program inside a namespace (``python -m tests.rtc.turn_fixtures COMMAND …``): ``offer``/``answer``
is one peer of a call that trades its SDP as JSON lines over standard input and output, ``listen``
stands in for LAN services, ``probe`` is a credential holder trying to reach them through the
relay, ``check`` runs :func:`check_turn` from there.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from aioice import stun
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)

from appliance.config import TurnSettings, TurnUplink
from appliance.rtc.turn import coturn_config, relay_instances

SECRET = "praxis-test-secret-0123456789abcdef"
REALM = "test.local"
START_TIMEOUT_S = 10.0
CALL_TIMEOUT_S = 20.0


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def loopback_settings(port: int, **changes: Any) -> TurnSettings:
    """TURN settings for a coturn on 127.0.0.1: box LAN address and "public host" are loopback."""
    values: dict[str, Any] = {
        "enabled": True, "secret": SECRET, "realm": REALM, "lan_address": "127.0.0.1",
        "uplinks": (TurnUplink(public_host="127.0.0.1", public_address="127.0.0.1",
                               lan_address="127.0.0.1"),),
        "port": port, "min_port": 61000, "max_port": 61999,
    } | changes
    return TurnSettings(**values)


@dataclass
class Coturn:
    """A running ``turnserver`` and where it writes its log."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def log_text(self) -> str:
        """What coturn logged so far."""
        return self.log.read_text("utf-8", errors="replace") if self.log.exists() else ""


def _udp_bound(pid: int, port: int) -> bool:
    # /proc/<pid>/net/udp shows the sockets of the process's own network namespace
    try:
        lines = Path(f"/proc/{pid}/net/udp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(line.split()[1].endswith(f":{port:04X}") for line in lines)


@contextmanager
def running_coturn(settings: TurnSettings, directory: Path, *, extra: Sequence[str] = (),
                   netns: str | None = None, address: str | None = None) -> Iterator[Coturn]:
    """Start coturn with ``coturn_config(settings, address)`` plus ``extra`` lines; stop it
    afterwards. ``address`` picks the relay instance when the box has several."""
    name = f"turnserver-{address}" if address else "turnserver"
    log = directory / f"{name}.log"
    config = directory / f"{name}.conf"
    config.touch(mode=0o600)
    config.write_text(coturn_config(settings, address) + "\n".join(
        [*extra, f"pidfile={directory / name}.pid", f"log-file={log}", "simple-log",
         "no-stdout-log", f"userdb={directory / name}.db", ""]), "utf-8")
    command = ["turnserver", "-c", str(config)]
    if netns:
        command = ["ip", "netns", "exec", netns, *command]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    coturn = Coturn(process=process, port=settings.port, log=log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (_udp_bound(process.pid, settings.port)
                   and "Total General servers" in coturn.log_text()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("coturn did not start:\n" + coturn.log_text()[-3000:])
            time.sleep(0.05)
        yield coturn
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def running_relays(settings: TurnSettings, directory: Path, *, netns: str | None = None,
                   extra: Sequence[str] = ()) -> Iterator[list[Coturn]]:
    """Every relay instance of the box (one coturn per address, ``relay_instances``)."""
    with ExitStack() as stack:
        yield [stack.enter_context(running_coturn(settings, directory, netns=netns,
                                                  address=address, extra=extra))
               for address in relay_instances(settings)]


# --- relay-only aiortc peers -----------------------------------------------------------------


class _SmallPattern(VideoStreamTrack):
    """A 160×120 grey picture: real VP8 frames at little CPU cost."""

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame(width=160, height=120, format="yuv420p")
        for plane in frame.planes:
            plane.update(bytes([128]) * plane.buffer_size)
        frame.pts, frame.time_base = pts, Fraction(time_base)
        return frame


def _configuration(ice_servers: list[dict[str, Any]], relay_only: bool = True
                   ) -> RTCConfiguration:
    # TESTING.md: always explicit servers (the default STUN hangs offline), the enum for relay
    policy = RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL
    return RTCConfiguration(iceServers=[RTCIceServer(**server) for server in ice_servers],
                            iceTransportPolicy=policy)


@dataclass
class CallResult:
    """What one side of a relay-only call saw, in seconds from its own start."""

    connected_s: float
    first_frame_s: float
    echo: str
    candidate_types: list[str]
    selected: str
    relayed: list[str]


async def _run_peer(pc: RTCPeerConnection, started: float, *, offerer: bool,
                    exchange: Callable[[dict[str, str]], Awaitable[dict[str, str]]],
                    ) -> CallResult:
    connected = asyncio.get_running_loop().create_future()
    frame_at = asyncio.get_running_loop().create_future()
    echo = asyncio.get_running_loop().create_future()

    @pc.on("connectionstatechange")
    def _state() -> None:
        if pc.connectionState == "connected" and not connected.done():
            connected.set_result(time.monotonic() - started)
        elif pc.connectionState == "failed" and not connected.done():
            connected.set_exception(ConnectionError("ICE failed"))

    @pc.on("track")
    def _track(track: Any) -> None:
        async def first_frame() -> None:
            await track.recv()
            if not frame_at.done():
                frame_at.set_result(time.monotonic() - started)
        asyncio.ensure_future(first_frame())

    def _channel(channel: Any) -> None:
        @channel.on("message")
        def _message(message: str) -> None:
            if message.startswith("ping"):
                channel.send("pong" + message[4:])
            if not echo.done():
                echo.set_result(message)

    pc.addTrack(_SmallPattern())
    if offerer:
        channel = pc.createDataChannel("probe")
        _channel(channel)

        @channel.on("open")
        def _open() -> None:
            channel.send("ping über das Relay")

        await pc.setLocalDescription(await pc.createOffer())
        answer = await exchange(_sdp(pc))
        await pc.setRemoteDescription(RTCSessionDescription(**answer))
    else:
        pc.on("datachannel", _channel)
        offer = await exchange({})
        await pc.setRemoteDescription(RTCSessionDescription(**offer))
        await pc.setLocalDescription(await pc.createAnswer())
        await exchange(_sdp(pc))
    stage = "connected"
    try:
        async with asyncio.timeout(CALL_TIMEOUT_S):
            connected_s = await connected
            stage = "first frame"
            first_frame_s = await frame_at
            stage = "data channel echo"
            message = await echo
    except TimeoutError:
        raise TimeoutError(f"no {stage} within {CALL_TIMEOUT_S} s") from None
    candidates = [line.split() for line in pc.localDescription.sdp.splitlines()
                  if line.startswith("a=candidate:")]
    return CallResult(connected_s=connected_s, first_frame_s=first_frame_s, echo=message,
                      candidate_types=sorted({c[7] for c in candidates}),
                      selected=_selected_pair(pc),
                      relayed=sorted({c[4] for c in candidates if c[7] == "relay"}))


def _selected_pair(pc: RTCPeerConnection) -> str:
    """'<local type>-<remote type>' of the pair ICE nominated (aioice's own bookkeeping)."""
    ice = pc.getTransceivers()[0].receiver.transport.transport
    pair = next(iter(ice._connection._nominated.values()))  # private, fine in a test
    return f"{pair.local_candidate.type}-{pair.remote_candidate.type}"


def _sdp(pc: RTCPeerConnection) -> dict[str, str]:
    return {"type": pc.localDescription.type, "sdp": pc.localDescription.sdp}


async def relay_only_call(offer_servers: list[dict[str, Any]],
                          answer_servers: list[dict[str, Any]]) -> tuple[CallResult, CallResult]:
    """Two relay-only peers in this process: (offerer's view, answerer's view)."""
    to_answerer: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    to_offerer: asyncio.Queue[dict[str, str]] = asyncio.Queue()

    async def offer_exchange(sdp: dict[str, str]) -> dict[str, str]:
        await to_answerer.put(sdp)
        return await to_offerer.get()

    async def answer_exchange(sdp: dict[str, str]) -> dict[str, str]:
        if sdp:
            await to_offerer.put(sdp)
            return {}
        return await to_answerer.get()

    offerer = RTCPeerConnection(_configuration(offer_servers))
    answerer = RTCPeerConnection(_configuration(answer_servers))
    started = time.monotonic()
    try:
        results = await asyncio.gather(
            _run_peer(offerer, started, offerer=True, exchange=offer_exchange),
            _run_peer(answerer, started, offerer=False, exchange=answer_exchange),
        )
        return results[0], results[1]
    finally:
        await offerer.close()
        await answerer.close()


# --- the practice LAN of TURN.md in network namespaces ----------------------------------------

#: TURN.md's lab addresses; they exist only inside the namespaces a test creates
WAN_PUBLIC, PATIENT = "203.0.113.1", "203.0.113.50"
ROUTER_LAN, BOX, DOCTOR, OTHER = "192.168.50.1", "192.168.50.10", "192.168.50.20", "192.168.50.30"
#: the second line (UPLINKS.md): its router, and the box's own LAN address for it
WAN_PUBLIC_B, PATIENT_B = "192.0.2.1", "192.0.2.50"
ROUTER_LAN_B, BOX_B = "192.168.50.2", "192.168.50.11"
#: a host on the internet that is no peer of any call
INTERNET_HOST = "203.0.113.99"
#: the LAN's IPv6, as a FritzBox hands it out: a global prefix (SLAAC) and a ULA
LAN6 = {"global": "2001:db8:50::", "ula": "fd00:50::"}
HOST6 = {"router": "1", "box": "10", "doctor": "20", "other": "30"}
_NETNS_PREFIX = "szturn"
_RUNS = itertools.count()


def lan6(host: str, kind: str = "global") -> str:
    """The IPv6 address of a LAN host (``box``, ``doctor``, ``other``, ``router``)."""
    return LAN6[kind] + HOST6[host]


def router_nft(public: str, box: str) -> str:
    """A practice router: NAT to the internet, UDP/TCP 3478 forwarded to ``box``, no hairpin."""
    return f"""
table ip nat {{
\tchain prerouting {{
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\tiifname "wan" meta l4proto {{ udp, tcp }} th dport 3478 dnat to {box}
\t}}
\tchain postrouting {{
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\toifname "wan" masquerade
\t}}
}}
table inet filter {{
\tchain forward {{
\t\ttype filter hook forward priority filter; policy drop;
\t\tct state established,related accept
\t\tiifname {{ "br0", "eth0" }} oifname "wan" accept
\t\tiifname "wan" ct status dnat accept
\t}}
\tchain input {{
\t\ttype filter hook input priority filter; policy accept;
\t\tiifname {{ "br0", "eth0" }} ip daddr {public} counter drop comment "no hairpin NAT"
\t}}
}}
"""


ROUTER_NFT = router_nft(WAN_PUBLIC, BOX)


def run_in(netns: str | None, *command: str, stdin: str | None = None,
           timeout: float = 30) -> str:
    """Run ``command`` (in ``netns``); its output, or an error with what it printed."""
    full = ["ip", "netns", "exec", netns, *command] if netns else list(command)
    result = subprocess.run(full, input=stdin, capture_output=True, text=True,
                            timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(full)}: {result.stderr.strip()}")
    return result.stdout


def remove_stale_namespaces(prefix: str = "szturn") -> None:
    """Namespaces named ``<prefix><pid>-…`` that an earlier, killed test run left behind (their
    pid is gone)."""
    for path in Path("/run/netns").glob(f"{prefix}*-*"):
        pid = path.name[len(prefix):].partition("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            subprocess.run(["ip", "netns", "del", path.name], capture_output=True, timeout=30)


@contextmanager
def practice_lan(*, lines: int = 1, ipv6: bool = False) -> Iterator[dict[str, str]]:
    """TURN.md's topology: inet — router (NAT, no hairpin) — LAN bridge with box, doctor, other.

    ``lines=2`` adds UPLINKS.md's second line: router ``router_b`` (WAN ``WAN_PUBLIC_B``, LAN
    ``ROUTER_LAN_B``) forwarding to the box's second LAN address ``BOX_B``, which the box answers
    from by source routing. ``ipv6`` gives the LAN global and ULA IPv6 addresses (``lan6``), as a
    FritzBox does by default. The internet also has ``INTERNET_HOST``, no peer of any call.
    Yields the namespace name of each host. Everything is removed afterwards, also on failure.
    """
    remove_stale_namespaces(_NETNS_PREFIX)
    run = next(_RUNS)
    hosts = ["inet", "router", "box", "doctor", "other"] + (["router_b"] if lines > 1 else [])
    names = {host: f"{_NETNS_PREFIX}{os.getpid()}-{run}-{host}" for host in hosts}
    created: list[str] = []

    def ip(host: str, *args: str) -> None:
        run_in(None, "ip", "-n", names[host], *args)

    try:
        for netns in names.values():
            run_in(None, "ip", "netns", "add", netns)
            created.append(netns)
            # no duplicate address detection: a link-local address turning from tentative to
            # valid a second after its link comes up is a network change to a Chromium already
            # running there, which aborts its page loads with ERR_NETWORK_CHANGED
            run_in(netns, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0",
                   "net.ipv6.conf.default.accept_dad=0")
            run_in(None, "ip", "-n", netns, "link", "set", "lo", "up")
        router, inet = names["router"], names["inet"]
        run_in(None, "ip", "link", "add", "wan", "netns", router, "type", "veth",
               "peer", "name", "eth0", "netns", inet)
        ip("router", "link", "add", "br0", "type", "bridge")
        ip("inet", "addr", "add", f"{PATIENT}/24", "dev", "eth0")
        ip("inet", "addr", "add", f"{INTERNET_HOST}/24", "dev", "eth0")
        ip("router", "addr", "add", f"{WAN_PUBLIC}/24", "dev", "wan")
        ip("router", "addr", "add", f"{ROUTER_LAN}/24", "dev", "br0")
        for host, link in (("inet", "eth0"), ("router", "wan"), ("router", "br0")):
            ip(host, "link", "set", link, "up")
        for host, address in (("box", BOX), ("doctor", DOCTOR), ("other", OTHER)):
            port = f"lan-{host}"
            run_in(None, "ip", "link", "add", port, "netns", router, "type", "veth",
                   "peer", "name", "eth0", "netns", names[host])
            ip("router", "link", "set", port, "master", "br0", "up")
            ip(host, "addr", "add", f"{address}/24", "dev", "eth0")
            ip(host, "link", "set", "eth0", "up")
            ip(host, "route", "add", "default", "via", ROUTER_LAN)
        if ipv6:
            for host, device in (("router", "br0"), ("box", "eth0"), ("doctor", "eth0"),
                                 ("other", "eth0")):
                for kind in LAN6:
                    ip(host, "addr", "add", f"{lan6(host, kind)}/64", "dev", device, "nodad")
        if lines > 1:
            _second_line(names, ip)
        run_in(router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        # the LAN bridge is a plain switch: with br_netfilter (built into some kernels) bridged
        # frames would otherwise meet the router's forward policy
        subprocess.run(["ip", "netns", "exec", router, "sysctl", "-q", "-w",
                        "net.bridge.bridge-nf-call-iptables=0"], capture_output=True, timeout=30)
        run_in(router, "nft", "-f", "-", stdin=ROUTER_NFT)
        yield names
    finally:
        for netns in reversed(created):
            subprocess.run(["ip", "netns", "del", netns], capture_output=True, timeout=30)


def _second_line(names: dict[str, str], ip: Callable[..., None]) -> None:
    """UPLINKS.md's line B: its own router on the LAN, the box's own address for it."""
    router_b = names["router_b"]
    run_in(None, "ip", "link", "add", "wan", "netns", router_b, "type", "veth",
           "peer", "name", "eth1", "netns", names["inet"])
    run_in(None, "ip", "link", "add", "lan-router_b", "netns", names["router"], "type", "veth",
           "peer", "name", "eth0", "netns", router_b)
    ip("router", "link", "set", "lan-router_b", "master", "br0", "up")
    ip("inet", "addr", "add", f"{PATIENT_B}/24", "dev", "eth1")
    ip("router_b", "addr", "add", f"{WAN_PUBLIC_B}/24", "dev", "wan")
    ip("router_b", "addr", "add", f"{ROUTER_LAN_B}/24", "dev", "eth0")
    for host, link in (("inet", "eth1"), ("router_b", "wan"), ("router_b", "eth0")):
        ip(host, "link", "set", link, "up")
    run_in(router_b, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
    run_in(router_b, "nft", "-f", "-", stdin=router_nft(WAN_PUBLIC_B, BOX_B))
    # the box answers what came in by line B through line B (UPLINKS.md: source routing)
    ip("box", "addr", "add", f"{BOX_B}/24", "dev", "eth0")
    ip("box", "route", "add", "192.168.50.0/24", "dev", "eth0", "table", "102")
    ip("box", "route", "add", "default", "via", ROUTER_LAN_B, "table", "102")
    ip("box", "rule", "add", "from", BOX_B, "table", "102")


#: where ``python -m tests.rtc.turn_fixtures`` finds the package
REPO = Path(__file__).resolve().parents[2]


def program(netns: str, *args: str) -> list[str]:
    """The command line that runs this module as a program (peer, listen, probe, check) in
    ``netns``; start it with ``cwd=REPO``."""
    return ["ip", "netns", "exec", netns, sys.executable, "-u", "-m", "tests.rtc.turn_fixtures",
            *args]


async def _listen_main(endpoints: list[str]) -> None:
    """Stand-ins for LAN services: UDP (answering) and TCP on each ``addr:port``; report hits."""
    loop = asyncio.get_running_loop()

    class _Udp(asyncio.DatagramProtocol):
        def __init__(self, name: str) -> None:
            self.name = name

        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            print(json.dumps({"udp": self.name, "from": f"{addr[0]}:{addr[1]}"}), flush=True)
            self.transport.sendto(data, addr)

    def _tcp(name: str) -> Callable[[Any, Any], None]:
        def accepted(reader: Any, writer: Any) -> None:
            peer = writer.get_extra_info("peername")
            print(json.dumps({"tcp": name, "from": f"{peer[0]}:{peer[1]}"}), flush=True)
            writer.close()
        return accepted

    for endpoint in endpoints:
        host, _, port = endpoint.rpartition(":")
        await loop.create_datagram_endpoint(lambda e=endpoint: _Udp(e),
                                            local_addr=(host, int(port)))
        await asyncio.start_server(_tcp(endpoint), host, int(port))
    print("ready", flush=True)
    await asyncio.Event().wait()


#: RFC 6156 REQUESTED-ADDRESS-FAMILY, which aioice does not know: asks for an IPv6 relay
_FAMILY_ATTRIBUTE = (0x0017, "REQUESTED-ADDRESS-FAMILY", lambda family: bytes([family, 0, 0, 0]),
                     lambda data: data[0])
_IPV6_FAMILY = 0x02


async def _probe_main(server: str, username: str, password: str, targets: list[str],
                      transport: str = "udp") -> None:
    """A credential holder's attack: relay a STUN request to each target, see what answers.

    ``transport`` is how the probe talks to coturn: ``udp``, or ``tcp`` (UDP relay over a TCP
    connection to coturn). Prints one JSON object: per target "forbidden <code>" (coturn refused
    the peer), "silent" (sent, nothing came back) or "answered"; plus the relay <-> relay control,
    the relayed address coturn announces, what an IPv6 relay request (RFC 6156) gets, and
    whether coturn hands out a TCP relay (RFC 6062).
    """
    from aioice.turn import TCP_TRANSPORT, TurnClientTcpProtocol, TurnClientUdpProtocol

    stun.ATTRIBUTES_BY_TYPE[_FAMILY_ATTRIBUTE[0]] = _FAMILY_ATTRIBUTE
    stun.ATTRIBUTES_BY_NAME[_FAMILY_ATTRIBUTE[1]] = _FAMILY_ATTRIBUTE
    loop = asyncio.get_running_loop()
    host, _, port = server.rpartition(":")
    address = (host, int(port))

    class _Inbox(asyncio.DatagramProtocol):
        def __init__(self) -> None:
            self.sources: list[str] = []

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.sources.append(f"{addr[0]}:{addr[1]}")

    async def client() -> tuple[Any, Any]:
        if transport == "tcp":
            return await loop.create_connection(
                lambda: TurnClientTcpProtocol(address, username=username, password=password,
                                              lifetime=600, channel_refresh_time=500),
                host=address[0], port=address[1])
        return await loop.create_datagram_endpoint(
            lambda: TurnClientUdpProtocol(address, username=username, password=password,
                                          lifetime=600, channel_refresh_time=500),
            remote_addr=address)

    async def allocation() -> tuple[Any, Any, tuple[str, int], _Inbox]:
        link, protocol = await client()
        relayed = await protocol.connect()
        protocol.receiver = inbox = _Inbox()
        return link, protocol, relayed, inbox

    async def refused(request: stun.Message) -> str:
        link, protocol = await client()
        try:
            response, _ = await protocol.request_with_retry(request)
            return f"allocated {response.attributes.get('XOR-RELAYED-ADDRESS')}"
        except stun.TransactionFailed as exc:
            return f"refused {exc.response.attributes['ERROR-CODE'][0]}"
        finally:
            link.close()

    request = bytes(stun.Message(message_method=stun.Method.BINDING,
                                 message_class=stun.Class.REQUEST))
    # control: another allocation of the same credential is reachable (relay <-> relay)
    first, second = await allocation(), await allocation()
    await second[1].send_data(b"permission", first[2])
    await first[1].send_data(request, second[2])
    # a fresh allocation per target: coturn maps PUBLIC:port to LAN:port, and a second channel
    # to the same mapped address would be refused (400) and hide what the first one reached
    results: dict[str, Any] = {"relayed": f"{first[2][0]}:{first[2][1]}"}
    probes = []
    for target in targets:
        probe = await allocation()
        probes.append(probe)
        peer_host, _, peer_port = target.rpartition(":")
        try:
            await probe[1].send_data(request, (peer_host, int(peer_port)))
        except stun.TransactionFailed as exc:
            results[target] = f"forbidden {exc.response.error_code}"
        else:
            results[target] = "sent"
    await asyncio.sleep(1.0)
    for target, probe in zip(targets, probes, strict=True):
        if results[target] == "sent":
            results[target] = "answered" if probe[3].sources else "silent"
    results["relay_to_relay"] = f"{first[2][0]}:{first[2][1]}" in second[3].sources
    ipv6 = stun.Message(message_method=stun.Method.ALLOCATE, message_class=stun.Class.REQUEST)
    ipv6.attributes.update({"LIFETIME": 600, "REQUESTED-TRANSPORT": 0x11000000,
                            "REQUESTED-ADDRESS-FAMILY": _IPV6_FAMILY})
    results["ipv6_relay"] = await refused(ipv6)
    tcp = stun.Message(message_method=stun.Method.ALLOCATE, message_class=stun.Class.REQUEST)
    tcp.attributes["REQUESTED-TRANSPORT"] = TCP_TRANSPORT
    tcp_link, tcp_client = await loop.create_connection(
        lambda: TurnClientTcpProtocol(address, username=username, password=password,
                                      lifetime=600, channel_refresh_time=500),
        host=address[0], port=address[1])
    try:
        await tcp_client.request_with_retry(tcp)
        results["tcp_relay"] = "allocated"
    except stun.TransactionFailed as exc:
        results["tcp_relay"] = f"refused {exc.response.error_code}"
    tcp_link.close()
    for link, protocol, _, _ in (first, second, *probes):
        await protocol.delete()
        link.close()
    print(json.dumps(results), flush=True)


async def _check_main(host: str, port: str, secret: str, realm: str) -> None:
    from appliance.rtc.turn import check_turn

    health = await check_turn(host, int(port), secret, realm, timeout_s=1.0)
    print(json.dumps({"state": str(health.state), "message": health.message()}), flush=True)


async def _peer_main(role: str, ice_servers: list[dict[str, Any]], *, relay_only: bool) -> None:
    """One peer whose SDP goes out on stdout and comes in on stdin, one JSON line each."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def exchange(sdp: dict[str, str]) -> dict[str, str]:
        if sdp:
            print(json.dumps(sdp), flush=True)
            if role == "answer":
                return {}
        return json.loads(await reader.readline())

    pc = RTCPeerConnection(_configuration(ice_servers, relay_only))
    try:
        result = await _run_peer(pc, time.monotonic(), offerer=role == "offer",
                                 exchange=exchange)
        print(json.dumps({"result": result.__dict__}), flush=True)
        # keep sending until the test has both views: the other side may still wait for media
        await reader.readline()
    except (TimeoutError, ConnectionError) as exc:
        local = [line for line in (pc.localDescription.sdp if pc.localDescription else "")
                 .splitlines() if line.startswith("a=candidate:")]
        stats = await pc.getStats()
        inbound = {s.kind: s.packetsReceived for s in stats.values() if s.type == "inbound-rtp"}
        print(json.dumps({"error": repr(exc), "connection": pc.connectionState,
                          "ice": pc.iceConnectionState, "candidates": local,
                          "inbound_packets": inbound}), flush=True)
    finally:
        await pc.close()


if __name__ == "__main__":
    command, arguments = sys.argv[1], sys.argv[2:]
    if os.environ.get("TURN_PEER_LOG"):  # debug a failing namespace test: aiortc/aioice on stderr
        import logging
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    if command in ("offer", "answer"):
        asyncio.run(_peer_main(command, json.loads(arguments[0]),
                               relay_only=arguments[1:] != ["all"]))
    elif command == "listen":
        asyncio.run(_listen_main(arguments))
    elif command == "probe":
        asyncio.run(_probe_main(arguments[0], arguments[1], arguments[2],
                                json.loads(arguments[3]), *arguments[4:]))
    elif command == "check":
        asyncio.run(_check_main(*arguments))
