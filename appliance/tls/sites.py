"""Which of the box's listen addresses serve HTTPS, and with which certificate.

Plain HTTP only where browsers count it as secure — a loopback address, as ``make run`` uses —
or when the admin switched TLS off (``[tls] mode = "off"``; the staff site then warns). Every
other address serves HTTPS: the staff site with the practice CA's certificate, the public site
with the public certificate.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from urllib.parse import urlsplit

from appliance.clock import Clock
from appliance.config import Settings
from appliance.interfaces import InterfaceAddress, is_loopback, served_addresses
from appliance.tls.acme import AcmeCertificates
from appliance.tls.lan import CertificateInfo, LanCertificate, describe
from appliance.tls.public import PublicCertificate

_LOGGER = logging.getLogger(__name__)

#: how often the certificates are looked at (renewal, changed files)
CHECK_EVERY_S: Final = 3600.0
#: how often ACME's schedule is looked at (a due renewal, a retry after a failure)
ACME_TICK_S: Final = 30.0
FIRST_ACME_DELAY_S: Final = 2.0


@dataclass(frozen=True)
class PublicState:
    """The public site's certificate as the staff pages show it."""

    #: "files", "acme" or "stand-in"
    source: str
    not_after: datetime | None
    #: why the last ACME attempt failed (None: it worked, or no ACME)
    error: str | None


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def staff_lan_addresses(settings: Settings) -> list[InterfaceAddress]:
    """The addresses the staff site is reached at on the LAN: not loopback, not on an internet
    line's own interface (``[[turn.uplinks]] interface``), with their networks."""
    return [entry for entry in served_addresses(settings.web.staff_host)
            if entry.interface not in settings.turn.uplink_interfaces]


class BoxTls:
    """The TLS of both sites of one box."""

    def __init__(self, settings: Settings, *, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock
        self.enabled = settings.tls.mode != "off"
        web = settings.web
        self.staff_https = self.enabled and any(not is_loopback(h) for h in web.staff_host)
        self.public_https = self.enabled and any(not is_loopback(h) for h in web.public_host)
        self.lan: LanCertificate | None = None
        self.public: PublicCertificate | None = None
        if self.staff_https:
            self.lan = LanCertificate(settings.tls_dir, hostname=settings.tls.hostname,
                                      clock=clock)
            served = staff_lan_addresses(settings)
            self.lan.prepare(addresses=[entry.ip for entry in served],
                             networks=[entry.network for entry in served])
        if self.public_https:
            hosts = [h for h in (urlsplit(url).hostname or "" for url in web.public_urls)
                     if h and not _is_address(h)]
            tls = settings.tls
            acme = None
            if tls.acme_directory and hosts and tls.public_certificate is None:
                acme = AcmeCertificates(
                    settings.tls_dir / "acme", hosts=hosts, directory_url=tls.acme_directory,
                    email=tls.acme_email, clock=clock, ca_bundle=tls.acme_ca_bundle)
            self.public = PublicCertificate(
                settings.tls_dir, hosts=hosts, clock=clock, certificate=tls.public_certificate,
                key=tls.public_private_key, acme=acme)

    def challenge_answer(self, token: str) -> str | None:
        """The key authorization of a running ACME HTTP-01 challenge (None: none such)."""
        acme = self.public.acme if self.public is not None else None
        return None if acme is None else acme.answer(token)

    def public_state(self) -> PublicState | None:
        """Where the public site's certificate comes from, until when, and whether getting
        a new one failed (for the staff pages)."""
        if self.public is None:
            return None
        info = self.public.info()
        acme = self.public.acme
        return PublicState(source=self.public.source,
                           not_after=info.not_after if info else None,
                           error=acme.state().error if acme is not None else None)

    def staff_context(self, host: str) -> ssl.SSLContext | None:
        """The staff site's TLS on ``host`` (None: plain HTTP)."""
        if self.lan is None or is_loopback(host):
            return None
        return self.lan.context

    def public_context(self, host: str) -> ssl.SSLContext | None:
        """The public site's TLS on ``host`` (None: plain HTTP)."""
        if self.public is None or is_loopback(host):
            return None
        return self.public.context

    def certificates(self) -> list[CertificateInfo]:
        """Every certificate the box serves, its CA first."""
        found: list[CertificateInfo] = []
        if self.lan is not None:
            found.append(describe("Praxis-CA", self.lan.ca.certificate))
            current = self.lan.current()
            if current is not None:
                found.append(describe("Praxisseite (LAN)", current))
        if self.public is not None and (info := self.public.info()) is not None:
            found.append(info)
        return found

    def refresh(self) -> None:
        """Renew what nears its end, reload what changed on disk."""
        if self.lan is not None:
            self.lan.move([entry.ip for entry in staff_lan_addresses(self._settings)])
        if self.public is not None:
            self.public.refresh()

    def renew_public(self) -> None:
        """Ask the ACME server when due; a new certificate goes into the running listener."""
        acme = self.public.acme if self.public is not None else None
        if acme is not None and acme.renew_if_due() and self.public is not None:
            self.public.refresh()

    async def keep_fresh(self, every_s: float = CHECK_EVERY_S, tick_s: float = ACME_TICK_S,
                         ) -> None:
        """Until cancelled: ACME when due (every ``tick_s``: its retries are minutes apart),
        :meth:`refresh` every ``every_s`` seconds."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(FIRST_ACME_DELAY_S)  # the plain-HTTP site listens by then
        next_refresh = loop.time() + every_s
        while True:
            try:
                await loop.run_in_executor(None, self.renew_public)
                if loop.time() >= next_refresh:
                    next_refresh = loop.time() + every_s
                    await loop.run_in_executor(None, self.refresh)
            except Exception:  # a full disk, a broken file: try again at the next check
                _LOGGER.exception("certificate check failed")
            await asyncio.sleep(tick_s)
