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

With ``lines=2`` (issue 12) the practice has UPLINKS.md's second line: router B forwards the
public site and TURN to the box's second LAN address, the public site listens on both, each line
has its own public host name (both in the certificate, both in the practice's ``public_urls``, so
the patient's page keeps a signaling socket on each), coturn runs one instance per relay address,
and a real STUN server on the "internet" answers the box's probes of each line
(:func:`running_stun`). :meth:`CallLab.cut_line` kills a line as a dead DSL line dies.

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
    BOX_B,
    INTERNET_HOST,
    REALM,
    ROUTER_LAN,
    ROUTER_LAN_B,
    SECRET,
    WAN_PUBLIC,
    WAN_PUBLIC_B,
    Coturn,
    practice_lan,
    run_in,
    running_coturn,
    running_relays,
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
#: line B's public host name (``lines=2``): patients reach the practice by it when line A is dead
PUBLIC_NAME_B = "leitung-b.praxis-beispiel.test"
PUBLIC_URL_B = f"https://{PUBLIC_NAME_B}:{PUBLIC_PORT}"
RESOLVER_RULES_2 = f"{RESOLVER_RULES},MAP {PUBLIC_NAME_B} {WAN_PUBLIC_B}"
#: the STUN server on the internet the box probes each line against (``lines=2``): on each WAN
#: subnet, as the routers have no default route
STUN_HOST_B = "192.0.2.99"
STUN_PORT = 3478
#: the lines as the staff calls them
LINE_NAMES = {"a": "DSL", "b": "LTE"}

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



def patient_firewall(publics: tuple[str, ...], stun_hosts: tuple[str, ...] = ()) -> str:
    """:data:`PATIENT_FIREWALL` for every public address of the practice; the lab's STUN server
    (``stun_hosts``, which shares the internet namespace) keeps answering the box's probes."""
    addresses = "{ " + ", ".join(publics) + " }"
    stun = "" if not stun_hosts else (
        f"\t\tip saddr {{ {', '.join(stun_hosts)} }} udp sport {STUN_PORT} accept\n")
    stun_in = "" if not stun_hosts else (
        f"\t\tip daddr {{ {', '.join(stun_hosts)} }} udp dport {STUN_PORT} accept\n")
    return f"""
table inet sz_patient_firewall {{
\tchain output {{
\t\ttype filter hook output priority filter; policy drop;
\t\toifname "lo" accept
\t\tip daddr {addresses} tcp dport {PUBLIC_PORT} accept
\t\tip daddr {addresses} udp dport {TURN_PORT} accept
{stun}\t}}
\tchain input {{
\t\ttype filter hook input priority filter; policy drop;
\t\tiifname "lo" accept
\t\tct state established,related accept
{stun_in}\t}}
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


def turn_settings(*, doctor_relay_only: bool = False, lines: int = 1) -> TurnSettings:
    """Design C with one uplink: coturn on the box's LAN address, the router's public address.

    ``lines=2``: UPLINKS.md's two lines, each with its own LAN address of the box, a name and
    the lab's STUN server on its WAN subnet as the probe target. The TURN URLs name the public
    addresses, not the host names: Chromium resolves a TURN server's name with the system's
    resolver (``--host-resolver-rules`` does not reach it; measured: no relay candidate), and the
    lab has no DNS. The public sites keep their names (``public_urls``)."""
    uplinks = (TurnUplink(public_host=WAN_PUBLIC, public_address=WAN_PUBLIC, lan_address=BOX),)
    if lines > 1:
        uplinks = (
            TurnUplink(public_host=WAN_PUBLIC, public_address=WAN_PUBLIC, lan_address=BOX,
                       name=LINE_NAMES["a"], stun_target=(INTERNET_HOST, STUN_PORT)),
            TurnUplink(public_host=WAN_PUBLIC_B, public_address=WAN_PUBLIC_B, lan_address=BOX_B,
                       name=LINE_NAMES["b"], stun_target=(STUN_HOST_B, STUN_PORT)),
        )
    return TurnSettings(
        enabled=True, secret=SECRET, realm=REALM, lan_address=BOX, port=TURN_PORT,
        doctor_relay_only=doctor_relay_only, uplinks=uplinks,
    )


#: each line: its router's namespace, and the router the LAN falls back to when it dies
_LINES = {"a": ("router", ROUTER_LAN_B), "b": ("router_b", ROUTER_LAN)}
#: the hosts whose default route the practice's failover router moves (not the box: each of
#: its LAN addresses belongs to one line, by source routing)
_LAN_PCS = ("doctor", "other")


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
    #: the practice's internet lines (1 or 2)
    lines: int = 1
    #: every coturn instance of the box (one per relay address)
    relays: tuple[Coturn, ...] = ()
    #: the practice's public sites, as onboarding should list them (``public_urls``)
    public_urls: tuple[str, ...] = (PUBLIC_URL,)
    #: the TURN settings the box runs with
    settings: TurnSettings | None = None

    def launch_options(self, host: str) -> dict[str, Any]:
        """Playwright ``launch()`` arguments for a Chromium in ``host``'s namespace, trusting
        the lab's two CAs: HTTPS with the certificates checked (no error is ignored)."""
        return chromium_in(self.directory, self.netns[host], self.browser_home,
                           RESOLVER_RULES_2 if self.lines > 1 else RESOLVER_RULES)

    @property
    def uplinks_file(self) -> Path:
        """The uplink monitor's history file (``uplinks.json`` in the box's runtime dir)."""
        return self.box.config.parent / "run" / "uplinks.json"

    def cut_line(self, line: str) -> None:
        """Line ``line`` ("a" or "b", ``lines=2``) dies, as a dead DSL line does.

        Every packet on the line's router's WAN is silently dropped (nft, as
        :data:`UPLINK_CUT`: no ICMP, no reset), and the LAN PCs' default route moves to the other
        line's router, as a practice's failover router moves them. The issue said "link down on
        its router"; a silent drop is the truer model here: the WAN veth's peer is the
        "internet" namespace where the patient's Chromium runs, and a link going down there
        would be a network change on the patient's own machine (Chromium re-gathers, may even
        abort page loads with ERR_NETWORK_CHANGED), which no real patient sees when the
        practice's DSL dies. A dead line gives no signal at all; packets just vanish.
        """
        router, fallback = _LINES[line]
        run_in(self.netns[router], "nft", "-f", "-", stdin=UPLINK_CUT)
        for host in _LAN_PCS:
            run_in(self.netns[host], "ip", "route", "replace", "default", "via", fallback)

    def restore_line(self, line: str) -> int:
        """Line ``line`` is back and the LAN PCs route through line A again; returns how many
        packets the cut dropped."""
        router, _ = _LINES[line]
        for host in _LAN_PCS:
            run_in(self.netns[host], "ip", "route", "replace", "default", "via", ROUTER_LAN)
        counters = run_in(self.netns[router], "nft", "list", "table", "inet", "sz_uplink_cut")
        run_in(self.netns[router], "nft", "delete", "table", "inet", "sz_uplink_cut")
        return sum(int(line.split("packets", 1)[1].split()[0])
                   for line in counters.splitlines() if "counter packets" in line)

    def cut_patient_uplink(self) -> None:
        """From now on, nothing passes between the internet (the patient) and the practice."""
        run_in(self.netns["router"], "nft", "-f", "-", stdin=UPLINK_CUT)

    def restore_patient_uplink(self) -> int:
        """The line is back; returns how many packets the cut dropped."""
        counters = run_in(self.netns["router"], "nft", "list", "table", "inet", "sz_uplink_cut")
        run_in(self.netns["router"], "nft", "delete", "table", "inet", "sz_uplink_cut")
        return sum(int(line.split("packets", 1)[1].split()[0])
                   for line in counters.splitlines() if "counter packets" in line)


def chromium_in(directory: Path, netns: str, home: Path,
                rules: str = RESOLVER_RULES) -> dict[str, Any]:
    """Playwright ``launch()`` arguments for Debian Chromium inside ``netns`` with ``home``'s
    NSS database, finding the lab's names by ``rules`` (a wrapper script in ``directory``)."""
    wrapper = directory / f"chromium-{netns}-{home.name}"
    wrapper.write_text(f'#!/bin/sh\nexport HOME={home}\n'
                       f'exec ip netns exec {netns} {CHROMIUM} "$@"\n', "utf-8")
    wrapper.chmod(0o755)
    return {"executable_path": str(wrapper), "headless": True,
            "args": [*CHROMIUM_FLAGS, rules]}

def _listening(pid: int, address: str, port: int) -> bool:
    """Whether the process's namespace has a TCP socket listening on ``address:port``."""
    wanted = "".join(f"{int(part):02X}" for part in reversed(address.split("."))) + f":{port:04X}"
    try:
        lines = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(line.split()[1] == wanted and line.split()[3] == "0A" for line in lines)


def public_certificate(directory: Path, names: tuple[str, ...] = (PUBLIC_NAME,)
                       ) -> tuple[Path, Path, Path]:
    """A stand-in for a public CA and its certificate for ``names`` (the practice's public
    host names, ``PUBLIC_NAME`` first): (CA, chain, key)."""
    from appliance.tls.authority import create_ca, write_atomically, write_private

    now = datetime.now(UTC)
    public_ca = create_ca(practice="Internet-Test-CA", names=list(names), networks=[],
                          now=now)
    leaf, key = public_ca.issue(names=list(names), addresses=[], now=now)
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
                    public_tls: tuple[Path, Path] | None = None, tls: str = "",
                    public_urls: tuple[str, ...] = (PUBLIC_URL,)) -> Iterator[RunningBox]:
    """``python -m appliance serve`` in the box namespace with a fresh vault: HTTPS on the
    box's LAN address; TURN on with ``settings``; the public site's certificate from
    ``public_tls`` (chain, key) if given; ``tls``: more lines of ``[tls]``. The public site
    listens on the box's LAN address of every line of ``settings``; ``public_urls`` is what
    onboarding proposes."""
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
                  f'lan_address = "{uplink.lan_address}"\n'
                  + (f'name = "{uplink.name}"\n' if uplink.name else "")
                  + ("" if uplink.stun_target is None else
                     f'stun_target = "{uplink.stun_target[0]}:{uplink.stun_target[1]}"\n')
                  for uplink in settings.uplinks))
    public_hosts = [BOX] if settings is None else list(dict.fromkeys(
        [BOX, *(uplink.lan_address for uplink in settings.uplinks)]))
    config.write_text(
        "[web]\n"
        f'staff_host = "{BOX}"\n'
        f"staff_port = {STAFF_PORT}\n"
        f"public_host = {json.dumps(public_hosts)}\n"
        f"public_port = {PUBLIC_PORT}\n"
        f"public_urls = {json.dumps(list(public_urls))}\n"
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
                   and all(_listening(process.pid, host, PUBLIC_PORT) for host in public_hosts)):
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
def running_stun(netns: str, directory: Path, addresses: tuple[str, ...]) -> Iterator[Coturn]:
    """A real STUN server (coturn, ``stun-only``, ``no-auth``) on ``addresses``, port 3478, in
    ``netns``: the "internet" host the box's uplink monitor probes each line against. Its answer
    names the address a probe came from, the line's public address behind the router's NAT."""
    log = directory / "stun.log"
    lines = ["stun-only", "no-auth", "no-cli", "no-tls", "no-dtls", "no-software-attribute",
             f"listening-port={STUN_PORT}", *(f"listening-ip={a}" for a in addresses),
             f"pidfile={directory / 'stun.pid'}", f"log-file={log}", "simple-log",
             "no-stdout-log", f"userdb={directory / 'stun.db'}", ""]
    config = directory / "stun.conf"
    config.write_text("\n".join(lines), "utf-8")
    process = subprocess.Popen(["ip", "netns", "exec", netns, "turnserver", "-c", str(config)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = Coturn(process=process, port=STUN_PORT, log=log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while "Total General servers" not in server.log_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the STUN server did not start:\n" + server.log_text()[-3000:])
            time.sleep(0.05)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def call_lab(directory: Path, *, restrict_patient: bool,
             doctor_relay_only: bool = False, lines: int = 1) -> Iterator[CallLab]:
    """TURN.md's topology with coturn (design C) and the box running; the patient's network
    restricted to the web page and TURN when ``restrict_patient``; the doctor's page offering
    relay candidates only with ``doctor_relay_only``. Removed afterwards.

    ``lines=2``: UPLINKS.md's two lines (see the module's docstring): router B forwards the
    public site to ``BOX_B``, coturn runs per relay address, the box watches both lines against
    the lab's STUN server (``INTERNET_HOST`` for A, ``STUN_HOST_B`` for B), and the restricted
    patient may reach the web port and the TURN port of both public addresses."""
    settings = turn_settings(doctor_relay_only=doctor_relay_only, lines=lines)
    with ExitStack() as stack:
        try:
            netns = stack.enter_context(practice_lan(lines=lines))
        except RuntimeError as exc:  # as tests/rtc/test_turn_lan.py
            pytest.skip(f"cannot build the namespace topology here: {exc}")
        # the router forwards the public site to the box, as ROUTER_NFT does for UDP 3478
        run_in(netns["router"], "nft", "add", "rule", "ip", "nat", "prerouting",
               "iifname", "wan", "tcp", "dport", str(PUBLIC_PORT), "dnat", "to", BOX)
        if lines > 1:
            run_in(netns["router_b"], "nft", "add", "rule", "ip", "nat", "prerouting",
                   "iifname", "wan", "tcp", "dport", str(PUBLIC_PORT), "dnat", "to", BOX_B)
        run_in(netns["box"], "nft", "-f", "-", stdin=nft_rules(settings))
        turn_dir = directory / "coturn"
        turn_dir.mkdir()
        if lines > 1:
            relays = tuple(stack.enter_context(
                running_relays(settings, turn_dir, netns=netns["box"])))
            coturn = relays[0]
            # the internet's STUN server, on each WAN subnet (INTERNET_HOST is on line A's)
            run_in(netns["inet"], "ip", "addr", "add", f"{STUN_HOST_B}/24", "dev", "eth1")
            stack.enter_context(running_stun(netns["inet"], turn_dir,
                                             (INTERNET_HOST, STUN_HOST_B)))
            public_urls: tuple[str, ...] = (PUBLIC_URL, PUBLIC_URL_B)
            names: tuple[str, ...] = (PUBLIC_NAME, PUBLIC_NAME_B)
        else:
            coturn = stack.enter_context(running_coturn(settings, turn_dir, netns=netns["box"]))
            relays = (coturn,)
            public_urls, names = (PUBLIC_URL,), (PUBLIC_NAME,)
        box_dir = directory / "box"
        box_dir.mkdir()
        public_ca, chain, key = public_certificate(directory, names)
        box = stack.enter_context(running_lan_box(netns["box"], box_dir, settings, (chain, key),
                                                  public_urls=public_urls))
        practice_ca = directory / "praxis-ca.pem"
        export_practice_ca(netns["box"], box, practice_ca)
        home = trusting_home(directory / "browser-home",
                             {"praxis-ca": practice_ca, "public-ca": public_ca})
        if restrict_patient:
            firewall = PATIENT_FIREWALL if lines == 1 else patient_firewall(
                (WAN_PUBLIC, WAN_PUBLIC_B), (INTERNET_HOST, STUN_HOST_B))
            run_in(netns["inet"], "nft", "-f", "-", stdin=firewall)
        yield CallLab(netns=netns, box=box, coturn=coturn, directory=directory,
                      patient_restricted=restrict_patient, browser_home=home, lines=lines,
                      relays=relays, public_urls=public_urls, settings=settings)


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
