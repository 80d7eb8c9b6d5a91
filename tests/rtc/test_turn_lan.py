"""The relay in TURN.md's topology, with one line and with two, IPv4-only and with IPv6 on the LAN.

Built from network namespaces and veth pairs that the test creates and always removes; only
TURN.md's and UPLINKS.md's lab addresses (203.0.113.0/24, 192.0.2.0/24, 192.168.50.0/24,
2001:db8:50::/64, fd00:50::/64) exist there. coturn runs on the box with exactly our generated
configuration, one instance per relay address, and our nft rule. Every setup is attacked the same
way: a credential holder on the internet (through each line, over UDP and over TCP) and one on
the doctor PC try to reach every LAN host, every service of the box, coturn itself and a host on
the internet, over IPv4 and IPv6, and ask for an IPv6 relay and a TCP relay.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from appliance.config import TurnSettings, TurnUplink
from appliance.rtc.turn import TurnRelay, nft_rules
from tests.rtc.turn_fixtures import (
    BOX,
    BOX_B,
    DOCTOR,
    INTERNET_HOST,
    LAN6,
    OTHER,
    REALM,
    REPO,
    ROUTER_LAN,
    ROUTER_LAN_B,
    SECRET,
    WAN_PUBLIC,
    WAN_PUBLIC_B,
    lan6,
    practice_lan,
    program,
    run_in,
    running_relays,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(shutil.which("turnserver") is None or shutil.which("nft") is None,
                       reason="coturn and nftables are needed (tests/system-deps)"),
]
SERVICE = 9999
_PROBES = itertools.count()
STEP_TIMEOUT_S = 25.0


@dataclass(frozen=True)
class Setup:
    """One supported practice network: how many lines, and whether the LAN has IPv6."""

    name: str
    lines: int
    ipv6: bool


SETUPS = [Setup("one line, IPv4 LAN", 1, False), Setup("one line, IPv6 LAN", 1, True),
          Setup("two lines, IPv6 LAN", 2, True)]
#: each line: (public address patients use, the box's LAN address its router forwards to)
LINES = [(WAN_PUBLIC, BOX), (WAN_PUBLIC_B, BOX_B)]


@dataclass
class Listener:
    """A stand-in service in one namespace; ``hits`` collects what reached it."""

    process: subprocess.Popen[str]
    hits: list[dict[str, str]]


@dataclass
class Lan:
    """The running topology: namespaces, the box's TURN settings, the listening services."""

    setup: Setup
    netns: dict[str, str]
    settings: TurnSettings
    listeners: dict[str, Listener]

    @property
    def lines(self) -> list[tuple[str, str]]:
        """(public address, box LAN address) of each line of this setup."""
        return LINES[:self.setup.lines]

    def hits(self) -> list[dict[str, str]]:
        """Everything any stand-in service received."""
        return [hit for listener in self.listeners.values() for hit in listener.hits]

    def box_targets(self) -> list[str]:
        """The box's services as a credential holder can name them: each LAN address, each public
        address coturn maps to one, a stand-in service and coturn itself (TURN inside TURN)."""
        return [f"{address}:{port}" for line in self.lines for address in line
                for port in (SERVICE, 3478)]

    def closed_targets(self) -> list[str]:
        """Everything that no credential may reach at all: every other LAN host over IPv4 and
        IPv6, the routers, loopback, the box over IPv6, a host on the internet."""
        targets = [OTHER, DOCTOR, ROUTER_LAN, "127.0.0.1", INTERNET_HOST]
        if self.setup.lines > 1:
            targets.append(ROUTER_LAN_B)
        if self.setup.ipv6:
            targets += [lan6(host, kind) for host in ("other", "doctor", "router", "box")
                        for kind in LAN6]
            targets += ["::1", f"::ffff:{OTHER}"]
        return [f"{address}:{SERVICE}" for address in targets]


def _listen(services: dict[str, tuple[str, list[str]]]) -> dict[str, Listener]:
    """Start the stand-in services (all at once: each start imports aiortc) and wait for them."""
    processes = {
        name: subprocess.Popen(program(netns, "listen", *endpoints), cwd=REPO, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        for name, (netns, endpoints) in services.items()
    }
    listeners = {}
    for name, process in processes.items():
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the stand-in service on {name} did not start")
        listeners[name] = Listener(process=process, hits=[])
        threading.Thread(target=_collect, args=(listeners[name],), daemon=True).start()
    return listeners


def _collect(listener: Listener) -> None:
    assert listener.process.stdout is not None
    for line in listener.process.stdout:
        listener.hits.append(json.loads(line))


def _settings(setup: Setup) -> TurnSettings:
    # a probe takes one allocation per target (about 40): more than the default quota of 16
    return TurnSettings(
        enabled=True, secret=SECRET, realm=REALM, lan_address=BOX, user_quota=64,
        uplinks=tuple(TurnUplink(public_host=public, public_address=public, lan_address=lan)
                      for public, lan in LINES[:setup.lines]),
    )


def _services(setup: Setup, netns: dict[str, str]) -> dict[str, tuple[str, list[str]]]:
    """Stand-in services on every address of every host (IPv6 ones when the LAN has IPv6)."""
    v6 = {host: [lan6(host, kind) for kind in LAN6] if setup.ipv6 else []
          for host in ("box", "doctor", "other", "router")}
    lan_b = [BOX_B] if setup.lines > 1 else []
    services = {
        "box": (netns["box"], [BOX, *lan_b, "127.0.0.1", *v6["box"], *(["::1"] if setup.ipv6
                                                                         else [])]),
        "doctor": (netns["doctor"], [DOCTOR, *v6["doctor"]]),
        "other": (netns["other"], [OTHER, *v6["other"]]),
        "router": (netns["router"], [ROUTER_LAN, WAN_PUBLIC, *v6["router"]]),
        "internet": (netns["inet"], [INTERNET_HOST]),
    }
    if setup.lines > 1:
        services["router_b"] = (netns["router_b"], [ROUTER_LAN_B, WAN_PUBLIC_B])
    return {name: (ns, [f"{a}:{SERVICE}" for a in addresses])
            for name, (ns, addresses) in services.items()}


@pytest.fixture(scope="module", params=SETUPS, ids=[s.name for s in SETUPS])
def lan(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Lan]:
    """A setup with coturn (our config) and the nft rule on the box, services listening."""
    setup: Setup = request.param
    settings = _settings(setup)
    with ExitStack() as stack:
        try:
            netns = stack.enter_context(practice_lan(lines=setup.lines, ipv6=setup.ipv6))
        except RuntimeError as exc:
            pytest.skip(f"cannot build the namespace topology here: {exc}")
        run_in(netns["box"], "nft", "-f", "-", stdin=nft_rules(settings))
        stack.enter_context(running_relays(settings, tmp_path_factory.mktemp("coturn"),
                                           netns=netns["box"]))
        listeners = _listen(_services(setup, netns))
        for listener in listeners.values():
            stack.callback(listener.process.wait, 5)
            stack.callback(listener.process.terminate)
        yield Lan(setup=setup, netns=netns, settings=settings, listeners=listeners)


async def _start(netns: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *program(netns, *args), cwd=REPO, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def _line(process: asyncio.subprocess.Process) -> Any:
    assert process.stdout is not None
    try:
        async with asyncio.timeout(STEP_TIMEOUT_S):
            line = await process.stdout.readline()
    except TimeoutError:
        process.kill()
        raise
    if not line:
        assert process.stderr is not None
        raise AssertionError((await process.stderr.read()).decode()[-3000:])
    return json.loads(line)


async def _stop(process: asyncio.subprocess.Process) -> None:
    """End of input is a program's signal to finish; kill it if it does not."""
    if process.stdin is not None:
        process.stdin.close()
    try:
        async with asyncio.timeout(5):
            await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()


async def _run(netns: str, *args: str) -> Any:
    process = await _start(netns, *args)
    try:
        return await _line(process)
    finally:
        await _stop(process)


async def _probe(lan: Lan, targets: list[str], *, via: str = WAN_PUBLIC, host: str = "inet",
                 role: str = "patient", transport: str = "udp", port: int = 3478,
                 settings: TurnSettings | None = None) -> dict[str, Any]:
    """A credential holder of ``role`` on ``host`` attacks through coturn at ``via:port``."""
    binding = ("a1", f"p-probe{next(_PROBES)}")  # own quota per probe
    server = TurnRelay(settings or lan.settings).ice_servers_for(role, binding)[0]
    for listener in lan.listeners.values():
        listener.hits.clear()
    return await _run(lan.netns[host], "probe", f"{via}:{port}", server["username"],
                      server["credential"], json.dumps(targets), transport)


async def _call(lan: Lan, line: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A relay-only patient on the internet, given only ``line``'s TURN server, calls the doctor
    in the LAN (ICE policy all); (patient's view, doctor's view)."""
    relay = TurnRelay(lan.settings)
    relay.mark_healthy({line})
    patient = await _start(lan.netns["inet"], "offer",
                           json.dumps(relay.ice_servers_for("patient", ("a1", "p-1"))))
    doctor = await _start(lan.netns["doctor"], "answer",
                          json.dumps(relay.ice_servers_for("doctor", ("a1", "d-1"))), "all")
    try:
        assert patient.stdin is not None and doctor.stdin is not None
        doctor.stdin.write((json.dumps(await _line(patient)) + "\n").encode())
        patient.stdin.write((json.dumps(await _line(doctor)) + "\n").encode())
        patient_view, doctor_view = await _line(patient), await _line(doctor)
    finally:
        await _stop(patient)
        await _stop(doctor)
    assert "result" in patient_view and "result" in doctor_view, (patient_view, doctor_view)
    return patient_view["result"], doctor_view["result"]


async def test_relayed_patient_reaches_doctor_through_each_line(
    lan: Lan, capsys: pytest.CaptureFixture[str]
) -> None:
    """R4: a relay-only patient on the internet and the doctor in the LAN connect relay <-> relay
    inside the box through every line of the practice, each allocation on its own line's public
    address, through coturn with our configuration and nft rule; video and data flow."""
    for public, _ in lan.lines:
        seen, other = await _call(lan, public)
        assert seen["candidate_types"] == ["relay"]
        assert seen["relayed"] == [public], "the allocation must carry its own line's address"
        assert seen["selected"] == other["selected"] == "relay-relay"
        assert seen["echo"] == "pong über das Relay"
        with capsys.disabled():
            print(f"\n  [{lan.setup.name}] patient via {public} (relay-only) <-> doctor (LAN): "
                  f"connected {seen['connected_s'] * 1000:.0f} ms, first frame "
                  f"{seen['first_frame_s'] * 1000:.0f} ms")


async def test_doctor_needs_the_lan_address(lan: Lan) -> None:
    """Without hairpin NAT the public address does not work from the LAN; the LAN address does,
    and the patient reaches coturn through each router's forward. coturn listens on no IPv6
    address of the box."""
    public = await _run(lan.netns["doctor"], "check", WAN_PUBLIC, "3478", SECRET, REALM)
    assert public["state"] == "unreachable", public
    assert (await _run(lan.netns["doctor"], "check", BOX, "3478", SECRET, REALM))["state"] == "ok"
    for public_address, _ in lan.lines:
        assert (await _run(lan.netns["inet"], "check", public_address, "3478", SECRET, REALM))[
            "state"] == "ok"
    if lan.setup.ipv6:
        for kind in LAN6:
            on_v6 = await _run(lan.netns["doctor"], "check", lan6("box", kind), "3478", SECRET,
                               REALM)
            assert on_v6["state"] == "unreachable", on_v6


def _assert_closed(lan: Lan, results: dict[str, Any], own_line: str) -> None:
    assert results.pop("relay_to_relay") is True
    assert results.pop("relayed").rpartition(":")[0] == own_line
    assert results.pop("tcp_relay").startswith("refused"), results
    assert results.pop("ipv6_relay").startswith("refused"), results
    for target in lan.closed_targets():
        assert results[target].startswith("forbidden"), (target, results)
    for target in lan.box_targets():
        assert results[target] == "silent", (target, results)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_relay_is_no_door_from_the_internet(lan: Lan, transport: str) -> None:
    """R4/R9: through every line, over UDP and over TCP to coturn, a valid patient credential
    relays to another relay, but to no LAN host (IPv4 or IPv6), no service of the box (coturn's
    own port included), no router and no other internet host; it gets no IPv6 and no TCP relay.
    Not one packet arrives anywhere."""
    targets = lan.closed_targets() + lan.box_targets()
    for public, _ in lan.lines:
        results = await _probe(lan, targets, via=public, transport=transport)
        await asyncio.sleep(0.2)
        _assert_closed(lan, results, public)
        assert lan.hits() == []


async def test_relay_is_no_door_from_the_lan(lan: Lan) -> None:
    """R9: the same from the doctor PC with a doctor credential, through the box's LAN address
    (the doctor's relay announces the first line's public address)."""
    results = await _probe(lan, lan.closed_targets() + lan.box_targets(), via=BOX,
                           host="doctor", role="doctor")
    await asyncio.sleep(0.2)
    _assert_closed(lan, results, WAN_PUBLIC)
    assert lan.hits() == []


async def test_box_rule_is_what_closes_the_box(lan: Lan) -> None:
    """Without the nft rule the box's services answer through the relay (design A's exposure,
    TURN.md); with it they do not. Shows the rule is needed and that it works."""
    targets = lan.box_targets()
    run_in(lan.netns["box"], "nft", "delete", "table", "inet", "sprechzimmer_turn")
    try:
        exposed = await _probe(lan, targets)
        await asyncio.sleep(0.2)
        exposed_hits = sorted(hit["udp"] for hit in lan.hits())
    finally:
        run_in(lan.netns["box"], "nft", "-f", "-", stdin=nft_rules(lan.settings))
    assert [exposed[target] for target in targets] == ["answered"] * len(targets), exposed
    services = sorted([f"{lan_address}:{SERVICE}" for _, lan_address in lan.lines] * 2)
    assert exposed_hits == services
    closed = await _probe(lan, targets)
    assert [closed[target] for target in targets] == ["silent"] * len(targets), closed
    assert closed["relay_to_relay"] is True
    await asyncio.sleep(0.2)
    assert lan.hits() == []


def test_namespaces_are_removed_afterwards() -> None:
    """The topology leaves nothing behind (run after the module fixture's own use ends)."""
    with practice_lan(lines=2, ipv6=True) as netns:
        assert all(Path("/run/netns", name).exists() for name in netns.values())
    assert not any(Path("/run/netns", name).exists() for name in netns.values())


def _box_config(lan: Lan, directory: Path) -> Path:
    """The box's settings file for this setup (the secret inline: tests only)."""
    uplinks = "".join(
        f'[[turn.uplinks]]\npublic_host = "{u.public_host}"\npublic_address = '
        f'"{u.public_address}"\nlan_address = "{u.lan_address}"\n' for u in lan.settings.uplinks)
    path = directory / "box.toml"
    path.write_text(
        f'[turn]\nenabled = true\nsecret = "{SECRET}"\nrealm = "{REALM}"\n'
        f'lan_address = "{lan.settings.lan_address}"\nuser_quota = {lan.settings.user_quota}\n'
        + uplinks, "utf-8")
    return path


def _check(lan: Lan, config: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPRECHZIMMER_")}
    return subprocess.run(
        ["ip", "netns", "exec", lan.netns["box"], sys.executable, "-m", "appliance",
         "--config", str(config), "turn-config", "--check"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


def test_check_says_when_the_box_is_exposed(lan: Lan, tmp_path: Path) -> None:
    """R9: `turn-config --check` on the running box: safe with our coturn and rule (every relay
    instance allocates, refuses IPv6 and TCP relays and every forbidden peer, coturn silent on the
    box's IPv6 addresses); after a reload of nftables dropped the rule it says plainly that the
    box is exposed and exits 1."""
    config = _box_config(lan, tmp_path)
    safe = _check(lan, config)
    assert safe.returncode == 0, safe.stdout + safe.stderr
    assert "OFFEN" not in safe.stdout
    assert "keine Tür ins Praxisnetz" in safe.stdout
    for _, address in lan.lines:
        assert f"coturn auf {address} lehnt Relays über IPv6 ab" in safe.stdout
    if lan.setup.ipv6:
        assert f"nicht auf der IPv6-Adresse {lan6('box')}" in safe.stdout
    run_in(lan.netns["box"], "nft", "flush", "ruleset")  # what Debian's nftables.conf does
    try:
        exposed = _check(lan, config)
    finally:
        run_in(lan.netns["box"], "nft", "-f", "-", stdin=nft_rules(lan.settings))
    assert exposed.returncode == 1, exposed.stdout + exposed.stderr
    assert "UNGESCHÜTZT" in exposed.stdout
    assert "Die Firewall-Regel der Box fehlt" in exposed.stdout


async def test_internet_peers_only_when_allowed(lan: Lan, tmp_path: Path) -> None:
    """``allow_internet_peers`` (a doctor working outside the practice) lets the relay reach a
    host on the internet, and nothing more: every LAN host, the routers and loopback stay
    forbidden, the box's services silent, IPv6 and TCP relays refused. Without the setting the
    same host is forbidden (the other tests)."""
    settings = dataclasses.replace(lan.settings, port=3479, allow_internet_peers=True)
    with running_relays(settings, tmp_path, netns=lan.netns["box"]):
        results = await _probe(lan, lan.closed_targets() + lan.box_targets(), via=BOX,
                               host="doctor", role="doctor", port=3479, settings=settings)
        await asyncio.sleep(0.2)
    assert results.pop(f"{INTERNET_HOST}:{SERVICE}") == "answered", results
    assert [hit["udp"] for hit in lan.hits()] == [f"{INTERNET_HOST}:{SERVICE}"]
    assert results.pop("relay_to_relay") is True
    assert results.pop("tcp_relay").startswith("refused")
    assert results.pop("ipv6_relay").startswith("refused")
    for target in lan.closed_targets():
        if target != f"{INTERNET_HOST}:{SERVICE}":
            assert results[target].startswith("forbidden"), (target, results)
    for target in lan.box_targets():
        assert results[target] == "silent", (target, results)
