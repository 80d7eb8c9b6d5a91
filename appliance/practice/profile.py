"""The practice's profile: name, BSNR, address, KV region, time zone and public addresses."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from msgspec.structs import replace

from appliance.errors import InvalidInput
from appliance.practice import store
from appliance.practice.audit import AuditLog
from appliance.practice.models import PracticeProfile

if TYPE_CHECKING:
    from appliance.vault import Vault

DEFAULT_TIMEZONE: Final = "Europe/Berlin"
PROFILE_KEY: Final = "practice_profile"

#: the 17 Kassenärztliche Vereinigungen (Nordrhein-Westfalen has two)
KV_REGIONS: Final[dict[str, str]] = {
    "BW": "KV Baden-Württemberg",
    "BY": "KV Bayerns",
    "BE": "KV Berlin",
    "BB": "KV Brandenburg",
    "HB": "KV Bremen",
    "HH": "KV Hamburg",
    "HE": "KV Hessen",
    "MV": "KV Mecklenburg-Vorpommern",
    "NI": "KV Niedersachsen",
    "NO": "KV Nordrhein",
    "RP": "KV Rheinland-Pfalz",
    "SL": "KV Saarland",
    "SN": "KV Sachsen",
    "ST": "KV Sachsen-Anhalt",
    "SH": "KV Schleswig-Holstein",
    "TH": "KV Thüringen",
    "WL": "KV Westfalen-Lippe",
}

_BSNR: Final = re.compile(r"[0-9]{9}")
_POSTAL_CODE: Final = re.compile(r"[0-9]{5}")
_MAX_TEXT: Final = 200


def _text(field: str, value: str) -> str:
    value = value.strip()
    if not value:
        raise InvalidInput(field=field, detail="darf nicht leer sein")
    if len(value) > _MAX_TEXT:
        raise InvalidInput(field=field, detail=f"ist länger als {_MAX_TEXT} Zeichen")
    return value


def _public_url(value: str) -> str:
    allowed = "nur https://rechner oder http://rechner[:port] ohne Pfad"
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        raise InvalidInput(field="public_urls", detail=allowed) from None
    host = parts.hostname
    if (
        parts.scheme not in ("https", "http")
        or not host
        or parts.username is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise InvalidInput(field="public_urls", detail=allowed)
    if ":" in host:  # an IPv6 address keeps its brackets
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + ("" if port is None else f":{port}")


def validated(profile: PracticeProfile) -> PracticeProfile:
    """``profile`` trimmed and normalised; ``InvalidInput`` names the first bad field."""
    bsnr = profile.bsnr.strip()
    if not _BSNR.fullmatch(bsnr):
        raise InvalidInput(field="bsnr", detail="die Betriebsstättennummer hat genau 9 Ziffern")
    postal_code = profile.postal_code.strip()
    if not _POSTAL_CODE.fullmatch(postal_code):
        raise InvalidInput(field="postal_code", detail="eine Postleitzahl hat genau 5 Ziffern")
    kv_region = profile.kv_region.strip().upper()
    if kv_region not in KV_REGIONS:
        raise InvalidInput(field="kv_region", detail="unbekannte Kassenärztliche Vereinigung")
    timezone = profile.timezone.strip() or DEFAULT_TIMEZONE
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(field="timezone", detail="unbekannte Zeitzone") from None
    if not profile.public_urls:
        raise InvalidInput(field="public_urls", detail="mindestens eine Adresse ist nötig")
    return replace(
        profile,
        name=_text("name", profile.name),
        bsnr=bsnr,
        street=_text("street", profile.street),
        postal_code=postal_code,
        city=_text("city", profile.city),
        kv_region=kv_region,
        timezone=timezone,
        public_urls=tuple(_public_url(url) for url in profile.public_urls),
    )


class PracticeOffice:
    """Keeps the practice profile in the vault."""

    def __init__(self, vault: Vault, audit: AuditLog) -> None:
        self._vault = vault
        self._audit = audit

    def profile(self) -> PracticeProfile | None:
        """The saved profile, or ``None`` before onboarding saved one."""
        data = store.get_setting(self._vault, PROFILE_KEY)
        return None if data is None else PracticeProfile.from_dict(data)

    def save_profile(self, actor: str, profile: PracticeProfile) -> PracticeProfile:
        """Validate and save ``profile``; returns it as stored."""
        clean = validated(profile)
        store.put_setting(self._vault, PROFILE_KEY, clean.to_dict())
        self._audit.record(actor, "practice.profile")
        return clean

    def timezone(self) -> ZoneInfo:
        """The practice's time zone (Europe/Berlin until a profile says otherwise)."""
        profile = self.profile()
        return ZoneInfo(profile.timezone if profile else DEFAULT_TIMEZONE)

    def public_url(self) -> str | None:
        """The first public address patients reach the box by, if a profile names one."""
        profile = self.profile()
        return profile.public_urls[0] if profile and profile.public_urls else None
