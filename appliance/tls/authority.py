"""The practice CA: made once at first start, trusted by the practice PCs, and able to vouch only
for the box's own mDNS names and the LAN networks it serves (X.509 name constraints, which
browsers enforce for a locally trusted root: a leaked key cannot impersonate any other site)."""

from __future__ import annotations

import functools
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: the CA outlives many leaf certificates; a new CA means trusting it anew on every PC
CA_LIFETIME: Final = timedelta(days=20 * 365)
#: the longest a server certificate may live that every platform accepts from a local root
LEAF_LIFETIME: Final = timedelta(days=397)
#: how many numbered names a box may take when its name is taken on the LAN (``name-2.local``)
NAME_VARIANTS: Final = 9
CA_CERT_FILE: Final = "ca.pem"
CA_KEY_FILE: Final = "ca.key"


def read_certificate(path: Path) -> x509.Certificate | None:
    """The first certificate of the PEM file at ``path`` (None: no such file, or not PEM).
    Parsed once per content: the staff pages ask on every session."""
    try:
        return _parsed(path.read_bytes())
    except OSError:
        return None


@functools.lru_cache(maxsize=16)
def _parsed(pem: bytes) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError:
        return None


def mdns_names(hostname: str) -> list[str]:
    """The ``.local`` names a box called ``hostname`` may use: its own, and the numbered ones it
    takes when another box on the LAN has it (``sprechzimmer-2.local`` …)."""
    return [f"{hostname}.local", *(f"{hostname}-{n}.local" for n in range(2, NAME_VARIANTS + 1))]


def fingerprint(certificate: x509.Certificate) -> str:
    """The SHA-256 fingerprint as browsers and ``openssl x509 -fingerprint`` show it."""
    return ":".join(f"{byte:02X}" for byte in certificate.fingerprint(hashes.SHA256()))


@dataclass(frozen=True)
class PracticeCA:
    """The CA's certificate and key."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the CA certificate, to compare out of band before trusting it."""
        return fingerprint(self.certificate)

    @property
    def pem(self) -> bytes:
        """The CA certificate as PEM (what practice PCs import)."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def der(self) -> bytes:
        """The CA certificate as DER (what Windows and macOS open with a double-click)."""
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def permitted(self) -> tuple[list[str], list[IPNetwork]]:
        """The names and networks the CA may vouch for."""
        constraints = self.certificate.extensions.get_extension_for_class(
            x509.NameConstraints).value
        subtrees = constraints.permitted_subtrees or []
        names = [tree.value for tree in subtrees if isinstance(tree, x509.DNSName)]
        networks = [tree.value for tree in subtrees if isinstance(tree, x509.IPAddress)]
        return names, networks

    def covers(self, names: Iterable[str], addresses: Iterable[IPAddress]) -> bool:
        """Whether a certificate for ``names`` and ``addresses`` lies within the constraints."""
        allowed_names, networks = self.permitted
        return all(
            any(name == allowed or name.endswith("." + allowed) for allowed in allowed_names)
            for name in names
        ) and all(
            any(address.version == net.version and address in net for net in networks)
            for address in addresses
        )

    def issue(self, *, names: Sequence[str], addresses: Sequence[IPAddress], now: datetime,
              lifetime: timedelta = LEAF_LIFETIME) -> tuple[x509.Certificate,
                                                           ec.EllipticCurvePrivateKey]:
        """A server certificate for ``names`` and ``addresses`` with a fresh key."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                names[0] if names else str(addresses[0]))])
        alternative = [*(x509.DNSName(name) for name in names),
                       *(x509.IPAddress(address) for address in addresses)]
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_encipherment=False, content_commitment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName(alternative), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return certificate, key


def create_ca(*, practice: str, names: Sequence[str], networks: Sequence[IPNetwork],
              now: datetime) -> PracticeCA:
    """A new CA (ECDSA P-256) that may vouch only for ``names`` (and their subdomains) and
    addresses in ``networks``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, practice[:64] or "Sprechzimmer"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Sprechzimmer Praxis-CA"),
    ])
    permitted: list[x509.GeneralName] = [
        *(x509.DNSName(name) for name in names),
        *(x509.IPAddress(network) for network in networks),
    ]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, key_encipherment=False, content_commitment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.NameConstraints(permitted_subtrees=permitted,
                                            excluded_subtrees=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    return PracticeCA(certificate, key)


def save_ca(ca: PracticeCA, directory: Path) -> None:
    """Write the CA to ``directory`` (0700): the key 0600, the certificate 0644."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    write_private(directory / CA_KEY_FILE, ca.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    write_atomically(directory / CA_CERT_FILE, ca.pem, mode=0o644)


def load_ca(directory: Path) -> PracticeCA | None:
    """The CA kept in ``directory``, or None if there is none yet."""
    cert_path, key_path = directory / CA_CERT_FILE, directory / CA_KEY_FILE
    if not cert_path.exists() or not key_path.exists():
        return None
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path}: kein ECDSA-Schlüssel")
    return PracticeCA(certificate, key)


def write_private(path: Path, data: bytes) -> None:
    """Write a key readable by the box's user alone."""
    write_atomically(path, data, mode=0o600)


def write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    """Write ``data`` to ``path`` whole or not at all (a crash leaves the old file)."""
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
