"""The staff site's certificate: issued by the practice CA for the box's mDNS name and every LAN
address the staff site listens on; renewed 30 days before it ends and whenever the name or the
addresses change, and swapped into the running listener."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from appliance.clock import Clock
from appliance.interfaces import IPAddress, IPNetwork
from appliance.tls import context as tls_context
from appliance.tls.authority import (
    PracticeCA,
    create_ca,
    fingerprint,
    load_ca,
    mdns_names,
    read_certificate,
    save_ca,
    write_atomically,
    write_private,
)

_LOGGER = logging.getLogger(__name__)

#: a certificate is renewed this long before it ends
RENEW_BEFORE: Final = timedelta(days=30)
LAN_CERT_FILE: Final = "lan.pem"
LAN_KEY_FILE: Final = "lan.key"


@dataclass(frozen=True)
class CertificateInfo:
    """What ``sprechzimmer tls status`` shows of a certificate."""

    role: str
    subject: str
    names: tuple[str, ...]
    not_after: datetime
    fingerprint: str
    issuer: str


def describe(role: str, certificate: x509.Certificate) -> CertificateInfo:
    """The facts of ``certificate`` worth showing."""
    try:
        alternative = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
        names = tuple([*alternative.get_values_for_type(x509.DNSName),
                       *(str(a) for a in alternative.get_values_for_type(x509.IPAddress))])
    except x509.ExtensionNotFound:
        names = ()
    return CertificateInfo(
        role=role, subject=certificate.subject.rfc4514_string(), names=names,
        not_after=certificate.not_valid_after_utc, fingerprint=fingerprint(certificate),
        issuer=certificate.issuer.rfc4514_string())


class LanCertificate:
    """The practice CA and the staff site's certificate in ``directory``.

    :meth:`prepare` makes the CA at first start (for the box's mDNS names and the networks the
    staff site serves) and a certificate for the current name and addresses; :meth:`refresh`
    renews it when it nears its end or the name or addresses changed, into the same
    :class:`ssl.SSLContext` the listeners use.
    """

    def __init__(self, directory: Path, *, hostname: str, clock: Clock) -> None:
        self._directory = directory
        self._hostname = hostname
        self._clock = clock
        self._ca: PracticeCA | None = None
        self._context: ssl.SSLContext | None = None
        self._names: tuple[str, ...] = (f"{hostname}.local",)
        self._addresses: tuple[IPAddress, ...] = ()

    @property
    def certificate_path(self) -> Path:
        return self._directory / LAN_CERT_FILE

    @property
    def key_path(self) -> Path:
        return self._directory / LAN_KEY_FILE

    @property
    def ca(self) -> PracticeCA:
        """The practice CA (made by :meth:`prepare`)."""
        if self._ca is None:
            raise RuntimeError("LanCertificate.prepare() first")
        return self._ca

    @property
    def context(self) -> ssl.SSLContext:
        """The staff site's TLS context; its certificate is renewed in place."""
        if self._context is None:
            self._context = tls_context.server_context(self.certificate_path, self.key_path)
        return self._context

    def prepare(self, *, addresses: Sequence[IPAddress], networks: Sequence[IPNetwork],
                name: str | None = None) -> None:
        """The CA (made once: it may vouch for ``networks``) and a fitting certificate."""
        self._ca = load_ca(self._directory)
        if self._ca is None:
            self._ca = create_ca(practice="Sprechzimmer", names=mdns_names(self._hostname),
                                 networks=_unique(networks), now=self._clock.now())
            save_ca(self._ca, self._directory)
            _LOGGER.info("practice CA made, SHA-256 %s", self._ca.fingerprint)
        self._addresses = tuple(dict.fromkeys(addresses))
        if name is not None:
            self._names = (name,)
        self.refresh()

    def move(self, addresses: Sequence[IPAddress]) -> bool:
        """The staff site listens on ``addresses`` now: a certificate for them if they changed.
        Returns whether one was issued."""
        self._addresses = tuple(dict.fromkeys(addresses))
        return self.refresh()

    def rename(self, name: str) -> bool:
        """The box answers to ``name`` now (another box has the first choice): a certificate for
        it. Returns whether one was issued."""
        self._names = (name,)
        return self.refresh()

    def refresh(self) -> bool:
        """Issue a new certificate if there is none, it ends within 30 days, or the name or the
        addresses changed; returns whether it did."""
        wanted_names, wanted_addresses = self._names, self._addresses
        current = self.current()
        now = self._clock.now()
        if current is not None:
            info = describe("LAN", current)
            fits = set(info.names) == {*wanted_names, *(str(a) for a in wanted_addresses)}
            fresh = info.not_after - now > RENEW_BEFORE
            if fits and fresh and current.issuer == self.ca.certificate.subject:
                return False
        if not self.ca.covers(wanted_names, wanted_addresses):
            _LOGGER.error("the practice CA does not cover %s: browsers will refuse the "
                          "certificate (docs/tls.md: a new CA)",
                          ", ".join([*wanted_names, *(str(a) for a in wanted_addresses)]))
        certificate, key = self.ca.issue(names=wanted_names, addresses=wanted_addresses, now=now)
        write_private(self.key_path, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        chain = certificate.public_bytes(serialization.Encoding.PEM) + self.ca.pem
        write_atomically(self.certificate_path, chain, mode=0o644)
        if self._context is not None:
            tls_context.reload(self._context, self.certificate_path, self.key_path)
        _LOGGER.info("LAN certificate issued for %d names, valid until %s",
                     len(wanted_names) + len(wanted_addresses),
                     certificate.not_valid_after_utc.date().isoformat())
        return True

    def current(self) -> x509.Certificate | None:
        """The certificate in use (the first of the chain file), if any."""
        return read_certificate(self.certificate_path)


def _unique(networks: Sequence[IPNetwork]) -> list[IPNetwork]:
    """``networks`` without those inside another one of them."""
    result: list[IPNetwork] = []
    for network in sorted(set(networks), key=lambda n: (n.version, n.prefixlen)):
        if not any(network.version == other.version and network.subnet_of(other)  # type: ignore[arg-type]
                   for other in result):
            result.append(network)
    return result
