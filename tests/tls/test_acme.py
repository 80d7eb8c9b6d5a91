"""The public site's certificate by ACME against a real ACME server on loopback: Debian's pebble
with pebble-challtestsrv as its DNS (every name is 127.0.0.1), the box's plain-HTTP site
answering the HTTP-01 challenges (TLS.md)."""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from appliance.clock import ManualClock
from appliance.tls.acme import AcmeCertificates
from appliance.tls.authority import create_ca, write_atomically, write_private
from appliance.web.plain_http import build_http_app

pytestmark = pytest.mark.skipif(shutil.which("pebble") is None,
                                reason="pebble is needed (tests/system-deps)")

HOST = "videosprechstunde.praxis-beispiel.test"
ACME_PORT, MANAGEMENT_PORT, HTTP01_PORT, DNS_PORT = 14000, 15000, 5002, 8053
DIRECTORY = f"https://127.0.0.1:{ACME_PORT}/dir"


def _in(netns: str | None, *command: str) -> list[str]:
    return ["ip", "netns", "exec", netns, *command] if netns else list(command)


def _fetch(netns: str | None, url: str, ca: Path) -> str:
    """GET ``url`` over HTTPS from ``netns`` (the test's own namespace: None), trusting ``ca``."""
    script = ("import ssl, sys, urllib.request\n"
              f"c = ssl.create_default_context(cafile={str(ca)!r})\n"
              f"sys.stdout.write(urllib.request.urlopen({url!r}, context=c, timeout=5)"
              ".read().decode())\n")
    return subprocess.run(_in(netns, sys.executable, "-c", script), capture_output=True,
                          text=True, timeout=30, check=True).stdout


def _wait_for(netns: str | None, port: int, process: subprocess.Popen[bytes],
              log: Path) -> None:
    deadline = time.monotonic() + 20
    probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=1)"
    while subprocess.run(_in(netns, sys.executable, "-c", probe),
                         capture_output=True, timeout=30).returncode != 0:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(log.read_text("utf-8", "replace"))
        time.sleep(0.2)


@dataclass
class Pebble:
    #: the CA that vouches for pebble's own HTTPS (its directory)
    server_ca: Path
    netns: str | None

    def root(self) -> str:
        """The root that pebble's certificates chain to (made anew at each start)."""
        return _fetch(self.netns, f"https://127.0.0.1:{MANAGEMENT_PORT}/roots/0", self.server_ca)


@contextmanager
def running_pebble(directory: Path, *, netns: str | None = None, address: str = "127.0.0.1",
                   http01_port: int = HTTP01_PORT) -> Iterator[Pebble]:
    """pebble and its DNS (every name is ``address``) on loopback of ``netns``; the HTTP-01
    validation connects to ``address:http01_port``."""
    directory.mkdir(parents=True, exist_ok=True)
    own = create_ca(practice="pebble", names=["localhost"],
                    networks=[ipaddress.ip_network("127.0.0.0/8")], now=datetime.now(UTC))
    leaf, key = own.issue(names=["localhost"], addresses=[ipaddress.ip_address("127.0.0.1")],
                          now=datetime.now(UTC))
    write_atomically(directory / "pebble.pem", leaf.public_bytes(serialization.Encoding.PEM),
                     mode=0o644)
    write_private(directory / "pebble.key", key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    write_atomically(directory / "pebble-ca.pem", own.pem, mode=0o644)
    config = directory / "pebble.json"
    config.write_text(json.dumps({"pebble": {
        "listenAddress": f"127.0.0.1:{ACME_PORT}",
        "managementListenAddress": f"127.0.0.1:{MANAGEMENT_PORT}",
        "certificate": str(directory / "pebble.pem"),
        "privateKey": str(directory / "pebble.key"),
        "httpPort": http01_port, "tlsPort": 5001, "ocspResponderURL": "",
        "externalAccountBindingRequired": False}}))
    env = {"PATH": "/usr/bin:/bin", "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
    processes = []
    try:
        log = directory / "challtestsrv.log"
        with log.open("wb") as out:
            processes.append(subprocess.Popen(_in(
                netns, "pebble-challtestsrv", "-defaultIPv4", address, "-defaultIPv6", "",
                "-http01", "", "-https01", "", "-tlsalpn01", "", "-dns01",
                f"127.0.0.1:{DNS_PORT}", "-management", "127.0.0.1:8055"),
                stdout=out, stderr=subprocess.STDOUT, env=env))
        _wait_for(netns, 8055, processes[-1], log)
        log = directory / "pebble.log"
        with log.open("wb") as out:
            processes.append(subprocess.Popen(_in(
                netns, "pebble", "-config", str(config), "-dnsserver", f"127.0.0.1:{DNS_PORT}"),
                stdout=out, stderr=subprocess.STDOUT, env=env))
        _wait_for(netns, ACME_PORT, processes[-1], log)
        yield Pebble(server_ca=directory / "pebble-ca.pem", netns=netns)
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture
def pebble(tmp_path: Path) -> Iterator[Path]:
    """pebble on the test's loopback; yields the CA file for pebble's own HTTPS."""
    with running_pebble(tmp_path / "pebble") as running:
        yield running.server_ca


@pytest.fixture
async def http01(acme: AcmeCertificates) -> AsyncIterator[None]:
    """The box's plain-HTTP site on the HTTP-01 port, answering the challenges."""
    app = build_http_app(ca_pem=lambda: None, ca_der=lambda: None, ca_fingerprint=lambda: None,
                         staff_port=8080, public_urls=(f"https://{HOST}",),
                         challenge=acme.answer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", HTTP01_PORT).start()
    yield
    await runner.cleanup()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC))


@pytest.fixture
def acme(tmp_path: Path, pebble: Path, clock: ManualClock) -> AcmeCertificates:
    return AcmeCertificates(tmp_path / "acme", hosts=[HOST], directory_url=DIRECTORY,
                            email="it@praxis-beispiel.test", clock=clock, ca_bundle=pebble)


async def _renew(acme: AcmeCertificates) -> bool:
    import asyncio

    return await asyncio.get_running_loop().run_in_executor(None, acme.renew_if_due)


async def test_issuance_renewal_and_restart(acme: AcmeCertificates, http01: None,
                                            clock: ManualClock, tmp_path: Path,
                                            pebble: Path) -> None:
    """Issue 11: a certificate for the public host name by HTTP-01; nothing is asked while
    more than a third of its lifetime is left; then it is renewed (a new certificate, the same
    account); after a restart the account key and the certificate are still there."""
    assert acme.due()
    assert await _renew(acme) is True
    first = acme.current()
    assert first is not None
    names = first.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [HOST]
    chain = x509.load_pem_x509_certificates(acme.certificate_path.read_bytes())
    assert len(chain) >= 2  # the leaf and pebble's intermediate
    key = serialization.load_pem_private_key(acme.key_path.read_bytes(), password=None)
    assert key.public_key().public_numbers() == first.public_key().public_numbers()
    assert (tmp_path / "acme" / "account.key").stat().st_mode & 0o777 == 0o600
    account = (tmp_path / "acme" / "account.key").read_bytes()

    assert await _renew(acme) is False
    lifetime = first.not_valid_after_utc - first.not_valid_before_utc
    clock.set(first.not_valid_after_utc - lifetime / 3 - timedelta(hours=1))
    assert not acme.due()
    clock.advance(timedelta(hours=2))
    assert acme.due()
    assert await _renew(acme) is True
    second = acme.current()
    assert second is not None and second.serial_number != first.serial_number

    restarted = AcmeCertificates(tmp_path / "acme", hosts=[HOST], directory_url=DIRECTORY,
                                 email="", clock=ManualClock(datetime.now(UTC)),
                                 ca_bundle=pebble)
    assert not restarted.due() and restarted.current() == second
    assert (tmp_path / "acme" / "account.key").read_bytes() == account


async def test_a_failed_attempt_waits_and_is_shown(acme: AcmeCertificates,
                                                   clock: ManualClock) -> None:
    """Without anybody answering the challenge the attempt fails: the error is kept for the
    staff pages, nothing is written, and the next attempt waits (1, 2, 4 … minutes)."""
    assert await _renew(acme) is False  # no HTTP-01 responder: the server cannot validate
    state = acme.state()
    assert state.error and state.not_after is None and acme.current() is None
    assert state.next_attempt == clock.now() + timedelta(minutes=1)
    assert not acme.due()
    clock.advance(timedelta(minutes=1))
    assert acme.due()
    assert await _renew(acme) is False
    assert acme.state().next_attempt == clock.now() + timedelta(minutes=2)
