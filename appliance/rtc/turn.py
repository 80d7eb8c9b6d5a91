"""The box's TURN relay: short-lived credentials, coturn's configuration, firewall rule, probe.

Design C of ``TURN.md`` (``docs/turn.md`` describes it as built): coturn on the box's LAN address,
``external-ip=PUBLIC/LAN`` per uplink, only the box's own LAN addresses allowed as peers (relay ↔
relay inside the box), every private and special range denied, no TCP relay, and an nft rule on
the box's input hook that keeps relayed packets away from the box's own services. Patients get
``turn:`` URLs with the public host of each uplink, the doctor gets the box's LAN address.

The TURN secret lives only on the box: it is in coturn's configuration file (mode 0600) and in
the credentials' HMAC, never in a log line, a ``repr`` or a page.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from aioice import stun
from aioice.turn import TurnClientUdpProtocol

from appliance.clock import Clock
from appliance.config import TurnSettings, turn_secret
from appliance.errors import ConfigError
from appliance.i18n import translate

_LOGGER = logging.getLogger(__name__)

#: roles whose browser (or peer) sits in the practice LAN and reaches the box directly
LAN_ROLES: Final = frozenset({"doctor", "box"})
#: one part of a credential's binding: record ids and participant ids, nothing personal
_BINDING_PART: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: what the relay must never reach (TURN.md design C, plus multicast); coturn wants from-to
DENIED_PEER_NETWORKS: Final = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4",
    "240.0.0.0/4",
    "::1/128", "64:ff9b::/96", "::ffff:0:0/96", "fc00::/7", "fe80::/10", "ff00::/8",
))
HEALTH_CHECK_BINDING: Final = ("box", "health")
NFT_TABLE: Final = "sprechzimmer_turn"
#: all of IPv6 for coturn when IPv4 peers must stay possible: a range starting at "::" counts as
#: "any address" there and denied IPv4 peers too (measured, coturn 4.6.1: "A peer IP
#: 203.0.113.99 denied in the range: ::-ffff:…"); "::" itself is no peer anyway
ALL_IPV6_BUT_UNSPECIFIED: Final = "::1-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"


# --- credentials ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TurnCredentials:
    """A TURN REST API credential: ``<expiry>:<appointment>.<participant>`` and its HMAC."""

    username: str
    password: str = field(repr=False)
    expires_at: int

    @classmethod
    def issue(
        cls, secret: str, bound_to: tuple[str, str], *, ttl_s: int, now: float
    ) -> TurnCredentials:
        """A credential for one participant of one appointment, valid ``ttl_s`` from ``now``."""
        for part in bound_to:
            if not _BINDING_PART.fullmatch(part):
                raise ValueError("bound_to: (appointment id, participant id) from A-Z a-z 0-9 _ -")
        expires_at = int(now) + ttl_s
        username = f"{expires_at}:{'.'.join(bound_to)}"
        return cls(username=username, password=password_for(secret, username),
                   expires_at=expires_at)

    @property
    def bound_to(self) -> tuple[str, str]:
        """The (appointment id, participant id) the credential was issued for."""
        appointment, _, participant = self.username.partition(":")[2].partition(".")
        return appointment, participant

    def expired(self, now: float) -> bool:
        """Whether coturn refuses the credential at ``now`` (it accepts it up to the second)."""
        return now > self.expires_at


def password_for(secret: str, username: str) -> str:
    """``base64(HMAC-SHA1(secret, username))``: what coturn's ``use-auth-secret`` computes."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def read_turn_secret(settings: TurnSettings) -> str:
    """The TURN secret: ``[turn] secret`` if set, else the contents of ``secret_file``."""
    if settings.secret:
        return settings.secret
    path = settings.secret_file
    try:
        mode = path.stat().st_mode
        text = path.read_text("utf-8").strip()
    except OSError as exc:
        raise ConfigError(setting="turn.secret_file", value=str(path), source="",
                          allowed=f"eine lesbare Datei mit dem TURN-Geheimnis ({exc.strerror})",
                          ) from None
    if mode & 0o007:
        raise ConfigError(setting="turn.secret_file", value=str(path), source="",
                          allowed="die Datei darf nicht für alle lesbar sein (chmod 600)")
    try:
        if not turn_secret(text):
            raise ValueError("die Datei ist leer")
    except ValueError as exc:
        raise ConfigError(setting="turn.secret_file", value=str(path), source="",
                          allowed=f"ihr Inhalt: {exc}") from None
    return text


class TurnRelay:
    """Who gets which TURN URLs: patients the public hosts, the doctor the box's LAN address."""

    def __init__(self, settings: TurnSettings, *, secret: str | None = None,
                 clock: Clock | None = None) -> None:
        self._settings = settings
        self._clock = clock or Clock()
        self._secret = (secret or read_turn_secret(settings)) if settings.enabled else ""
        self._healthy: frozenset[str] | None = None
        #: keys the participants' ids in TURN usernames (per process: they only need to be opaque)
        self._id_key = os.urandom(32)

    @property
    def enabled(self) -> bool:
        """Whether calls get a relay at all (off in the embedded laptop default)."""
        return self._settings.enabled

    def mark_healthy(self, public_hosts: Iterable[str] | None) -> None:
        """Advertise only these uplinks to patients (None: all); from the uplink monitor."""
        self._healthy = None if public_hosts is None else frozenset(public_hosts)

    def opaque_id(self, key: str) -> str:
        """A participant's id in a TURN username: coturn logs usernames, and a login name (often
        a surname) must not appear there; any login name works, dots included."""
        digest = hashlib.blake2b(key.encode("utf-8"), key=self._id_key, digest_size=12).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii")

    def credentials_for(self, bound_to: tuple[str, str]) -> TurnCredentials:
        """A fresh credential for (appointment id, participant id)."""
        return TurnCredentials.issue(self._secret, bound_to, ttl_s=self._settings.credential_ttl_s,
                                     now=self._clock.now().timestamp())

    def ice_policy_for(self, role: str) -> str:
        """``relay`` for the doctor when ``doctor_relay_only`` hides the PC's LAN addresses (the
        doctor then offers only the box's relay, and no LAN or IPv6 address reaches a patient),
        else ``all`` (a direct path wins whenever one exists)."""
        if self.enabled and self._settings.doctor_relay_only and role == "doctor":
            return "relay"
        return "all"

    def ice_servers_for(self, role: str, bound_to: tuple[str, str]) -> list[dict[str, Any]]:
        """RTCIceServer dicts for a participant; ``[]`` when the box runs without TURN.

        ``role`` ``"doctor"`` (or ``"box"``, a peer on the box itself) gets the box's LAN address:
        without hairpin NAT the public address gives the doctor no relay candidate. Every other
        role is on the internet and gets the public host of each healthy uplink.
        """
        if not self.enabled:
            return []
        turn = self._settings
        if role in LAN_ROLES:
            urls = [f"turn:{_url_host(turn.lan_address)}:{turn.port}"]
        else:
            uplinks = [u for u in turn.uplinks
                       if self._healthy is None or u.public_host in self._healthy]
            hosts = [_url_host(u.public_host) for u in uplinks or turn.uplinks]
            urls = [f"turn:{host}:{turn.port}?transport=udp" for host in hosts]
            if tls_enabled(turn):
                urls += [f"turns:{host}:{turn.tls_port}?transport=tcp" for host in hosts]
        credentials = self.credentials_for(bound_to)
        return [{"urls": urls, "username": credentials.username,
                 "credential": credentials.password}]


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def tls_enabled(settings: TurnSettings) -> bool:
    """TURN over TLS only when certificate and private key are configured and exist."""
    return bool(settings.certificate and settings.private_key
                and settings.certificate.is_file() and settings.private_key.is_file())


# --- coturn and the box firewall -------------------------------------------------------------


def _range(network: ipaddress.IPv4Network | ipaddress.IPv6Network | str) -> str:
    if isinstance(network, str):
        return network
    if network.num_addresses == 1:
        return str(network.network_address)
    return f"{network.network_address}-{network.broadcast_address}"


def relay_instances(settings: TurnSettings) -> tuple[str, ...]:
    """The box's relay addresses, one coturn instance each: the doctor's LAN address, then each
    uplink's. Each instance listens and relays on its own address only, so an allocation made
    through a line carries that line's public address and nothing relays from any other address
    of the box (its IPv6 addresses above all, UPLINKS.md)."""
    return settings.lan_addresses


def coturn_config(settings: TurnSettings, address: str | None = None, *,
                  secret: str | None = None) -> str:
    """coturn's configuration for the instance on ``address`` (may be left out when the box has
    just one); it holds the secret: mode 0600."""
    instances = relay_instances(settings)
    if address is None and len(instances) == 1:
        address = instances[0]
    if address not in instances:
        raise ValueError(f"no relay instance on {address}; the box has {', '.join(instances)}")
    secret = secret or read_turn_secret(settings)
    lines = [
        "# coturn for Sprechzimmer, written by `sprechzimmer turn-config` (docs/turn.md).",
        "# Holds the TURN secret: keep it mode 0600, readable only by coturn.",
        f"# The relay instance on {address}; the box runs one per address: "
        + ", ".join(instances),
        f"realm={settings.realm}",
        "use-auth-secret",
        f"static-auth-secret={secret}",
        "fingerprint",
        "no-cli",
        "no-software-attribute",
        "no-rfc5780",
        "no-multicast-peers",
        "# no TCP relay: an RFC 6062 probe could otherwise open TCP connections into the LAN",
        "no-tcp-relay",
        "no-dtls",
        "# one address to listen and relay on: never the box's IPv6 or any other address",
        f"listening-ip={address}",
        f"relay-ip={address}",
        f"listening-port={settings.port}",
        "allocation-default-address-family=ipv4",
        "# every line's public address maps to its LAN address: relay <-> relay stays in the box",
        *(f"external-ip={u.public_address}/{u.lan_address}" for u in settings.uplinks
          if u.public_address != u.lan_address),
        f"min-port={settings.min_port}",
        f"max-port={settings.max_port}",
        f"user-quota={settings.user_quota}",
        f"total-quota={settings.total_quota}",
        "stale-nonce=600",
    ]
    if tls_enabled(settings):
        lines += [f"tls-listening-port={settings.tls_port}", f"cert={settings.certificate}",
                  f"pkey={settings.private_key}", "no-tlsv1", "no-tlsv1_1"]
    else:
        lines.append("no-tls")
    lines.append("# peers: the box's own relay addresses (relay <-> relay); the nft rule keeps "
                 "the box's services closed")
    lines += [f"allowed-peer-ip={peer}" for peer in allowed_peers(settings)]
    lines += [f"denied-peer-ip={_range(network)}" for network in denied_peers(settings)]
    return "\n".join(lines) + "\n"


def allowed_peers(settings: TurnSettings) -> tuple[str, ...]:
    """Peers a relay may send to although a denied range covers them: the box's relay
    addresses, by their LAN and their public address (coturn maps the public one back)."""
    public = (u.public_address for u in settings.uplinks)
    return tuple(dict.fromkeys((*settings.lan_addresses, *public)))


def denied_peers(settings: TurnSettings
                 ) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network | str, ...]:
    """Every peer range the relay refuses: all of IPv6 and, unless doctors outside the LAN are
    allowed, all of IPv4 as well; then only the box's own relay addresses are left. With
    internet peers allowed, IPv4's private and special ranges stay denied."""
    if settings.allow_internet_peers:
        return (*(n for n in DENIED_PEER_NETWORKS if n.version == 4), ALL_IPV6_BUT_UNSPECIFIED)
    return (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


def nft_rules(settings: TurnSettings) -> str:
    """The box firewall of design C: relayed traffic reaches other relay ports, no box service.

    It matches every address, IPv4 and IPv6 alike (table ``inet``): whatever address coturn
    relayed from, a packet from a relay port to a port outside the relay range stays out.
    """
    relay = f"{settings.min_port}-{settings.max_port}"
    return "\n".join([
        "#!/usr/sbin/nft -f",
        "# Sprechzimmer, written by `sprechzimmer turn-config --nft` (docs/turn.md).",
        "# coturn may relay to the box's own addresses (relay <-> relay without hairpin NAT);",
        "# this drops what a relay port sends to any other port of the box, coturn's included.",
        "# On input, not output: an output drop fails coturn's send and stops the allocation.",
        f"# The box's own outgoing ports must stay outside {relay} (the kernel's",
        "# ip_local_port_range; `sprechzimmer turn-config --check` says when they do not).",
        f"table inet {NFT_TABLE}",
        f"delete table inet {NFT_TABLE}",
        f"table inet {NFT_TABLE} {{",
        "\tchain input {",
        "\t\ttype filter hook input priority filter; policy accept;",
        f"\t\tiifname \"lo\" meta l4proto {{ udp, tcp }} th sport {relay} th dport != {relay} "
        "counter drop",
        "\t}",
        "}",
        "",
    ])


# --- health check ----------------------------------------------------------------------------


class TurnState(StrEnum):
    """What a real TURN Allocate against the relay gave."""

    OK = "ok"
    WRONG_SECRET = "wrong_secret"
    WRONG_REALM = "wrong_realm"
    REFUSED = "refused"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True, kw_only=True)
class TurnHealth:
    """The outcome of :func:`check_turn`, with a message an admin understands."""

    state: TurnState
    host: str
    port: int
    elapsed_s: float
    relayed_address: tuple[str, int] | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        """Whether the relay hands out allocations with the box's secret."""
        return self.state is TurnState.OK

    def message(self, lang: str = "de") -> str:
        """The outcome in plain words (German first)."""
        return translate(f"turn.health.{self.state}", lang, host=self.host, port=self.port,
                         ms=round(self.elapsed_s * 1000), seconds=round(self.elapsed_s, 1),
                         detail=self.detail)


async def check_turn(host: str, port: int, secret: str, realm: str, *,
                     timeout_s: float = 3.0) -> TurnHealth:
    """A real TURN Allocate with a fresh credential: ok, wrong secret, refused or unreachable.

    A wrong secret otherwise fails silently (no relay candidates, calls time out): run this
    after (re)starting coturn and whenever an admin asks.
    """
    credentials = TurnCredentials.issue(secret, HEALTH_CHECK_BINDING, ttl_s=60, now=time.time())
    loop = asyncio.get_running_loop()
    started = loop.time()

    def result(state: TurnState, **values: Any) -> TurnHealth:
        health = TurnHealth(state=state, host=host, port=port,
                            elapsed_s=loop.time() - started, **values)
        _LOGGER.info("TURN check %s:%d: %s (%.0f ms)", host, port, state, health.elapsed_s * 1000)
        return health

    try:
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: TurnClientUdpProtocol((host, port), username=credentials.username,
                                          password=credentials.password, lifetime=60,
                                          channel_refresh_time=50),
            remote_addr=(host, port),
        )
    except OSError as exc:
        return result(TurnState.UNREACHABLE, detail=exc.strerror or type(exc).__name__)
    try:
        async with asyncio.timeout(timeout_s):
            relayed = await protocol.connect()
        with_realm = protocol.realm
        # the allocation answered: that is the verdict; freeing it is a courtesy (it lapses by
        # itself after its lifetime), so a slow answer to the delete makes nothing unreachable
        with contextlib.suppress(TimeoutError, stun.TransactionError, ConnectionError, OSError):
            async with asyncio.timeout(timeout_s):
                await protocol.delete()
    except TimeoutError:
        return result(TurnState.UNREACHABLE)
    except stun.TransactionFailed as exc:
        code, reason = exc.response.attributes.get("ERROR-CODE", (0, ""))
        if code == 401:
            return result(TurnState.WRONG_SECRET, detail=f"{code} {reason}")
        return result(TurnState.REFUSED, detail=f"{code} {reason}")
    except (stun.TransactionError, ConnectionError, OSError) as exc:
        return result(TurnState.UNREACHABLE, detail=str(exc))
    finally:
        transport.close()
    if with_realm != realm:
        return result(TurnState.WRONG_REALM, relayed_address=relayed,
                      detail=f"{with_realm} statt {realm}")
    return result(TurnState.OK, relayed_address=relayed)
