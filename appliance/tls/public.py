"""The public site's certificate: for the practice's public host names, from files (e.g. from the
practice's provider) or by ACME (``acme.py``); until one is there, a self-signed stand-in, so
that the site still answers over HTTPS (browsers warn; the staff pages say why)."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance.clock import Clock
from appliance.tls import context as tls_context
from appliance.tls.acme import AcmeCertificates
from appliance.tls.authority import read_certificate, write_atomically, write_private
from appliance.tls.lan import CertificateInfo, describe

_LOGGER = logging.getLogger(__name__)

STAND_IN_CERT: Final = "public-stand-in.pem"
STAND_IN_KEY: Final = "public-stand-in.key"


class PublicCertificate:
    """The public site's TLS context and where its certificate comes from."""

    def __init__(self, directory: Path, *, hosts: Sequence[str], clock: Clock,
                 certificate: Path | None = None, key: Path | None = None,
                 acme: AcmeCertificates | None = None) -> None:
        self._directory = directory
        self._hosts = list(hosts)
        self._clock = clock
        self._files = (certificate, key) if certificate and key else None
        #: where the certificate comes from when there are no files
        self.acme = None if self._files else acme
        self._context: ssl.SSLContext | None = None
        self._loaded: tuple[Path, Path, float] | None = None

    @property
    def source(self) -> str:
        """"files", "acme", or "stand-in" (self-signed, until ACME delivers: no browser
        trusts it)."""
        if self._files:
            return "files"
        if self.acme is not None and self.acme.current() is not None:
            return "acme"
        return "stand-in"

    @property
    def context(self) -> ssl.SSLContext:
        """The public site's TLS context; a new certificate goes into it in place."""
        if self._context is None:
            certificate, key = self._paths()
            self._context = tls_context.server_context(certificate, key)
            self._loaded = (certificate, key, _mtime(certificate))
        return self._context

    def refresh(self) -> bool:
        """Load the files again if they changed (a provider's renewal); returns whether."""
        certificate, key = self._paths()
        if self._context is None or self._loaded == (certificate, key, _mtime(certificate)):
            return False
        tls_context.reload(self._context, certificate, key)
        self._loaded = (certificate, key, _mtime(certificate))
        _LOGGER.info("public certificate loaded anew")
        return True

    def info(self) -> CertificateInfo | None:
        """The certificate in use."""
        certificate = read_certificate(self._paths()[0])
        return None if certificate is None else describe("Patientenseite", certificate)

    def _paths(self) -> tuple[Path, Path]:
        if self._files:
            return self._files  # type: ignore[return-value]
        if self.acme is not None and self.acme.current() is not None:
            return self.acme.certificate_path, self.acme.key_path
        certificate = self._directory / STAND_IN_CERT
        key = self._directory / STAND_IN_KEY
        if not certificate.exists() or not key.exists():
            self._make_stand_in(certificate, key)
        return certificate, key

    def _make_stand_in(self, certificate_path: Path, key_path: Path) -> None:
        _LOGGER.warning("no certificate for the public site yet: a self-signed stand-in "
                        "(patients' browsers will warn) – docs/tls.md")
        self._directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                             (self._hosts or ["sprechzimmer"])[0][:64])])
        now = self._clock.now()
        certificate = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(host) for host in self._hosts] or [x509.DNSName("sprechzimmer")]),
                critical=False)
            .sign(key, hashes.SHA256()))
        write_private(key_path, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        write_atomically(certificate_path, certificate.public_bytes(serialization.Encoding.PEM),
                         mode=0o644)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
