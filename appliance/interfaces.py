"""The box's network interfaces: which addresses it has, and on which networks."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

import ifaddr

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


@dataclass(frozen=True)
class InterfaceAddress:
    """One address of one interface, with the network it is on."""

    interface: str
    address: IPInterface

    @property
    def ip(self) -> IPAddress:
        return self.address.ip

    @property
    def network(self) -> IPNetwork:
        return self.address.network


def interface_addresses() -> list[InterfaceAddress]:
    """Every address of every interface (loopback included)."""
    found = []
    for adapter in ifaddr.get_adapters():
        for entry in adapter.ips:
            text = entry.ip if isinstance(entry.ip, str) else entry.ip[0]
            try:
                found.append(InterfaceAddress(
                    adapter.name, ipaddress.ip_interface(f"{text}/{entry.network_prefix}")))
            except ValueError:
                continue
    return found


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is on loopback: a secure context to
    browsers even over plain HTTP."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    """Whether ``host`` means every address (``0.0.0.0``, ``::``)."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def served_addresses(hosts: Iterable[str],
                     known: list[InterfaceAddress] | None = None) -> list[InterfaceAddress]:
    """The addresses a site listening on ``hosts`` is reached at, with their networks: each
    listed address (on its interface's network, else alone), every address of the box for a
    wildcard. Loopback and link-local addresses are left out: no practice PC uses them."""
    known = interface_addresses() if known is None else known
    result: list[InterfaceAddress] = []
    for host in hosts:
        if is_wildcard(host):
            version = ipaddress.ip_address(host).version
            result += [entry for entry in known if entry.ip.version == version]
            continue
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            continue  # a name: not an address of the certificate
        match = next((entry for entry in known if entry.ip == address), None)
        result.append(match or InterfaceAddress(
            "?", ipaddress.ip_interface(f"{address}/{address.max_prefixlen}")))
    unique = {entry.ip: entry for entry in result
              if not entry.ip.is_loopback and not entry.ip.is_link_local}
    return list(unique.values())
