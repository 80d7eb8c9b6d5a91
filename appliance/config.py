"""Settings of the box: a TOML file plus environment overrides, validated before anything starts."""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from appliance.errors import ConfigError

BOX_CONFIG: Final = Path("/etc/sprechzimmer/sprechzimmer.toml")
EMBEDDED_CONFIG: Final = Path("var/sprechzimmer.toml")
ENV_PREFIX: Final = "SPRECHZIMMER_"
#: R8: appointment metadata is deleted 90 days after the appointment at the latest
MAX_RETENTION_DAYS: Final = 90
#: where the kernel takes the ports of outgoing connections from (Debian's default range)
EPHEMERAL_PORTS_FILE: Final = Path("/proc/sys/net/ipv4/ip_local_port_range")
DEFAULT_EPHEMERAL_PORTS: Final = (32768, 60999)
#: mDNS: a service of the box's own (zeroconf) that no relay port may share
MDNS_PORT: Final = 5353

EMBEDDED_DEFAULTS: Final = """\
# Sprechzimmer settings. Every value can be overridden by an environment variable
# SPRECHZIMMER_<SECTION>__<KEY>, e.g. SPRECHZIMMER_WEB__STAFF_PORT=9080.

[web]
staff_host = "127.0.0.1"      # the box's LAN address(es) on a real box; a list is allowed
staff_port = 8080
public_host = "127.0.0.1"
public_port = 8081
public_urls = ["http://127.0.0.1:8081"]  # proposed at onboarding; then the practice settings decide

[vault]
path = "./var/vault"
# Where the box keeps what lets it pick up logged-in sessions and running calls after a restart
# of its process (docs/restart.md). On a box: a tmpfs emptied at boot, so the vault is sealed
# after every boot. Without it: the directory "run" next to the vault (survives a reboot).
# runtime_dir = "/run/sprechzimmer"
# The box locks itself (seals the vault, ends every session) when nobody of the staff is logged
# in: during lock_hours (practice time; "" = never by the clock) and after lock_idle_hours
# without any staff session (0 = never). Never while a call runs or a patient waits.
lock_hours = "22:00-06:00"
lock_idle_hours = 12

[practice]
retention_days = 90           # appointment metadata is purged after this (at most 90, R8)

[tls]
# HTTPS on every address that is not loopback ("auto"); browsers give camera and microphone only
# to HTTPS pages. At first start the box makes its practice CA (docs/tls.md):
# `sprechzimmer tls ca --output praxis-ca.pem` writes it for the practice PCs.
mode = "auto"
hostname = "sprechzimmer"     # announced as sprechzimmer.local
http_port = 80                # plain HTTP: the CA for new PCs, ACME; all else goes to HTTPS
# The public site's certificate: from files, or by ACME (e.g. Let's Encrypt)
# public_certificate = "/etc/sprechzimmer/public.pem"
# public_private_key = "/etc/sprechzimmer/public.key"
# acme_directory = "https://acme-v02.api.letsencrypt.org/directory"
# acme_email = "it@praxis-beispiel.de"

[discovery]
enabled = true                # announce the staff site as <hostname>.local on the LAN

[backup]
# The vault's ciphertext, the settings and the TLS keys, encrypted by restic to every target
# (docs/backup.md). The repositories' password comes from the recovery key: the emergency sheet
# and a target's access data are all a new box needs.
schedule = "02:30"            # every night at this practice time; "" = only by hand
# [[backup.targets]]
# name = "nas"
# url = "sftp:backup@nas.praxis.lan:/srv/sprechzimmer"   # any restic repository; a path is local
# credentials_file = "/etc/sprechzimmer/backup-nas.env"  # optional, mode 0600: KEY=VALUE lines

[turn]
enabled = false               # the box's own coturn relay (docs/turn.md); off on a laptop
# On a box: the TURN secret lives only there, in secret_file (mode 0600, 32+ characters),
# never in a page or a log. `sprechzimmer turn-config` writes coturn's configuration from this.
# secret_file = "/etc/sprechzimmer/turn-secret"
# realm = "praxis-beispiel.de"
# lan_address = "192.168.50.10"   # the box's LAN address: the doctor's turn: URL
# min_port = 61000                # relay ports; keep them outside the kernel's ephemeral range
# max_port = 65535
# credential_ttl_s = 600          # at most 3600
# One [[turn.uplinks]] per internet line of the practice (docs/uplinks.md): the box watches
# each, patients get TURN on the healthy ones, a call moves when its line dies. The line's
# router forwards UDP 3478 and the public site's port to its lan_address.
# [[turn.uplinks]]
# name = "DSL"                      # how the status page calls the line
# public_host = "videosprechstunde.praxis-beispiel.de"
# public_address = "203.0.113.1"
# lan_address = "192.168.50.10"
# stun_target = "stun.provider-beispiel.de:3478"  # a STUN server on the internet to probe
# interface = "ppp0"                # only if the line ends on the box itself: never announced on
"""


@dataclass(frozen=True, kw_only=True)
class WebSettings:
    """Where the two sites listen and how patient links are built."""

    staff_host: tuple[str, ...] = ("127.0.0.1",)
    staff_port: int = 8080
    public_host: tuple[str, ...] = ("127.0.0.1",)
    public_port: int = 8081
    public_urls: tuple[str, ...] = ("http://127.0.0.1:8081",)


@dataclass(frozen=True, kw_only=True)
class VaultSettings:
    """Where the encrypted store lives, and where the box keeps what a restart needs."""

    path: Path = Path("var/vault")
    runtime_dir: Path | None = None
    #: the box locks itself in this span of the practice's local time once nobody is logged in
    #: (start, end; the span may pass midnight); None: never by the clock
    lock_hours: tuple[time, time] | None = (time(22, 0), time(6, 0))
    #: ... and after this many hours without any staff session; 0: never
    lock_idle_hours: int = 12

    @property
    def resume_dir(self) -> Path:
        """The runtime directory: as configured, else ``run`` next to the vault."""
        return self.runtime_dir or self.path.parent / "run"


@dataclass(frozen=True, kw_only=True)
class PracticeSettings:
    """Rules of the practice's data."""

    retention_days: int = MAX_RETENTION_DAYS


@dataclass(frozen=True, kw_only=True)
class TurnUplink:
    """One internet line of the practice: the name patients use, its public address, the box's
    LAN address that reaches the internet through it; how the box probes it."""

    public_host: str
    public_address: str
    lan_address: str
    #: what the staff calls the line ("DSL", "LTE"); "" = "Leitung 1", "Leitung 2", …
    name: str = ""
    #: a STUN server on the internet (host, port) the box probes the line against; None: the
    #: box's own relay by the line's public address (needs the router's NAT loopback)
    stun_target: tuple[str, int] | None = None
    #: the line's network interface when it ends on the box itself (e.g. "ppp0"): the box
    #: never announces itself there, and its certificate names no address of it
    interface: str = ""


@dataclass(frozen=True, kw_only=True)
class TurnSettings:
    """The box's own coturn relay (design C of TURN.md) and the credentials it accepts."""

    enabled: bool = False
    #: never shown: not in repr, not in errors, not in logs
    secret: str = field(default="", repr=False)
    secret_file: Path = Path("/etc/sprechzimmer/turn-secret")
    realm: str = "sprechzimmer.local"
    lan_address: str = ""
    uplinks: tuple[TurnUplink, ...] = ()
    port: int = 3478
    tls_port: int = 443
    certificate: Path | None = None
    private_key: Path | None = None
    min_port: int = 61000
    max_port: int = 65535
    credential_ttl_s: int = 600
    user_quota: int = 16
    total_quota: int = 200
    #: relay to any public IPv4 address too (a doctor working from outside the practice); off:
    #: the relay reaches only the box's own relay addresses (docs/turn.md, threat model)
    allow_internet_peers: bool = False
    #: the doctor's page offers only relay candidates: its LAN addresses never reach a patient
    doctor_relay_only: bool = False
    #: seconds between two probes of a line (jittered), and how long a probe waits for its
    #: answer (docs/uplinks.md: a dead line is down within 1.25 × interval + 3 × timeout)
    probe_interval_s: float = 2.0
    probe_timeout_s: float = 0.8

    @property
    def lan_addresses(self) -> tuple[str, ...]:
        """Every LAN address of the box that coturn uses, the doctor's first, without repeats."""
        found = [self.lan_address, *(uplink.lan_address for uplink in self.uplinks)]
        return tuple(dict.fromkeys(a for a in found if a))

    @property
    def uplink_interfaces(self) -> tuple[str, ...]:
        """The interfaces of lines that end on the box itself."""
        return tuple(u.interface for u in self.uplinks if u.interface)


@dataclass(frozen=True, kw_only=True)
class TlsSettings:
    """HTTPS of both sites (docs/tls.md)."""

    #: "auto": HTTPS on every address that is not loopback; "off": plain HTTP everywhere (the
    #: staff site then shows a warning: browsers give no camera to such a page)
    mode: str = "auto"
    #: where the CA, the certificates and their keys live (0700); default: "tls" beside the vault
    dir: Path | None = None
    #: the box's mDNS name, without ".local"
    hostname: str = "sprechzimmer"
    #: plain HTTP on the sites' addresses: on a LAN address the first-visit page (the CA and
    #: how to trust it), on the public host the ACME challenge; everything else is redirected to
    #: HTTPS. 0: none
    http_port: int = 80
    #: the public site's certificate chain and key (PEM), e.g. from the practice's provider;
    #: without them the box obtains one by ACME (acme_directory)
    public_certificate: Path | None = None
    public_private_key: Path | None = None
    #: the ACME server's directory URL, e.g. Let's Encrypt's; "" = no ACME
    acme_directory: str = ""
    #: the address the ACME server writes to about the certificates (optional)
    acme_email: str = ""
    #: a CA file the box trusts for the ACME server itself (a test server); "" = the system's
    acme_ca_bundle: Path | None = None


@dataclass(frozen=True, kw_only=True)
class DiscoverySettings:
    """The box's mDNS announcement on the practice LAN (``[tls] hostname`` is its name)."""

    #: announce the staff site (only ever on its LAN addresses, never on loopback, never on a
    #: line's own interface: ``[[turn.uplinks]] interface``)
    enabled: bool = True


@dataclass(frozen=True, kw_only=True)
class BackupTarget:
    """One restic repository the box backs up to."""

    name: str
    #: a restic repository URL (``sftp:``, ``rest:``, ``s3:``, …) or a local path
    url: str
    #: KEY=VALUE lines for restic's environment (e.g. ``AWS_ACCESS_KEY_ID``), mode 0600; the
    #: secrets of a target never stand in the settings file
    credentials_file: Path | None = None


@dataclass(frozen=True, kw_only=True)
class BackupSettings:
    """Off-site copies of the vault's ciphertext (docs/backup.md)."""

    targets: tuple[BackupTarget, ...] = ()
    #: the nightly run, practice time; None: only by hand
    schedule: time | None = time(2, 30)
    keep_daily: int = 7
    keep_weekly: int = 4
    keep_monthly: int = 12
    #: the weekly verification (check with a share of the data read, and a restore drill) on
    #: this day (0 = Monday … 6 = Sunday), after the nightly run
    verify_weekday: int = 6
    #: where the box keeps the repositories' password, restic's cache and the runs' state;
    #: default "backup" beside the vault
    dir: Path | None = None


@dataclass(frozen=True, kw_only=True)
class Settings:
    """All settings of the box."""

    web: WebSettings = field(default_factory=WebSettings)
    vault: VaultSettings = field(default_factory=VaultSettings)
    practice: PracticeSettings = field(default_factory=PracticeSettings)
    turn: TurnSettings = field(default_factory=TurnSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    discovery: DiscoverySettings = field(default_factory=DiscoverySettings)
    backup: BackupSettings = field(default_factory=BackupSettings)
    source: str = "eingebaute Standardwerte"

    @property
    def tls_dir(self) -> Path:
        """Where the box keeps its CA and certificates: as configured, else beside the vault."""
        return self.tls.dir or self.vault.path.parent / "tls"

    @property
    def backup_dir(self) -> Path:
        """Where the box keeps its backup state: as configured, else beside the vault."""
        return self.backup.dir or self.vault.path.parent / "backup"


# --- validators: each turns a raw value into the typed one or raises ValueError(allowed) -------


def _int_in(low: int, high: int, why: str = "") -> _Validator:
    allowed = f"eine ganze Zahl von {low} bis {high}{why}"

    def validate(value: Any) -> int:
        if isinstance(value, bool | float):
            raise ValueError(allowed)
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ValueError(allowed) from None
        if not low <= number <= high:
            raise ValueError(allowed)
        return number

    return validate


_port = _int_in(1, 65535)


def _seconds_in(low: float, high: float) -> _Validator:
    allowed = f"eine Zahl von Sekunden von {low:g} bis {high:g}"

    def validate(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(allowed)
        try:
            number = float(value)
        except ValueError:
            raise ValueError(allowed) from None
        if not low <= number <= high:  # NaN fails too
            raise ValueError(allowed)
        return number

    return validate


def _str_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, list):
        items = value
    else:
        raise ValueError("eine Zeichenkette oder eine Liste von Zeichenketten")
    if not items or not all(isinstance(item, str) and item for item in items):
        raise ValueError("mindestens ein nicht-leerer Eintrag")
    return tuple(items)


def _hosts(value: Any) -> tuple[str, ...]:
    hosts = _str_list(value)
    for host in hosts:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(
                "eine IP-Adresse oder eine Liste von IP-Adressen (z. B. \"192.168.1.10\")"
            ) from None
    return hosts


def _public_urls(value: Any) -> tuple[str, ...]:
    urls = _str_list(value)
    for url in urls:
        parts = urlsplit(url)
        extra = parts.path not in ("", "/") or parts.query or parts.fragment or (
            parts.username is not None or parts.password is not None
        )
        if parts.scheme not in ("https", "http") or not parts.hostname or extra:
            raise ValueError(
                "Adressen der Form \"https://videosprechstunde.praxis-beispiel.de\" "
                "(ohne Pfad, Anmeldedaten, Parameter)"
            )
    return tuple(url.rstrip("/") for url in urls)


def _path(value: Any) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("ein Verzeichnispfad")
    return Path(value)


_LOCK_HOURS_RE: Final = re.compile(r"\s*(\d{1,2}):(\d{2})\s*[-–]\s*(\d{1,2}):(\d{2})\s*")


def _lock_hours(value: Any) -> tuple[time, time] | None:
    """``"22:00-06:00"`` (a span that may pass midnight), or ``""``: never by the clock."""
    allowed = ("eine Zeitspanne wie \"22:00-06:00\" (Praxiszeit, darf über Mitternacht gehen) "
               "oder \"\" (nie nach der Uhrzeit)")
    if value == "":
        return None
    match = _LOCK_HOURS_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(allowed)
    h1, m1, h2, m2 = (int(part) for part in match.groups())
    try:
        span = time(h1, m1), time(h2, m2)
    except ValueError:
        raise ValueError(allowed) from None
    if span[0] == span[1]:
        raise ValueError(allowed + "; Anfang und Ende verschieden")
    return span


_retention_days = _int_in(1, MAX_RETENTION_DAYS, " (R8: höchstens drei Monate)")


#: the TURN secret's alphabet: it ends up on one line of coturn's configuration file
_SECRET_RE: Final = re.compile(r"[A-Za-z0-9+/=._~-]{32,256}")
_HOST_RE: Final = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                             r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
#: settings whose value never appears in an error message
SECRET_SETTINGS: Final = frozenset({"turn.secret"})
MAX_CREDENTIAL_TTL_S: Final = 3600


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "ja", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "nein", "off"):
        return False
    raise ValueError("true oder false")


def turn_secret(value: Any) -> str:
    """A TURN secret as coturn's configuration can hold it (also used for ``secret_file``)."""
    if not isinstance(value, str) or not (value == "" or _SECRET_RE.fullmatch(value)):
        raise ValueError(
            "leer (dann gilt secret_file) oder 32 bis 256 Zeichen aus A–Z, a–z, 0–9 und +/=._~- "
            "(z. B. aus `openssl rand -base64 48`)"
        )
    return value


def _host_name(value: Any) -> str:
    if isinstance(value, str):
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            if _HOST_RE.fullmatch(value):
                return value.lower()
    raise ValueError(
        "ein Hostname wie \"videosprechstunde.praxis-beispiel.de\" oder eine IP-Adresse"
    )


def _ip(value: Any) -> str:
    if isinstance(value, str):
        if value == "":
            return value
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            pass
    raise ValueError("eine IP-Adresse (z. B. \"192.168.50.10\")")


def _file(value: Any) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("ein Dateipfad")
    return Path(value)


def _optional_file(value: Any) -> Path | None:
    return None if value == "" else _file(value)


def _optional_path(value: Any) -> Path | None:
    return None if value == "" else _path(value)


def _line_name(value: Any) -> str:
    if isinstance(value, str) and 0 < len(value.strip()) <= 40 and value.isprintable():
        return value.strip()
    raise ValueError("ein kurzer Name wie \"DSL\" oder \"LTE\" (höchstens 40 Zeichen)")


def _stun_target(value: Any) -> tuple[str, int] | None:
    """``"host"`` or ``"host:port"`` (3478 if left out); ``""``: none."""
    allowed = ("ein STUN-Server im Internet als \"host\" oder \"host:port\" (z. B. "
               "\"stun.provider-beispiel.de:3478\"), oder \"\"")
    if value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(allowed)
    host, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    try:
        number = int(port) if port else 3478
        if not 1 <= number <= 65535:
            raise ValueError(allowed)
        return _host_name(host), number
    except ValueError:
        raise ValueError(allowed) from None


def _interface(value: Any) -> str:
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9_.:@-]{1,15}", value):
        return value
    raise ValueError("der Name einer Netzwerkschnittstelle wie \"ppp0\" oder \"wwan0\"")


_UPLINK_FIELDS: Final[dict[str, _Validator]] = {
    "public_host": _host_name, "public_address": _ip, "lan_address": _ip,
    "name": _line_name, "stun_target": _stun_target, "interface": _interface,
}
_UPLINK_REQUIRED: Final = ("public_host", "public_address", "lan_address")


def _uplinks(value: Any) -> tuple[TurnUplink, ...]:
    """``[[turn.uplinks]]`` tables, or (environment) ``HOST=PUBLIC/LAN`` separated by commas;
    a fault names the line (1, 2, …) and its field."""
    allowed = (
        "[[turn.uplinks]]-Abschnitte mit public_host, public_address und lan_address, "
        "wahlweise name, stun_target und interface (als Umgebungsvariable: "
        "HOST=ÖFFENTLICHE-IP/LAN-IP, durch Kommas getrennt)"
    )
    if isinstance(value, str):
        entries: list[Any] = []
        for part in filter(None, (p.strip() for p in value.split(","))):
            host, _, addresses = part.partition("=")
            public, _, lan = addresses.partition("/")
            entries.append({"public_host": host, "public_address": public, "lan_address": lan})
    elif isinstance(value, list):
        entries = value
    else:
        raise ValueError(allowed)
    uplinks = []
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise ValueError(allowed)
        unknown = sorted(set(entry) - set(_UPLINK_FIELDS))
        missing = [key for key in _UPLINK_REQUIRED if not entry.get(key)]
        if unknown or missing:
            fault = (f"unbekannt: {', '.join(unknown)}" if unknown
                     else f"es fehlt {', '.join(missing)}")
            raise ValueError(f"Leitung {number}: {fault}; {allowed}")
        fields = {}
        for key, raw in entry.items():
            try:
                fields[key] = _UPLINK_FIELDS[key](raw)
            except ValueError as exc:
                raise ValueError(f"Leitung {number}, {key}: {exc}") from None
        uplinks.append(TurnUplink(**fields))
    return tuple(uplinks)


def _backup_targets(value: Any) -> tuple[BackupTarget, ...]:
    """``[[backup.targets]]`` tables with ``name`` and ``url`` (and ``credentials_file``)."""
    allowed = ("[[backup.targets]]-Abschnitte mit name und url (ein restic-Repository wie "
               "\"sftp:benutzer@nas:/pfad\", \"rest:https://…\", \"s3:…\" oder ein Pfad), "
               "wahlweise credentials_file")
    if not isinstance(value, list):
        raise ValueError(allowed)
    targets = []
    for number, entry in enumerate(value, 1):
        if not isinstance(entry, dict):
            raise ValueError(allowed)
        unknown = sorted(set(entry) - {"name", "url", "credentials_file"})
        if unknown or not entry.get("name") or not entry.get("url"):
            fault = (f"unbekannt: {', '.join(unknown)}" if unknown else "name und url fehlen")
            raise ValueError(f"Ziel {number}: {fault}; {allowed}")
        name, url = entry["name"], entry["url"]
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", name):
            raise ValueError(f"Ziel {number}, name: kurz, aus a-z, 0-9, - und _ (z. B. \"nas\")")
        if not isinstance(url, str) or not url.strip() or not url.isprintable() \
                or _login_in_url(url.strip()):
            raise ValueError(f"Ziel {number}, url: ein restic-Repository ohne Zugangsdaten (die "
                             "stehen in credentials_file)")
        try:
            credentials = _optional_file(entry.get("credentials_file", ""))
        except ValueError as exc:
            raise ValueError(f"Ziel {number}, credentials_file: {exc}") from None
        targets.append(BackupTarget(name=name, url=url.strip(), credentials_file=credentials))
    names = [target.name for target in targets]
    if len(set(names)) != len(names):
        raise ValueError("jedes Ziel braucht seinen eigenen Namen")
    return tuple(targets)


def _login_in_url(url: str) -> bool:
    """Whether a ``rest:`` or ``s3:`` URL carries a login (``rest:https://user:pw@host/``),
    which belongs in the target's credentials file."""
    if not url.startswith(("rest:", "s3:")):
        return False
    location = url.split(":", 1)[1]
    authority = location.split("://", 1)[1] if "://" in location else location
    return "@" in authority.split("/", 1)[0]


def _schedule(value: Any) -> time | None:
    """``"02:30"`` (practice time), or ``""``: only by hand."""
    if value == "":
        return None
    if isinstance(value, str) and (match := re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", value)):
        hour, minute = int(match[1]), int(match[2])
        if hour < 24 and minute < 60:
            return time(hour, minute)
    raise ValueError("eine Uhrzeit wie \"02:30\" (Praxiszeit) oder \"\" (nur von Hand)")


class _Contradiction(ValueError):
    """Two settings of one section that do not fit together; ``key`` names the one to change."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        super().__init__(allowed)
        self.key, self.value = key, value


def ephemeral_ports(path: Path = EPHEMERAL_PORTS_FILE) -> tuple[int, int]:
    """The kernel's range for the ports of outgoing connections (``ip_local_port_range``)."""
    try:
        low, high = (int(part) for part in path.read_text().split())
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL_PORTS
    return low, high


_IPV4_ONLY: Final = ("IPv4-Adressen: das Relay arbeitet nur über IPv4, damit es nie in das IPv6 "
                     "des Praxisnetzes weiterleitet (docs/turn.md)")


def _check_lines(lines: tuple[TurnUplink, ...]) -> None:
    """Each line its own public host, its own LAN address of the box (UPLINKS.md: the box
    answers by source routing), its own name; IPv4 addresses."""
    for key, what in (("lan_address", "ihre eigene LAN-Adresse der Box (docs/uplinks.md)"),
                      ("public_host", "ihren eigenen public_host"),
                      ("name", "ihren eigenen Namen")):
        values = [getattr(line, key) for line in lines if getattr(line, key)]
        if len(set(values)) != len(values):
            raise _Contradiction("uplinks", ", ".join(values), f"jede Leitung braucht {what}")
    for line in lines:
        for address in (line.lan_address, line.public_address):
            if ipaddress.ip_address(address).version != 4:
                raise _Contradiction("uplinks", address, _IPV4_ONLY)


def _check_turn(turn: TurnSettings) -> None:
    """The rules between TURN settings; only an enabled relay must be complete."""
    _check_lines(turn.uplinks)
    if turn.probe_timeout_s >= turn.probe_interval_s * 2:
        raise _Contradiction("probe_timeout_s", turn.probe_timeout_s,
                             f"kürzer als zweimal probe_interval_s ({turn.probe_interval_s:g})")
    if not turn.enabled:
        if turn.doctor_relay_only:
            raise _Contradiction("doctor_relay_only", "true", "nur mit enabled = true: ohne "
                                 "das Relay der Box käme keine Verbindung zustande")
        return
    if not turn.lan_address:
        raise _Contradiction("lan_address", "", "bei enabled = true nötig: die LAN-Adresse "
                             "der Box (für die Ärztin / den Arzt in der Praxis)")
    if not turn.uplinks:
        raise _Contradiction("uplinks", "[]", "bei enabled = true mindestens ein "
                             "[[turn.uplinks]]-Abschnitt (für die Patienten im Internet)")
    if turn.min_port >= turn.max_port:
        raise _Contradiction("min_port", turn.min_port, f"kleiner als max_port ({turn.max_port})")
    for key in ("port", "tls_port"):
        if turn.min_port <= getattr(turn, key) <= turn.max_port:
            raise _Contradiction(key, getattr(turn, key), "außerhalb der Relay-Ports "
                                 f"{turn.min_port}–{turn.max_port}")
    low, high = ephemeral_ports()
    if turn.min_port <= high and low <= turn.max_port:
        raise _Contradiction(
            "min_port", f"{turn.min_port}–{turn.max_port}",
            f"Relay-Ports außerhalb der Ports für ausgehende Verbindungen des Kernels ({low}–"
            f"{high}, {EPHEMERAL_PORTS_FILE}): die Firewall-Regel der Box verwirft, was von "
            "einem Relay-Port kommt, und würde eigene Verbindungen der Box treffen. Üblich: "
            f"min_port = {high + 1 if high < 65000 else 1024}")
    if turn.lan_address and ipaddress.ip_address(turn.lan_address).version != 4:
        raise _Contradiction("lan_address", turn.lan_address, _IPV4_ONLY)
    if (turn.certificate is None) != (turn.private_key is None):
        raise _Contradiction("certificate" if turn.certificate is None else "private_key", "",
                             "certificate und private_key nur gemeinsam (TURN über TLS)")


_LABEL_RE: Final = re.compile(r"[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?")


def _tls_mode(value: Any) -> str:
    if value in ("auto", "off"):
        return value
    raise ValueError("\"auto\" (HTTPS außer auf Loopback) oder \"off\" (nur HTTP: keine Kamera "
                     "im Browser außer auf der Box selbst)")


def _mdns_label(value: Any) -> str:
    if isinstance(value, str) and _LABEL_RE.fullmatch(value):
        return value
    raise ValueError("ein Name aus a–z, 0–9 und Bindestrich, ohne \".local\" (z. B. "
                     "\"sprechzimmer\")")


def _optional_url(value: Any) -> str:
    if value == "":
        return value
    if isinstance(value, str) and urlsplit(value).scheme == "https" and urlsplit(value).hostname:
        return value
    raise ValueError("eine https://-Adresse (das Verzeichnis des ACME-Servers) oder \"\"")


def _email(value: Any) -> str:
    if value == "" or (isinstance(value, str) and re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+",
                                                                value)):
        return value
    raise ValueError("eine E-Mail-Adresse oder \"\"")


_Validator = Callable[[Any], Any]
SCHEMA: Final[dict[str, tuple[type, dict[str, _Validator]]]] = {
    "web": (
        WebSettings,
        {
            "staff_host": _hosts,
            "staff_port": _port,
            "public_host": _hosts,
            "public_port": _port,
            "public_urls": _public_urls,
        },
    ),
    "vault": (VaultSettings, {
        "path": _path, "runtime_dir": _optional_path, "lock_hours": _lock_hours,
        "lock_idle_hours": _int_in(0, 24 * 14, " Stunden (0: nie)"),
    }),
    "practice": (PracticeSettings, {"retention_days": _retention_days}),
    "turn": (
        TurnSettings,
        {
            "enabled": _bool,
            "secret": turn_secret,
            "secret_file": _file,
            "realm": _host_name,
            "lan_address": _ip,
            "uplinks": _uplinks,
            "port": _port,
            "tls_port": _port,
            "certificate": _optional_file,
            "private_key": _optional_file,
            "min_port": _int_in(1024, 65535),
            "max_port": _int_in(1024, 65535),
            "credential_ttl_s": _int_in(
                60, MAX_CREDENTIAL_TTL_S, " Sekunden (kurz, TURN.md Punkt 7)"
            ),
            "user_quota": _int_in(1, 1000),
            "total_quota": _int_in(1, 100000),
            "allow_internet_peers": _bool,
            "doctor_relay_only": _bool,
            "probe_interval_s": _seconds_in(0.1, 60),
            "probe_timeout_s": _seconds_in(0.05, 5),
        },
    ),
    "tls": (TlsSettings, {
        "mode": _tls_mode, "dir": _optional_path, "hostname": _mdns_label,
        "http_port": _int_in(0, 65535, " (0: kein HTTP)"),
        "public_certificate": _optional_file, "public_private_key": _optional_file,
        "acme_directory": _optional_url, "acme_email": _email,
        "acme_ca_bundle": _optional_file,
    }),
    "discovery": (DiscoverySettings, {"enabled": _bool}),
    "backup": (BackupSettings, {
        "targets": _backup_targets, "schedule": _schedule,
        "keep_daily": _int_in(1, 365), "keep_weekly": _int_in(0, 520),
        "keep_monthly": _int_in(0, 1200), "verify_weekday": _int_in(0, 6, " (0 = Montag)"),
        "dir": _optional_path,
    }),
}
#: settings of earlier versions, and where they are now
MOVED_SETTINGS: Final = {
    "discovery.uplink_interfaces": "diese Einstellung gibt es nicht mehr: die Schnittstelle "
    "einer Leitung steht jetzt als interface = \"ppp0\" in ihrem [[turn.uplinks]]-Abschnitt",
}
#: rules between the settings of one section, checked after each value on its own
def _check_web(web: WebSettings) -> None:
    """The two sites cannot share a port on the same address."""
    if web.staff_port == web.public_port and _overlap(web.staff_host, web.public_host):
        raise _Contradiction(
            "public_port", web.public_port,
            "die Patientenseite braucht einen anderen Port als die Praxisseite "
            f"(staff_port = {web.staff_port})",
        )


def _overlap(first: tuple[str, ...], second: tuple[str, ...]) -> bool:
    addresses = [ipaddress.ip_address(host) for host in (*first, *second)]
    if any(address.is_unspecified for address in addresses):
        return True  # 0.0.0.0 / :: take the port on every address
    return bool(set(first) & set(second))


def _check_tls(tls: TlsSettings) -> None:
    if (tls.public_certificate is None) != (tls.public_private_key is None):
        raise _Contradiction(
            "public_certificate" if tls.public_certificate is None else "public_private_key", "",
            "public_certificate und public_private_key nur gemeinsam")


SECTION_CHECKS: Final[dict[str, Callable[[Any], None]]] = {
    "web": _check_web, "turn": _check_turn, "tls": _check_tls,
}


def _check_box(sections: dict[str, Any], source: str) -> None:
    """Rules across sections: no service of the box on a relay port (the firewall rule lets
    relayed packets reach every relay port)."""
    web, turn = sections["web"], sections["turn"]
    if not turn.enabled:
        return
    services = {"web.staff_port": web.staff_port, "web.public_port": web.public_port,
                "mDNS": MDNS_PORT}
    for name, port in services.items():
        if turn.min_port <= port <= turn.max_port:
            raise ConfigError(
                setting="turn.min_port", value=f"{turn.min_port}–{turn.max_port}",
                source=f" (in {source})",
                allowed=f"ein Relay-Bereich ohne die Ports der Box: {name} = {port} läge "
                        "darin und wäre über das Relay erreichbar")


def box_addresses(settings: Settings) -> tuple[str, ...]:
    """The box's own addresses as the settings name them (where its sites and relay listen):
    what a log line may show, unlike a client's address."""
    turn = settings.turn
    found = [*settings.web.staff_host, *settings.web.public_host, *turn.lan_addresses,
             *(u.public_address for u in turn.uplinks)]
    return tuple(dict.fromkeys(found))


def default_config_path() -> Path:
    """The settings file used without ``--config``: the box's, else the embedded default's."""
    if env := os.environ.get(f"{ENV_PREFIX}CONFIG"):
        return Path(env)
    return BOX_CONFIG if BOX_CONFIG.exists() else EMBEDDED_CONFIG


def write_embedded_defaults(path: Path) -> None:
    """Create the embedded default settings file (for ``make run`` on a laptop) if missing."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(EMBEDDED_DEFAULTS, "utf-8")
    os.replace(tmp, path)


def load_settings(path: Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read, merge and validate the settings; raise :class:`ConfigError` naming the bad setting."""
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    source = "eingebaute Standardwerte"
    if path is not None:
        source = str(path)
        try:
            raw = tomllib.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                setting="--config", value=str(path), source="",
                allowed="die Datei existiert nicht",
            ) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(
                setting="--config", value=str(path), source="",
                allowed=f"die Datei ist kein gültiges TOML ({exc})",
            ) from None
    return _build(raw, environ, source)


def _build(raw: dict[str, Any], environ: Mapping[str, str], source: str) -> Settings:
    sections: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in SCHEMA:
            raise ConfigError(
                setting=f"[{name}]", value="…", source=f" (in {source})",
                allowed="bekannt sind " + ", ".join(f"[{s}]" for s in SCHEMA),
            )
        if not isinstance(value, dict):
            raise ConfigError(
                setting=name, value=value, source=f" (in {source})",
                allowed="ein Abschnitt [" + name + "]",
            )
    for section, (cls, validators) in SCHEMA.items():
        values: dict[str, Any] = {}
        for key, value in raw.get(section, {}).items():
            values[key] = _validate(section, key, value, validators, f" (in {source})")
        for key in validators:
            env_name = f"{ENV_PREFIX}{section.upper()}__{key.upper()}"
            if env_name in environ:
                values[key] = _validate(
                    section, key, environ[env_name], validators, f" (aus {env_name})"
                )
        sections[section] = cls(**values)
        if section in SECTION_CHECKS:
            try:
                SECTION_CHECKS[section](sections[section])
            except _Contradiction as exc:
                raise ConfigError(
                    setting=f"{section}.{exc.key}", value=exc.value, source=f" (in {source})",
                    allowed=str(exc),
                ) from None
    _check_box(sections, source)
    for env_name in environ:
        if env_name.startswith(ENV_PREFIX) and "__" in env_name:
            section, _, key = env_name[len(ENV_PREFIX):].lower().partition("__")
            if section not in SCHEMA or key not in SCHEMA[section][1]:
                raise ConfigError(
                    setting=env_name, source="",
                    value="…" if "SECRET" in env_name else environ[env_name],
                    allowed="diese Umgebungsvariable kennt die Box nicht",
                )
    return Settings(**sections, source=source)


def _validate(
    section: str, key: str, value: Any, validators: dict[str, _Validator], source: str
) -> Any:
    if key not in validators:
        moved = MOVED_SETTINGS.get(f"{section}.{key}")
        raise ConfigError(
            setting=f"{section}.{key}", value=value, source=source,
            allowed=moved or "unbekannte Einstellung; bekannt sind " + ", ".join(validators),
        )
    try:
        return validators[key](value)
    except ValueError as exc:
        shown = "…" if f"{section}.{key}" in SECRET_SETTINGS else value
        raise ConfigError(
            setting=f"{section}.{key}", value=shown, source=source, allowed=str(exc)
        ) from None
