"""The real box and real Chromium in TURN.md's practice LAN, built from network namespaces.

``tests/rtc/turn_fixtures.practice_lan()`` gives the topology (inet — router with NAT and no
hairpin — LAN bridge with box, doctor, other). On top of it, :func:`call_lab` adds what a call
between two browsers needs: the router forwards the public site's port to the box (as it forwards
UDP 3478), coturn runs on the box with our generated configuration and the box firewall rule
(design C), and the box itself (``python -m appliance serve``) runs in the box namespace with the
staff site on the box's LAN address and the public site behind the router's public address.

Both sites speak HTTPS with real certificate checks, as on a practice PC and a patient's phone:
the staff site with the box's own practice CA (made at its first start, exported with
``sprechzimmer tls ca``), the public site with a certificate from files, issued for the
practice's public host name by a stand-in for a public CA. Each Chromium trusts both CAs in a
throwaway NSS database (``certutil``, in its own ``HOME``) and finds ``sprechzimmer.local`` and
the public host name by ``--host-resolver-rules`` (TLS.md).

Chromium runs in a namespace through a wrapper script (``exec ip netns exec NS chromium``):
Playwright talks to it over pipes, so the browser needs no route to the test process. Playwright's
own HTTP client (``context.request``) runs in the driver process outside the namespaces, so
:class:`PageApi` sends the test's API calls as ``fetch()`` from a page instead.

Only TURN.md's lab addresses exist here, inside namespaces the test creates and always removes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from appliance.config import TurnSettings, TurnUplink
from appliance.rtc.turn import nft_rules
from tests.e2e.conftest import CHROMIUM, CHROMIUM_FLAGS, START_TIMEOUT_S, RunningBox
from tests.rtc.turn_fixtures import (
    BOX,
    REALM,
    SECRET,
    WAN_PUBLIC,
    Coturn,
    practice_lan,
    run_in,
    running_coturn,
)

STAFF_PORT = 8080
PUBLIC_PORT = 8443
TURN_PORT = 3478
#: the box's mDNS name and the practice's public host name (the browsers map them by rule)
STAFF_NAME = "sprechzimmer.local"
PUBLIC_NAME = "videosprechstunde.praxis-beispiel.test"
#: the doctor's PC opens the staff site by the box's name; patients the public host name
STAFF_URL = f"https://{STAFF_NAME}:{STAFF_PORT}"
PUBLIC_URL = f"https://{PUBLIC_NAME}:{PUBLIC_PORT}"
RESOLVER_RULES = f"--host-resolver-rules=MAP {STAFF_NAME} {BOX},MAP {PUBLIC_NAME} {WAN_PUBLIC}"

#: a restrictive patient network (a strict company or hotel firewall): the web page and UDP to
#: the TURN port of the practice's public address, nothing else — no direct path can exist
PATIENT_FIREWALL = f"""
table inet sz_patient_firewall {{
\tchain output {{
\t\ttype filter hook output priority filter; policy drop;
\t\toifname "lo" accept
\t\tip daddr {WAN_PUBLIC} tcp dport {PUBLIC_PORT} accept
\t\tip daddr {WAN_PUBLIC} udp dport {TURN_PORT} accept
\t}}
\tchain input {{
\t\ttype filter hook input priority filter; policy drop;
\t\tiifname "lo" accept
\t\tct state established,related accept
\t}}
}}
"""

#: the patient's uplink goes dead in the router: every packet from and to the internet side is
#: silently lost (no ICMP, no reset), as on a dead DSL line (UPLINKS.md)
UPLINK_CUT = """
table inet sz_uplink_cut {
\tchain pre {
\t\ttype filter hook prerouting priority raw; policy accept;
\t\tiifname "wan" counter drop
\t}
\tchain post {
\t\ttype filter hook postrouting priority raw; policy accept;
\t\toifname "wan" counter drop
\t}
}
"""


def missing_tools() -> str | None:
    """Why the lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("turnserver", "nft", "ip", "certutil"):
        if shutil.which(tool) is None:
            return f"{tool} is needed (tests/system-deps)"
    if not CHROMIUM.exists():
        return "Debian chromium is not installed (apt-get install chromium)"
    return None


def turn_settings(*, doctor_relay_only: bool = False) -> TurnSettings:
    """Design C with one uplink: coturn on the box's LAN address, the router's public address."""
    return TurnSettings(
        enabled=True, secret=SECRET, realm=REALM, lan_address=BOX, port=TURN_PORT,
        doctor_relay_only=doctor_relay_only,
        uplinks=(TurnUplink(public_host=WAN_PUBLIC, public_address=WAN_PUBLIC, lan_address=BOX),),
    )


@dataclass
class CallLab:
    """The running lab: namespaces by host name, the box's two sites, coturn, a scratch dir."""

    netns: dict[str, str]
    box: RunningBox
    coturn: Coturn
    directory: Path
    #: whether the patient sits behind the restrictive firewall (relay only)
    patient_restricted: bool
    #: a HOME whose NSS database trusts the practice CA and the public CA
    browser_home: Path

    def launch_options(self, host: str) -> dict[str, Any]:
        """Playwright ``launch()`` arguments for a Chromium in ``host``'s namespace, trusting
        the lab's two CAs: HTTPS with the certificates checked (no error is ignored)."""
        return chromium_in(self.directory, self.netns[host], self.browser_home)


    def cut_patient_uplink(self) -> None:
        """From now on, nothing passes between the internet (the patient) and the practice."""
        run_in(self.netns["router"], "nft", "-f", "-", stdin=UPLINK_CUT)

    def restore_patient_uplink(self) -> int:
        """The line is back; returns how many packets the cut dropped."""
        counters = run_in(self.netns["router"], "nft", "list", "table", "inet", "sz_uplink_cut")
        run_in(self.netns["router"], "nft", "delete", "table", "inet", "sz_uplink_cut")
        return sum(int(line.split("packets", 1)[1].split()[0])
                   for line in counters.splitlines() if "counter packets" in line)


def chromium_in(directory: Path, netns: str, home: Path) -> dict[str, Any]:
    """Playwright ``launch()`` arguments for Debian Chromium inside ``netns`` with ``home``'s
    NSS database, finding the lab's names by rule (a wrapper script in ``directory``)."""
    wrapper = directory / f"chromium-{netns}-{home.name}"
    wrapper.write_text(f'#!/bin/sh\nexport HOME={home}\n'
                       f'exec ip netns exec {netns} {CHROMIUM} "$@"\n', "utf-8")
    wrapper.chmod(0o755)
    return {"executable_path": str(wrapper), "headless": True,
            "args": [*CHROMIUM_FLAGS, RESOLVER_RULES]}

def _listening(pid: int, address: str, port: int) -> bool:
    """Whether the process's namespace has a TCP socket listening on ``address:port``."""
    wanted = "".join(f"{int(part):02X}" for part in reversed(address.split("."))) + f":{port:04X}"
    try:
        lines = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(line.split()[1] == wanted and line.split()[3] == "0A" for line in lines)


def public_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A stand-in for a public CA and its certificate for ``PUBLIC_NAME``: (CA, chain, key)."""
    from appliance.tls.authority import create_ca, write_atomically, write_private

    now = datetime.now(UTC)
    public_ca = create_ca(practice="Internet-Test-CA", names=[PUBLIC_NAME], networks=[],
                          now=now)
    leaf, key = public_ca.issue(names=[PUBLIC_NAME], addresses=[], now=now)
    paths = directory / "public-ca.pem", directory / "public.pem", directory / "public.key"
    write_atomically(paths[0], public_ca.pem, mode=0o644)
    write_atomically(paths[1], leaf.public_bytes(serialization.Encoding.PEM) + public_ca.pem,
                     mode=0o644)
    write_private(paths[2], key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    return paths


def trusting_home(directory: Path, cas: dict[str, Path]) -> Path:
    """A HOME whose NSS database (the one Chromium reads) trusts ``cas`` for web sites."""
    nssdb = directory / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(["certutil", "-d", f"sql:{nssdb}", "-N", "--empty-password"], check=True,
                   capture_output=True, timeout=30)
    for name, path in cas.items():
        subprocess.run(["certutil", "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", name, "-i",
                        str(path)], check=True, capture_output=True, timeout=30)
    return directory


def export_practice_ca(netns: str, box: RunningBox, output: Path) -> str:
    """``sprechzimmer tls ca --output`` as the IT provider runs it on the box; returns what it
    said (the fingerprint)."""
    done = subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, "-m", "appliance", "--config",
         str(box.config), "tls", "ca", "--output", str(output)],
        capture_output=True, text=True, timeout=60, check=True)
    return done.stderr


@contextmanager
def running_lan_box(netns: str, directory: Path, settings: TurnSettings | None,
                    public_tls: tuple[Path, Path] | None = None, tls: str = ""
                    ) -> Iterator[RunningBox]:
    """``python -m appliance serve`` in the box namespace with a fresh vault: HTTPS on the
    box's LAN address; TURN on with ``settings``; the public site's certificate from
    ``public_tls`` (chain, key) if given; ``tls``: more lines of ``[tls]``."""
    config = directory / "sprechzimmer.toml"
    tls = "[tls]\n" + tls + ("" if public_tls is None else (
        f'public_certificate = "{public_tls[0]}"\n'
        f'public_private_key = "{public_tls[1]}"\n'))
    turn = "" if settings is None else (
        "[turn]\n"
        "enabled = true\n"
        f'secret = "{settings.secret}"\n'
        f'realm = "{settings.realm}"\n'
        f'lan_address = "{settings.lan_address}"\n'
        f"port = {settings.port}\n"
        f"doctor_relay_only = {'true' if settings.doctor_relay_only else 'false'}\n"
        + "".join("[[turn.uplinks]]\n"
                  f'public_host = "{uplink.public_host}"\n'
                  f'public_address = "{uplink.public_address}"\n'
                  f'lan_address = "{uplink.lan_address}"\n' for uplink in settings.uplinks))
    config.write_text(
        "[web]\n"
        f'staff_host = "{BOX}"\n'
        f"staff_port = {STAFF_PORT}\n"
        f'public_host = "{BOX}"\n'
        f"public_port = {PUBLIC_PORT}\n"
        f'public_urls = ["{PUBLIC_URL}"]\n'
        "[vault]\n"
        f'path = "{directory / "vault"}"\n'
        # a test running past 22:00 must not find its box locked (tests/web/test_box_lock.py)
        'lock_hours = ""\n' + tls + turn,
        "utf-8",
    )
    running = RunningBox(STAFF_URL, PUBLIC_URL, directory / "box.log", config)
    with running.log.open("wb") as out:
        # ip netns exec execs the command: the pid is the box's own
        running.process = process = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-m", "appliance", "--config",
             str(config), "serve"],
            stdout=out, stderr=subprocess.STDOUT, cwd=directory,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (_listening(process.pid, BOX, STAFF_PORT)
                   and _listening(process.pid, BOX, PUBLIC_PORT)):
            if process.poll() is not None:
                raise RuntimeError(f"the box exited with {process.returncode}:\n"
                                   f"{running.log_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the box did not listen within {START_TIMEOUT_S} s:\n"
                                   f"{running.log_text()}")
            time.sleep(0.1)
        yield running
    finally:
        running.stop()


@contextmanager
def call_lab(directory: Path, *, restrict_patient: bool,
             doctor_relay_only: bool = False) -> Iterator[CallLab]:
    """TURN.md's topology with coturn (design C) and the box running; the patient's network
    restricted to the web page and TURN when ``restrict_patient``; the doctor's page offering
    relay candidates only with ``doctor_relay_only``. Removed afterwards."""
    settings = turn_settings(doctor_relay_only=doctor_relay_only)
    with ExitStack() as stack:
        try:
            netns = stack.enter_context(practice_lan())
        except RuntimeError as exc:  # as tests/rtc/test_turn_lan.py
            pytest.skip(f"cannot build the namespace topology here: {exc}")
        # the router forwards the public site to the box, as ROUTER_NFT does for UDP 3478
        run_in(netns["router"], "nft", "add", "rule", "ip", "nat", "prerouting",
               "iifname", "wan", "tcp", "dport", str(PUBLIC_PORT), "dnat", "to", BOX)
        run_in(netns["box"], "nft", "-f", "-", stdin=nft_rules(settings))
        turn_dir = directory / "coturn"
        turn_dir.mkdir()
        coturn = stack.enter_context(running_coturn(settings, turn_dir, netns=netns["box"]))
        box_dir = directory / "box"
        box_dir.mkdir()
        public_ca, chain, key = public_certificate(directory)
        box = stack.enter_context(running_lan_box(netns["box"], box_dir, settings, (chain, key)))
        practice_ca = directory / "praxis-ca.pem"
        export_practice_ca(netns["box"], box, practice_ca)
        home = trusting_home(directory / "browser-home",
                             {"praxis-ca": practice_ca, "public-ca": public_ca})
        if restrict_patient:
            run_in(netns["inet"], "nft", "-f", "-", stdin=PATIENT_FIREWALL)
        yield CallLab(netns=netns, box=box, coturn=coturn, directory=directory,
                      patient_restricted=restrict_patient, browser_home=home)


# --- the test's API calls, sent from a page inside the namespaces ------------------------------

_FETCH = """async ([method, url, body, headers]) => {
  const init = {method, headers: {...headers}, credentials: 'same-origin'};
  if (body !== null) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const answer = await fetch(url, init);
  return {status: answer.status, ok: answer.ok, text: await answer.text()};
}"""


@dataclass
class PageAnswer:
    """What ``fetch()`` got, shaped like the parts of Playwright's APIResponse the tests use."""

    status: int
    ok: bool
    body: str

    async def text(self) -> str:
        return self.body

    async def json(self) -> Any:
        return json.loads(self.body)


class PageApi:
    """``get``/``post`` like Playwright's APIRequestContext, but as ``fetch()`` from ``page``
    (same origin, its cookies): the page is inside a namespace, the Playwright driver is not."""

    def __init__(self, page: Any) -> None:
        self.page = page

    async def _fetch(self, method: str, url: str, data: Any, headers: dict[str, str] | None
                     ) -> PageAnswer:
        answer = await self.page.evaluate(_FETCH, [method, url, data, headers or {}])
        return PageAnswer(status=answer["status"], ok=answer["ok"], body=answer["text"])

    async def get(self, url: str, *, headers: dict[str, str] | None = None,
                  **_: Any) -> PageAnswer:
        return await self._fetch("GET", url, None, headers)

    async def post(self, url: str, *, data: Any = None, headers: dict[str, str] | None = None,
                   **_: Any) -> PageAnswer:
        return await self._fetch("POST", url, data, headers)


class PageContext:
    """Stands in for a BrowserContext where helpers only use ``context.request``."""

    def __init__(self, page: Any) -> None:
        self.request = PageApi(page)
