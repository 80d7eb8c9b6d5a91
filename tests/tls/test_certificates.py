"""The practice CA and the staff site's certificate (issue 11, docs/tls.md)."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from appliance.clock import ManualClock
from appliance.tls.authority import LEAF_LIFETIME, load_ca
from appliance.tls.lan import LanCertificate, describe

LAN = ipaddress.ip_network("192.0.2.0/24")
BOX = ipaddress.ip_address("192.0.2.10")
START = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def _verify(ca_pem: bytes, chain: bytes, name: str, at: datetime) -> x509.Certificate:
    """Verify ``chain`` for ``name`` (a DNS name or an IP) against the CA, name constraints
    included, as a browser does."""
    leaf, *rest = x509.load_pem_x509_certificates(chain)
    store = Store([x509.load_pem_x509_certificate(ca_pem)])
    try:
        subject: x509.DNSName | x509.IPAddress = x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        subject = x509.DNSName(name)
    verifier = PolicyBuilder().store(store).time(at).build_server_verifier(subject)
    verifier.verify(leaf, rest)
    return leaf


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def lan(tmp_path: Path, clock: ManualClock) -> LanCertificate:
    certificate = LanCertificate(tmp_path / "tls", hostname="sprechzimmer", clock=clock)
    certificate.prepare(addresses=[BOX], networks=[LAN])
    return certificate


def test_ca_and_certificate_chain_with_the_right_names(lan: LanCertificate,
                                                      tmp_path: Path) -> None:
    """R5: the LAN certificate chains to the practice CA and names the mDNS name and the address;
    it lives at most 397 days; the keys are the service's alone (0600 in a 0700 folder)."""
    chain = lan.certificate_path.read_bytes()
    for name in ("sprechzimmer.local", "192.0.2.10"):
        leaf = _verify(lan.ca.pem, chain, name, START)
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc <= LEAF_LIFETIME + timedelta(
        minutes=5)
    assert set(describe("LAN", leaf).names) == {"sprechzimmer.local", "192.0.2.10"}
    directory = tmp_path / "tls"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for key in ("ca.key", "lan.key"):
        assert stat.S_IMODE((directory / key).stat().st_mode) == 0o600
    with pytest.raises(VerificationError):
        _verify(lan.ca.pem, chain, "192.0.2.11", START)  # another address: not this one's


def test_the_ca_cannot_vouch_for_other_sites(lan: LanCertificate) -> None:
    """Name constraints: a certificate the CA signs for another site (bank.example), or for an
    address outside the LAN, is refused by verification, even with an in-range address."""
    for names, addresses, asked in (
        (["bank.example"], [BOX], "bank.example"),
        (["sprechzimmer.local"], [ipaddress.ip_address("203.0.113.7")], "203.0.113.7"),
        (["sprechzimmer.local.evil.example"], [], "sprechzimmer.local.evil.example"),
    ):
        leaf, _ = lan.ca.issue(names=names, addresses=addresses, now=START)
        chain = leaf.public_bytes(serialization.Encoding.PEM)
        with pytest.raises(VerificationError):
            _verify(lan.ca.pem, chain, asked, START)
    # the numbered name a second box takes is within the constraints
    leaf, _ = lan.ca.issue(names=["sprechzimmer-2.local"], addresses=[], now=START)
    _verify(lan.ca.pem, leaf.public_bytes(serialization.Encoding.PEM), "sprechzimmer-2.local",
            START)


def test_renewal_before_the_end_and_on_changes(lan: LanCertificate, clock: ManualClock,
                                               tmp_path: Path) -> None:
    """Nothing is renewed while the certificate is fresh; 30 days before its end it is; a new
    name or address gets a new certificate at once. The CA is made once."""
    first = lan.current()
    assert first is not None and lan.refresh() is False
    clock.advance(timedelta(days=300))
    assert lan.refresh() is False
    clock.advance(timedelta(days=70))  # 27 days left
    assert lan.refresh() is True
    renewed = lan.current()
    assert renewed is not None and renewed.serial_number != first.serial_number
    _verify(lan.ca.pem, lan.certificate_path.read_bytes(), "sprechzimmer.local", clock.now())
    assert lan.rename("sprechzimmer-2.local") is True
    _verify(lan.ca.pem, lan.certificate_path.read_bytes(), "sprechzimmer-2.local", clock.now())
    assert lan.move([BOX, ipaddress.ip_address("192.0.2.20")]) is True
    _verify(lan.ca.pem, lan.certificate_path.read_bytes(), "192.0.2.20", clock.now())
    again = LanCertificate(tmp_path / "tls", hostname="sprechzimmer", clock=clock)
    again.prepare(addresses=[BOX], networks=[LAN])
    assert again.ca.fingerprint == lan.ca.fingerprint == load_ca(tmp_path / "tls").fingerprint


async def test_hot_swap_keeps_open_connections(tmp_path: Path) -> None:
    """A renewed certificate goes into the running listener: a new connection gets it, one
    that was open before keeps working."""
    # the real client checks validity against the real time: the first certificate is from
    # 390 days ago (a week left), the renewal from ten days ago
    clock = ManualClock(datetime.now(UTC) - timedelta(days=390))
    lan = LanCertificate(tmp_path / "tls", hostname="sprechzimmer", clock=clock)
    lan.prepare(addresses=[BOX], networks=[LAN])

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.readline():
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=lan.context)
    port = server.sockets[0].getsockname()[1]
    client = ssl.create_default_context(cadata=lan.ca.pem.decode())
    client.check_hostname = False  # 127.0.0.1 is not in the certificate; the chain is checked

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return reader, writer, x509.load_der_x509_certificate(der).serial_number

    async with server:
        old_reader, old_writer, old_serial = await connect()
        clock.advance(timedelta(days=380))
        assert lan.refresh() is True
        new_reader, new_writer, new_serial = await connect()
        assert new_serial != old_serial and new_serial == lan.current().serial_number
        for reader, writer in ((old_reader, old_writer), (new_reader, new_writer)):
            writer.write(b"hallo\n")
            assert await reader.readline() == b"hallo\n"
            writer.close()
