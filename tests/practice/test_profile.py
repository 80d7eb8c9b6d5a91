"""The practice profile: the 17 KVs, validation of every field, normalised public addresses."""

from __future__ import annotations

from typing import Any

import pytest
from msgspec.structs import replace

from appliance.errors import InvalidInput
from appliance.practice.audit import AuditLog
from appliance.practice.models import PracticeProfile
from appliance.practice.profile import KV_REGIONS, PracticeOffice


def test_seventeen_kvs() -> None:
    """O5: all 17 Kassenärztliche Vereinigungen, Nordrhein and Westfalen-Lippe separately."""
    assert set(KV_REGIONS) == {"BW", "BY", "BE", "BB", "HB", "HH", "HE", "MV", "NI", "NO", "RP",
                               "SL", "SN", "ST", "SH", "TH", "WL"}
    assert KV_REGIONS["NO"] == "KV Nordrhein"
    assert KV_REGIONS["WL"] == "KV Westfalen-Lippe"


def test_no_profile_before_onboarding(office: PracticeOffice) -> None:
    """A new box has no profile; the time zone defaults to Berlin."""
    assert office.profile() is None
    assert office.public_url() is None
    assert office.timezone().key == "Europe/Berlin"


def test_save_and_read(office: PracticeOffice, profile: PracticeProfile, audit: AuditLog) -> None:
    """A saved profile reads back as saved, and saving is audited."""
    saved = office.save_profile("admin", profile)
    assert saved == profile
    assert office.profile() == profile
    assert office.public_url() == "https://praxis.example.de"
    entry = audit.entries(limit=1)[0]
    assert (entry.actor, entry.action, entry.target) == ("admin", "practice.profile", None)


def test_save_normalises(office: PracticeOffice, profile: PracticeProfile) -> None:
    """Whitespace, a trailing slash, lower-case KV code and an empty time zone are cleaned."""
    messy = replace(profile, name="  Praxis  ", bsnr=" 123456789 ", kv_region="no",
                    timezone="", public_urls=("https://Praxis.Example.de/", "http://10.0.0.2:8081"))
    saved = office.save_profile("admin", messy)
    assert saved.name == "Praxis"
    assert saved.bsnr == "123456789"
    assert saved.kv_region == "NO"
    assert saved.timezone == "Europe/Berlin"
    assert saved.public_urls == ("https://praxis.example.de", "http://10.0.0.2:8081")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", " "),
        ("bsnr", "12345678"),
        ("bsnr", "1234567890"),
        ("bsnr", "12345678a"),
        ("postal_code", "1067"),
        ("postal_code", "D-01067"),
        ("kv_region", "XX"),
        ("timezone", "Mars/Olympus"),
        ("timezone", "../etc/passwd"),
        ("public_urls", ()),
        ("public_urls", ("ftp://praxis.example.de",)),
        ("public_urls", ("https://praxis.example.de/v",)),
        ("public_urls", ("https://praxis.example.de?x=1",)),
        ("public_urls", ("https://user@praxis.example.de",)),
        ("public_urls", ("praxis.example.de",)),
        ("public_urls", ("https://praxis.example.de:99999",)),
        ("street", ""),
        ("city", ""),
    ],
)
def test_invalid_fields(office: PracticeOffice, profile: PracticeProfile, field: str,
                        value: Any) -> None:
    """Each bad field is refused with InvalidInput naming it, and nothing is saved."""
    with pytest.raises(InvalidInput) as raised:
        office.save_profile("admin", replace(profile, **{field: value}))
    assert raised.value.params["field"] == field
    assert office.profile() is None
