"""Design C in TURN.md's topology: internet, a router without hairpin NAT, the practice LAN.

Built from network namespaces and veth pairs that the test creates and always removes; only
TURN.md's lab addresses (203.0.113.0/24, 192.168.50.0/24) exist there. coturn runs on the box
with exactly our generated configuration (no loopback peers) and our nft rule.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import subprocess
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
    DOCTOR,
    OTHER,
    REALM,
    REPO,
    ROUTER_LAN,
    SECRET,
    WAN_PUBLIC,
    practice_lan,
    program,
    run_in,
    running_coturn,
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


@dataclass
class Listener:
    """A stand-in LAN service in one namespace; ``hits`` collects what reached it."""

    process: subprocess.Popen[str]
    hits: list[dict[str, str]]


@dataclass
class Lan:
    """The running topology: namespaces, the box's TURN settings, the listening services."""

    netns: dict[str, str]
    settings: TurnSettings
    listeners: dict[str, Listener]

    def hits(self) -> list[dict[str, str]]:
        """Everything any stand-in service received."""
        return [hit for listener in self.listeners.values() for hit in listener.hits]


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


@pytest.fixture(scope="module")
def lan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lan]:
    """The topology with coturn (our config) and the nft rule on the box, services listening."""
    settings = TurnSettings(
        enabled=True, secret=SECRET, realm=REALM, lan_address=BOX,
        uplinks=(TurnUplink(public_host=WAN_PUBLIC, public_address=WAN_PUBLIC, lan_address=BOX),),
    )
    with ExitStack() as stack:
        try:
            netns = stack.enter_context(practice_lan())
        except RuntimeError as exc:
            pytest.skip(f"cannot build the namespace topology here: {exc}")
        run_in(netns["box"], "nft", "-f", "-", stdin=nft_rules(settings))
        stack.enter_context(running_coturn(settings, tmp_path_factory.mktemp("coturn"),
                                           netns=netns["box"]))
        listeners = _listen({
            "box": (netns["box"], [f"{BOX}:{SERVICE}", f"127.0.0.1:{SERVICE}"]),
            "doctor": (netns["doctor"], [f"{DOCTOR}:{SERVICE}"]),
            "other": (netns["other"], [f"{OTHER}:{SERVICE}"]),
            "router": (netns["router"], [f"{ROUTER_LAN}:{SERVICE}", f"{WAN_PUBLIC}:{SERVICE}"]),
        })
        for listener in listeners.values():
            stack.callback(listener.process.wait, 5)
            stack.callback(listener.process.terminate)
        yield Lan(netns=netns, settings=settings, listeners=listeners)


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


async def _probe(lan: Lan, targets: list[str]) -> dict[str, Any]:
    binding = ("a1", f"p-probe{next(_PROBES)}")  # own quota per probe
    server = TurnRelay(lan.settings).ice_servers_for("patient", binding)[0]
    for listener in lan.listeners.values():
        listener.hits.clear()
    return await _run(lan.netns["inet"], "probe", f"{WAN_PUBLIC}:3478", server["username"],
                      server["credential"], json.dumps(targets))


async def test_relayed_patient_reaches_doctor_without_hairpin(
    lan: Lan, capsys: pytest.CaptureFixture[str]
) -> None:
    """R4: a relay-only patient on the internet and the doctor in the LAN connect, relay <-> relay
    inside the box, through coturn with our configuration and nft rule; video and data flow."""
    relay = TurnRelay(lan.settings)
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
    seen, other = patient_view["result"], doctor_view["result"]
    assert seen["candidate_types"] == ["relay"]
    assert seen["selected"] == other["selected"] == "relay-relay"
    assert seen["echo"] == "pong über das Relay"
    with capsys.disabled():
        print(f"\n  patient (internet, relay-only) <-> doctor (LAN): connected "
              f"{seen['connected_s'] * 1000:.0f} ms, first frame {seen['first_frame_s'] * 1000:.0f}"
              " ms")


async def test_doctor_needs_the_lan_address(lan: Lan) -> None:
    """Without hairpin NAT the public address does not work from the LAN; the LAN address does,
    and the patient reaches coturn through the router's forward."""
    public = await _run(lan.netns["doctor"], "check", WAN_PUBLIC, "3478", SECRET, REALM)
    assert public["state"] == "unreachable", public
    assert (await _run(lan.netns["doctor"], "check", BOX, "3478", SECRET, REALM))["state"] == "ok"
    assert (await _run(lan.netns["inet"], "check", WAN_PUBLIC, "3478", SECRET, REALM))[
        "state"] == "ok"


#: the box's services as a credential holder can name them: LAN address or the public one that
#: coturn maps to it (external-ip), a stand-in service and coturn itself (TURN inside TURN)
BOX_TARGETS = [f"{BOX}:{SERVICE}", f"{WAN_PUBLIC}:{SERVICE}", f"{BOX}:3478", f"{WAN_PUBLIC}:3478"]
LAN_TARGETS = [f"{OTHER}:{SERVICE}", f"{DOCTOR}:{SERVICE}", f"{ROUTER_LAN}:{SERVICE}",
               f"127.0.0.1:{SERVICE}", *BOX_TARGETS]


async def test_relay_is_no_door_into_the_lan(lan: Lan) -> None:
    """R4/R9: a valid credential relays to another relay, but to no other LAN host, no service
    of the box (coturn's own port included) or the router, and it gets no TCP relay."""
    results = await _probe(lan, LAN_TARGETS)
    assert results.pop("relay_to_relay") is True
    assert results.pop("tcp_relay").startswith("refused"), results
    for target in (f"{OTHER}:{SERVICE}", f"{DOCTOR}:{SERVICE}", f"{ROUTER_LAN}:{SERVICE}",
                   f"127.0.0.1:{SERVICE}"):
        assert results[target] == "forbidden 403", (target, results)
    for target in BOX_TARGETS:
        assert results[target] == "silent", (target, results)
    await asyncio.sleep(0.2)
    assert lan.hits() == []


async def test_box_rule_is_what_closes_the_box(lan: Lan) -> None:
    """Without the nft rule the box's services answer through the relay (design A's exposure,
    TURN.md); with it they do not. Shows the rule is needed and that it works."""
    run_in(lan.netns["box"], "nft", "delete", "table", "inet", "sprechzimmer_turn")
    try:
        exposed = await _probe(lan, BOX_TARGETS)
        await asyncio.sleep(0.2)
        exposed_hits = sorted(hit["udp"] for hit in lan.hits())
    finally:
        run_in(lan.netns["box"], "nft", "-f", "-", stdin=nft_rules(lan.settings))
    assert [exposed[target] for target in BOX_TARGETS] == ["answered"] * 4, exposed
    assert exposed_hits == [f"{BOX}:{SERVICE}"] * 2
    closed = await _probe(lan, BOX_TARGETS)
    assert [closed[target] for target in BOX_TARGETS] == ["silent"] * 4, closed
    assert closed["relay_to_relay"] is True
    await asyncio.sleep(0.2)
    assert lan.hits() == []


def test_namespaces_are_removed_afterwards() -> None:
    """The topology leaves nothing behind (run after the module fixture's own use ends)."""
    with practice_lan() as netns:
        assert all(Path("/run/netns", name).exists() for name in netns.values())
    assert not any(Path("/run/netns", name).exists() for name in netns.values())
