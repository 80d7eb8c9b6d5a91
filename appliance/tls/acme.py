"""The public site's certificate by ACME (RFC 8555), HTTP-01 on the public site's port 80.

The client is the ``acme`` package (with ``josepy``): the protocol library of certbot, kept by
the EFF and Let's Encrypt, used by far more installations than any other Python ACME client, and
it does only the protocol — keys, files and timing stay ours. It is synchronous (``requests``),
so the box runs it in a worker thread.

The account key (ECDSA P-256) and the certificate survive restarts (``<tls dir>/acme/``, keys
0600). A certificate is renewed when a third of its lifetime is left; a failed attempt is tried
again after 1, 2, 4 … minutes, at most every six hours, and the staff pages show the failure.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

import josepy as jose
from acme import challenges, client, crypto_util, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from appliance import __version__
from appliance.clock import Clock
from appliance.tls.authority import read_certificate, write_atomically, write_private

_LOGGER = logging.getLogger(__name__)

ACCOUNT_KEY: Final = "account.key"
CERTIFICATE: Final = "public.pem"
KEY: Final = "public.key"
FIRST_RETRY: Final = timedelta(minutes=1)
LAST_RETRY: Final = timedelta(hours=6)
#: how long one issuance may take (challenges validated, order finalized)
ORDER_DEADLINE: Final = timedelta(seconds=90)


@dataclass(frozen=True)
class AcmeState:
    """What the staff pages show about the ACME certificate."""

    not_after: datetime | None
    #: the last attempt's error (None: the last attempt worked, or none was due yet)
    error: str | None
    next_attempt: datetime | None


class AcmeCertificates:
    """Obtains and renews the certificate for ``hosts`` from the ACME server at
    ``directory_url``; answers its HTTP-01 challenges (:meth:`answer`)."""

    def __init__(self, directory: Path, *, hosts: Sequence[str], directory_url: str,
                 email: str, clock: Clock, ca_bundle: Path | None = None) -> None:
        self._directory = directory
        self._hosts = list(hosts)
        self._url = directory_url
        self._email = email
        self._clock = clock
        self._ca_bundle = ca_bundle
        self._challenges: dict[str, str] = {}
        self._lock = threading.Lock()
        self._error: str | None = None
        self._failures = 0
        self._next_attempt: datetime | None = None

    @property
    def certificate_path(self) -> Path:
        return self._directory / CERTIFICATE

    @property
    def key_path(self) -> Path:
        return self._directory / KEY

    def answer(self, token: str) -> str | None:
        """The key authorization for a challenge's ``token`` (None: no such challenge)."""
        return self._challenges.get(token)

    def current(self) -> x509.Certificate | None:
        """The certificate obtained last, if any."""
        return read_certificate(self.certificate_path)

    def state(self) -> AcmeState:
        current = self.current()
        return AcmeState(not_after=current.not_valid_after_utc if current else None,
                         error=self._error, next_attempt=self._next_attempt)

    def due(self) -> bool:
        """Whether to ask now: no certificate, a third of its lifetime left or less, or
        names that changed — and no failed attempt waiting for its retry time."""
        now = self._clock.now()
        if self._next_attempt is not None and now < self._next_attempt:
            return False
        current = self.current()
        if current is None:
            return True
        names = set(current.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName))
        lifetime = current.not_valid_after_utc - current.not_valid_before_utc
        return names != set(self._hosts) or current.not_valid_after_utc - now <= lifetime / 3

    def renew_if_due(self) -> bool:
        """Obtain a certificate if :meth:`due`; returns whether a new one was written. A
        failure is logged, kept for the staff pages, and tried again later (backoff)."""
        if not self.due():
            return False
        try:
            self.obtain()
        except Exception as exc:  # the server, the network, a refused challenge: try later
            self._failures += 1
            wait = min(FIRST_RETRY * 2 ** (self._failures - 1), LAST_RETRY)
            self._next_attempt = self._clock.now() + wait
            self._error = _describe(exc)
            _LOGGER.warning("ACME: no certificate for the public site (%s); next try in %s",
                            self._error, wait)
            return False
        self._failures, self._next_attempt, self._error = 0, None, None
        return True

    def obtain(self) -> None:
        """One issuance: account, order, HTTP-01 challenges, finalization; the certificate and
        its key are written whole or not at all."""
        with self._lock:
            net = client.ClientNetwork(
                self._account_key(), alg=jose.ES256, user_agent=f"sprechzimmer/{__version__}",
                verify_ssl=str(self._ca_bundle) if self._ca_bundle else True)  # type: ignore[arg-type]
            acme = client.ClientV2(client.ClientV2.get_directory(self._url, net), net=net)
            registration = messages.NewRegistration.from_data(
                email=self._email or None, terms_of_service_agreed=True)
            try:
                acme.new_account(registration)
            except errors.ConflictError as existing:  # the key's account from before
                net.account = messages.RegistrationResource(uri=existing.location,
                                                            body=messages.Registration())
            key = ec.generate_private_key(ec.SECP256R1())
            key_pem = key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
            order = acme.new_order(crypto_util.make_csr(key_pem, self._hosts))
            try:
                for authorization in order.authorizations:
                    if authorization.body.status == messages.STATUS_VALID:
                        continue  # validated recently: the server reuses it
                    challenge = next(c for c in authorization.body.challenges
                                     if isinstance(c.chall, challenges.HTTP01))
                    response, validation = challenge.response_and_validation(net.key)
                    self._challenges[challenge.chall.encode("token")] = validation
                    acme.answer_challenge(challenge, response)
                deadline = datetime.now() + ORDER_DEADLINE
                order = acme.poll_and_finalize(order, deadline=deadline)
            finally:
                self._challenges.clear()
            new_key = self._directory / f"{KEY}.new"
            new_certificate = self._directory / f"{CERTIFICATE}.new"
            write_private(new_key, key_pem)
            write_atomically(new_certificate, order.fullchain_pem.encode("ascii"), mode=0o644)
            # the pair changes together (the reload follows in the same thread): key first,
            # then the certificate that names it
            new_key.replace(self.key_path)
            new_certificate.replace(self.certificate_path)
            current = self.current()
            _LOGGER.info("ACME: certificate for the public site until %s",
                         current.not_valid_after_utc.date() if current else "?")

    def _account_key(self) -> jose.JWKEC:
        path = self._directory / ACCOUNT_KEY
        if not path.exists():
            self._directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_private(path, ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()))
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        return jose.JWKEC(key=key)


def _describe(exc: Exception) -> str:
    """A short, log-safe description of why an attempt failed."""
    if isinstance(exc, messages.Error):
        return f"{exc.typ.rsplit(':', 1)[-1]}: {exc.detail}"[:300]
    return f"{type(exc).__name__}: {exc}"[:300]
