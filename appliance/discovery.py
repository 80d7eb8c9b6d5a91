"""Discovery: the box announces its staff site on the practice LAN by mDNS/DNS-SD (zeroconf), and
``sprechzimmer discover`` finds the boxes on the LAN.

The box takes the name ``<hostname>.local`` (``[tls] hostname``); when another box on the LAN has
it, the next free one of ``<hostname>-2.local`` … ``-9.local`` instead of fighting over it (its
certificate follows the name). It announces ``_https._tcp`` with TXT properties: product,
practice name (sanitised, at most 60 characters; only while the vault is open), version, path and
the practice CA's fingerprint. Only on the staff site's LAN addresses, never on an uplink's
interface (``[[turn.uplinks]] interface``); a goodbye on shutdown.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from zeroconf import (
    AddressResolver,
    InterfaceChoice,
    IPVersion,
    NonUniqueNameException,
    ServiceInfo,
    ServiceStateChange,
    Zeroconf,
)
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from appliance.tls.authority import NAME_VARIANTS

_LOGGER = logging.getLogger(__name__)

SERVICE_TYPE: Final = "_https._tcp.local."
#: the TXT property that tells a Sprechzimmer box from any other HTTPS service on the LAN
PRODUCT: Final = "sprechzimmer"
MAX_PRACTICE_CHARS: Final = 60
#: how long a name is asked for before the box takes it
PROBE_TIMEOUT_MS: Final = 1500


def host_labels(hostname: str) -> list[str]:
    """The host names a box called ``hostname`` tries, in order."""
    return [hostname, *(f"{hostname}-{n}" for n in range(2, NAME_VARIANTS + 1))]


def sanitise(text: str, limit: int = MAX_PRACTICE_CHARS) -> str:
    """``text`` as a TXT value: printable characters only, one line, at most ``limit``."""
    printable = "".join(ch if unicodedata.category(ch)[0] not in "CZ" or ch == " " else " "
                        for ch in text)
    return " ".join(printable.split())[:limit]


@dataclass(frozen=True)
class FoundBox:
    """A box that answered on the LAN."""

    instance: str
    host: str
    addresses: tuple[str, ...]
    port: int
    version: str
    practice: str
    ca_fingerprint: str
    path: str = "/"

    @property
    def url(self) -> str:
        """The staff site's address by name."""
        port = "" if self.port == 443 else f":{self.port}"
        return f"https://{self.host.rstrip('.')}{port}{self.path}"


class Announcer:
    """The box's announcement on its LAN addresses."""

    def __init__(self, *, hostname: str, addresses: Sequence[str], port: int, version: str,
                 ca_fingerprint: Callable[[], str], practice_name: Callable[[], str | None],
                 renamed: Callable[[str], None]) -> None:
        self._hostname = hostname
        self._addresses = list(addresses)
        self._port = port
        self._version = version
        self._fingerprint = ca_fingerprint
        self._practice = practice_name
        self._renamed = renamed
        self._zeroconf: AsyncZeroconf | None = None
        self._info: ServiceInfo | None = None
        #: the name in use (``sprechzimmer-2.local``), once announced
        self.name: str | None = None

    def _properties(self) -> dict[str, str]:
        properties = {"product": PRODUCT, "version": self._version, "path": "/",
                      "ca": self._fingerprint()}
        practice = self._practice()
        if practice:
            properties["practice"] = sanitise(practice)
        return properties

    async def start(self) -> str:
        """Take the first free name and announce the staff site under it; returns the name."""
        versions = {ipaddress.ip_address(a).version for a in self._addresses}
        self._zeroconf = AsyncZeroconf(
            interfaces=self._addresses,
            ip_version=IPVersion.V4Only if versions == {4} else (
                IPVersion.V6Only if versions == {6} else IPVersion.All))
        own = {ipaddress.ip_address(a) for a in self._addresses}
        for label in host_labels(self._hostname):
            server = f"{label}.local."
            resolver = AddressResolver(server)
            if await resolver.async_request(self._zeroconf.zeroconf, PROBE_TIMEOUT_MS):
                answered = {ipaddress.ip_address(a) for a in resolver.parsed_addresses()}
                if not answered <= own:
                    continue  # another box answers to it
            info = AsyncServiceInfo(
                SERVICE_TYPE, f"{label}.{SERVICE_TYPE}", server=server, port=self._port,
                parsed_addresses=self._addresses, properties=self._properties())
            try:
                # probing, then the announcements (the second await: until they are sent)
                await (await self._zeroconf.async_register_service(info,
                                                                   allow_name_change=False))
            except NonUniqueNameException:
                continue  # it started at the same moment and won the probe
            self._info, self.name = info, f"{label}.local"
            _LOGGER.info("announced as %s on %s", self.name, ", ".join(self._addresses))
            self._renamed(self.name)
            return self.name
        raise RuntimeError(f"no free name among {host_labels(self._hostname)}")

    async def update(self) -> None:
        """Announce changed properties (e.g. the practice name once the vault is open)."""
        if self._zeroconf is None or self._info is None:
            return
        info = AsyncServiceInfo(
            SERVICE_TYPE, self._info.name, server=self._info.server, port=self._port,
            parsed_addresses=self._addresses, properties=self._properties())
        await (await self._zeroconf.async_update_service(info))
        self._info = info

    async def close(self) -> None:
        """Say goodbye (the PCs drop the box at once) and stop."""
        if self._zeroconf is None:
            return
        try:
            if self._info is not None:
                # the second await: until the goodbyes are sent
                await (await self._zeroconf.async_unregister_service(self._info))
                _LOGGER.info("said goodbye as %s", self.name)
        finally:
            await self._zeroconf.async_close()
            self._zeroconf = None


async def discover(timeout_s: float, *, interfaces: Sequence[str] | None = None
                   ) -> list[FoundBox]:
    """The boxes that answer on the LAN within ``timeout_s`` seconds."""
    zeroconf = AsyncZeroconf(interfaces=list(interfaces) if interfaces else InterfaceChoice.All)
    names: set[str] = set()

    def changed(zeroconf: Zeroconf, service_type: str, name: str,
                state_change: ServiceStateChange) -> None:
        if state_change is not ServiceStateChange.Removed:
            names.add(name)

    browser = AsyncServiceBrowser(zeroconf.zeroconf, SERVICE_TYPE, handlers=[changed])
    try:
        await asyncio.sleep(timeout_s)
        found = []
        for name in sorted(names):
            info = AsyncServiceInfo(SERVICE_TYPE, name)
            if not await info.async_request(zeroconf.zeroconf, 1500):
                continue
            properties = {key.decode(): (value or b"").decode("utf-8", "replace")
                          for key, value in info.properties.items()}
            if properties.get("product") != PRODUCT:
                continue
            found.append(FoundBox(
                instance=name, host=info.server or "", port=info.port or 443,
                addresses=tuple(info.parsed_scoped_addresses()),
                version=properties.get("version", ""), practice=properties.get("practice", ""),
                ca_fingerprint=properties.get("ca", ""), path=properties.get("path", "/")))
        return found
    finally:
        await browser.async_cancel()
        await zeroconf.async_close()
