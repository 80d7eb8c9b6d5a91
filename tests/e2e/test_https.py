"""HTTPS on a real LAN address (issue 11): the box in its namespace, Chromium on the doctor's PC
with the practice CA in its NSS database and no certificate error ignored, openssl's handshakes
per BSI TR-02102-2, the first-visit page on port 80 (docs/tls.md).

The call itself over HTTPS on both sites is ``test_call_namespaces.py`` (its lab speaks HTTPS).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from appliance.tls.authority import fingerprint
from tests.rtc.turn_fixtures import BOX, practice_lan, run_in

from .conftest import RunningBox
from .netlab import (
    PUBLIC_PORT,
    PUBLIC_URL,
    STAFF_NAME,
    STAFF_PORT,
    STAFF_URL,
    chromium_in,
    export_practice_ca,
    missing_tools,
    running_lan_box,
    trusting_home,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(missing_tools() is not None, reason=missing_tools() or ""),
]

async_api = pytest.importorskip("playwright.async_api")


@dataclass
class HttpsLab:
    netns: dict[str, str]
    box: RunningBox
    ca: Path
    #: what ``tls ca --output`` printed (the fingerprint)
    said: str
    directory: Path

    def chromium(self, host: str, home: Path | None) -> dict[str, Any]:
        """Launch options of a Chromium in ``host``'s namespace, with ``home``'s NSS database
        (None: one that trusts nothing of the lab)."""
        if home is None:
            home = self.directory / "untrusting-home"
            if not home.exists():
                trusting_home(home, {})
        return chromium_in(self.directory, self.netns[host], home)


@contextmanager
def _lan() -> Iterator[dict[str, str]]:
    """TURN.md's practice LAN (namespaces by host name), or a skip saying why not here."""
    try:
        lan = practice_lan()
        netns = lan.__enter__()
    except RuntimeError as exc:
        pytest.skip(f"cannot build the namespace topology here: {exc}")
    try:
        yield netns
    finally:
        lan.__exit__(None, None, None)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[HttpsLab]:
    box_dir = tmp_path / "box"
    box_dir.mkdir()
    with _lan() as netns, running_lan_box(netns["box"], box_dir, None) as box:
        ca = tmp_path / "praxis-ca.pem"
        said = export_practice_ca(netns["box"], box, ca)
        yield HttpsLab(netns=netns, box=box, ca=ca, said=said, directory=tmp_path)


@pytest.fixture
async def playwright() -> AsyncIterator[Any]:
    async with async_api.async_playwright() as running:
        yield running


def _fingerprint(pem: Path) -> str:
    return fingerprint(x509.load_pem_x509_certificate(pem.read_bytes()))


async def test_doctor_pc_gets_a_secure_context_with_the_practice_ca(lab: HttpsLab,
                                                                    playwright: Any) -> None:
    """Issue 11, R5, R13: on the doctor's PC (another address than the box's), with the CA from
    ``sprechzimmer tls ca`` trusted and no certificate error ignored, the staff site on
    ``sprechzimmer.local`` and on the LAN address is a secure context and getUserMedia delivers
    camera and microphone; a PC that does not trust the CA gets a certificate error instead."""
    assert _fingerprint(lab.ca) in lab.said
    home = trusting_home(lab.directory / "doctor-home", {"praxis-ca": lab.ca})
    browser = await playwright.chromium.launch(**lab.chromium("doctor", home))
    try:
        page = await browser.new_page()
        for url in (STAFF_URL, f"https://{BOX}:{STAFF_PORT}"):
            answer = await page.goto(url)
            assert answer is not None and answer.ok, url
            assert await page.evaluate("window.isSecureContext") is True
            tracks = await page.evaluate("""async () => {
                const stream = await navigator.mediaDevices.getUserMedia({video: true,
                                                                          audio: true});
                const kinds = stream.getTracks().map((track) => track.kind).sort();
                stream.getTracks().forEach((track) => track.stop());
                return kinds;
            }""")
            assert tracks == ["audio", "video"]
            hsts = await page.evaluate("""async () => (await fetch('/api/status')).headers
                .get('strict-transport-security')""")
            assert hsts and "max-age=" in hsts
            assert await page.locator("#insecure").is_hidden()
    finally:
        await browser.close()
    stranger = await playwright.chromium.launch(**lab.chromium("doctor", None))
    try:
        page = await stranger.new_page()
        with pytest.raises(async_api.Error, match="ERR_CERT_AUTHORITY_INVALID"):
            await page.goto(STAFF_URL)
    finally:
        await stranger.close()


async def test_first_visit_page_offers_the_ca(lab: HttpsLab, playwright: Any) -> None:
    """Issue 11: a PC that does not trust the CA yet opens http://<box>/ and gets the CA (PEM
    and DER), its fingerprint and instructions; every other path there goes to HTTPS."""
    browser = await playwright.chromium.launch(**lab.chromium("doctor", None))
    try:
        page = await browser.new_page(locale="de-DE")
        answer = await page.goto(f"http://{BOX}/")
        assert answer is not None and answer.ok
        assert await page.locator("#fingerprint").text_content() == _fingerprint(lab.ca)
        text = await page.text_content("body") or ""
        for system in ("Windows", "macOS", "Linux", "Firefox"):
            assert system in text
        pem = await page.evaluate("async () => await (await fetch('/praxis-ca.pem')).text()")
        assert pem.encode() == lab.ca.read_bytes()
        der_size = await page.evaluate(
            "async () => (await (await fetch('/praxis-ca.crt')).arrayBuffer()).byteLength")
        assert 300 < der_size < len(pem)
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        with pytest.raises(async_api.Error, match="ERR_CERT_AUTHORITY_INVALID"):
            await page.goto(f"http://{STAFF_NAME}/v/abc?x=1")
        assert f"https://{STAFF_NAME}:{STAFF_PORT}/v/abc?x=1" in requests
    finally:
        await browser.close()


def _handshake(lab: HttpsLab, *options: str) -> subprocess.CompletedProcess[str]:
    """openssl s_client from the doctor's PC to the staff site, with OpenSSL's own defaults
    lifted (no configuration, security level 0), so that the client offers what it is told
    and any refusal is the box's."""
    env = {**os.environ, "OPENSSL_CONF": "/dev/null"}
    return subprocess.run(
        ["ip", "netns", "exec", lab.netns["doctor"], "openssl", "s_client", "-connect",
         f"{BOX}:{STAFF_PORT}", "-servername", STAFF_NAME, "-CAfile", str(lab.ca),
         "-verify_return_error", *options],
        input="", capture_output=True, text=True, timeout=30, env=env)


@pytest.mark.parametrize(("options", "accepted"), [
    (("-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256"), True),
    (("-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384"), True),
    (("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"), True),
    (("-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"), True),
    (("-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"), False),
    (("-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"), False),
    (("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"), False),
    (("-tls1_2", "-cipher", "AES128-GCM-SHA256"), False),  # RSA key exchange, no ECDHE
    (("-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"), False),
], ids=lambda value: " ".join(value) if isinstance(value, tuple) else str(value))
def test_tls_parameters_per_tr_02102_2(lab: HttpsLab, options: tuple[str, ...],
                                       accepted: bool) -> None:
    """R5, R9 (BSI TR-02102-2): TLS 1.2 and 1.3 only; TLS 1.2 with ECDHE and AES-GCM only; TLS 1.3
    with AES-GCM only. Each rule is one handshake from the doctor's PC."""
    done = _handshake(lab, *options)
    if accepted:
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Verify return code: 0 (ok)" in done.stdout
    else:
        assert done.returncode != 0, done.stdout
        # the box refused (an alert from it), the client did not merely decline to try
        assert "alert" in done.stderr or "no peer certificate available" in done.stdout, (
            done.stdout + done.stderr)


def test_https_while_the_vault_is_sealed(tmp_path: Path) -> None:
    """Issue 11, R5: HTTPS does not need the vault: a box provisioned with ``sprechzimmer init``
    that starts again sealed (as after a reboot) answers over HTTPS at once."""
    box_dir = tmp_path / "box"
    box_dir.mkdir()
    with _lan() as netns:
        with running_lan_box(netns["box"], box_dir, None) as box:
            ca = tmp_path / "ca.pem"
            export_practice_ca(netns["box"], box, ca)
        onboarding = tmp_path / "praxis.toml"
        onboarding.write_text(
            '[practice]\nname = "Praxis am Markt"\nbsnr = "123456789"\n'
            'street = "Markt 1"\npostal_code = "01067"\ncity = "Dresden"\n'
            'kv_region = "SN"\n[admin]\nusername = "admin"\n'
            'display_name = "Anna Admin"\npassword = "ein-sehr-langes-Passwort-2026"\n')
        run_in(netns["box"], sys.executable, "-m", "appliance", "--config", str(box.config),
               "init", "--from-file", str(onboarding), "--recovery-key-file",
               str(tmp_path / "sheet.txt"))
        with running_lan_box(netns["box"], box_dir, None):
            answer = run_in(netns["doctor"], sys.executable, "-c", _STATUS_OVER_HTTPS.format(
                url=f"https://{STAFF_NAME}:{STAFF_PORT}/api/status", ca=ca, box=BOX))
    status = json.loads(answer)
    assert status["initialized"] is True and status["sealed"] is True


#: a client that checks the certificate against the CA and the name (sprechzimmer.local is
#: the box's address here, as mDNS would resolve it)
_STATUS_OVER_HTTPS = """
import socket, ssl, urllib.request
resolve = socket.getaddrinfo
socket.getaddrinfo = lambda host, *rest: resolve("{box}" if host.endswith(".local") else host,
                                                 *rest)
context = ssl.create_default_context(cafile="{ca}")
print(urllib.request.urlopen("{url}", context=context, timeout=10).read().decode())
"""


async def test_public_certificate_by_acme_in_the_patients_browser(tmp_path: Path,
                                                                  playwright: Any) -> None:
    """Issue 11, R5: the box obtains the public site's certificate from a real ACME server (pebble,
    HTTP-01 on the box's plain-HTTP port), puts it into the running listener, and the patient's
    Chromium on the internet side, trusting the ACME server's root, opens the public host name
    with the certificate checked."""
    from tests.tls.test_acme import DIRECTORY, running_pebble

    with _lan() as netns:
        # the router forwards the public site and port 80 to the box
        for port in (PUBLIC_PORT, 80):
            run_in(netns["router"], "nft", "add", "rule", "ip", "nat", "prerouting", "iifname",
                   "wan", "tcp", "dport", str(port), "dnat", "to", BOX)
        with running_pebble(tmp_path / "pebble", netns=netns["box"], address=BOX,
                            http01_port=80) as pebble:
            box_dir = tmp_path / "box"
            box_dir.mkdir()
            tls = (f'acme_directory = "{DIRECTORY}"\nacme_email = "it@praxis-beispiel.test"\n'
                   f'acme_ca_bundle = "{pebble.server_ca}"\n')
            with running_lan_box(netns["box"], box_dir, None, tls=tls) as box:
                deadline = time.monotonic() + 60
                while "ACME: certificate for the public site" not in box.log_text():
                    assert time.monotonic() < deadline, box.log_text()
                    await asyncio.sleep(0.2)
                root = tmp_path / "acme-root.pem"
                root.write_text(pebble.root(), "ascii")
                home = trusting_home(tmp_path / "patient-home", {"acme-root": root})
                lab = HttpsLab(netns=netns, box=box, ca=root, said="", directory=tmp_path)
                browser = await playwright.chromium.launch(**lab.chromium("inet", home))
                try:
                    page = await browser.new_page()
                    answer = await page.goto(f"{PUBLIC_URL}/datenschutz")
                    assert answer is not None and answer.ok
                    assert await page.evaluate("window.isSecureContext") is True
                finally:
                    await browser.close()
