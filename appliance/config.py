"""Settings of the box: a TOML file plus environment overrides, validated before anything starts."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from appliance.errors import ConfigError

BOX_CONFIG: Final = Path("/etc/sprechzimmer/sprechzimmer.toml")
EMBEDDED_CONFIG: Final = Path("var/sprechzimmer.toml")
ENV_PREFIX: Final = "SPRECHZIMMER_"
#: R8: appointment metadata is deleted 90 days after the appointment at the latest
MAX_RETENTION_DAYS: Final = 90

EMBEDDED_DEFAULTS: Final = """\
# Sprechzimmer settings. Every value can be overridden by an environment variable
# SPRECHZIMMER_<SECTION>__<KEY>, e.g. SPRECHZIMMER_WEB__STAFF_PORT=9080.

[web]
staff_host = "127.0.0.1"      # the box's LAN address(es) on a real box; a list is allowed
staff_port = 8080
public_host = "127.0.0.1"
public_port = 8081
public_urls = ["http://127.0.0.1:8081"]  # patient links use the first

[vault]
path = "./var/vault"

[practice]
retention_days = 90           # appointment metadata is purged after this (at most 90, R8)
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
    """Where the encrypted store lives."""

    path: Path = Path("var/vault")


@dataclass(frozen=True, kw_only=True)
class PracticeSettings:
    """Rules of the practice's data."""

    retention_days: int = MAX_RETENTION_DAYS


@dataclass(frozen=True, kw_only=True)
class Settings:
    """All settings of the box."""

    web: WebSettings = field(default_factory=WebSettings)
    vault: VaultSettings = field(default_factory=VaultSettings)
    practice: PracticeSettings = field(default_factory=PracticeSettings)
    source: str = "eingebaute Standardwerte"


# --- validators: each turns a raw value into the typed one or raises ValueError(allowed) -------


def _port(value: Any) -> int:
    allowed = "eine ganze Zahl von 1 bis 65535"
    if isinstance(value, bool):
        raise ValueError(allowed)
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise ValueError(allowed) from None
    if isinstance(value, float) or not 1 <= port <= 65535:
        raise ValueError(allowed)
    return port


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
        bad_path = parts.path not in ("", "/")
        if parts.scheme not in ("https", "http") or not parts.hostname or bad_path:
            raise ValueError(
                "Adressen der Form \"https://videosprechstunde.praxis-beispiel.de\" "
                "(ohne Pfad)"
            )
    return tuple(url.rstrip("/") for url in urls)


def _path(value: Any) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("ein Verzeichnispfad")
    return Path(value)


def _retention_days(value: Any) -> int:
    allowed = f"eine ganze Zahl von 1 bis {MAX_RETENTION_DAYS} (R8: höchstens drei Monate)"
    try:
        days = int(value)
    except (TypeError, ValueError):
        raise ValueError(allowed) from None
    if isinstance(value, bool) or not 1 <= days <= MAX_RETENTION_DAYS:
        raise ValueError(allowed)
    return days


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
    "vault": (VaultSettings, {"path": _path}),
    "practice": (PracticeSettings, {"retention_days": _retention_days}),
}


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
    for env_name in environ:
        if env_name.startswith(ENV_PREFIX) and "__" in env_name:
            section, _, key = env_name[len(ENV_PREFIX):].lower().partition("__")
            if section not in SCHEMA or key not in SCHEMA[section][1]:
                raise ConfigError(
                    setting=env_name, value=environ[env_name], source="",
                    allowed="diese Umgebungsvariable kennt die Box nicht",
                )
    return Settings(**sections, source=source)


def _validate(
    section: str, key: str, value: Any, validators: dict[str, _Validator], source: str
) -> Any:
    if key not in validators:
        raise ConfigError(
            setting=f"{section}.{key}", value=value, source=source,
            allowed="unbekannte Einstellung; bekannt sind " + ", ".join(validators),
        )
    try:
        return validators[key](value)
    except ValueError as exc:
        raise ConfigError(
            setting=f"{section}.{key}", value=value, source=source, allowed=str(exc)
        ) from None
