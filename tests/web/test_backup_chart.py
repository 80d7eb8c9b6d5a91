"""The backup's growth as an image for the admin's page: ``GET /api/backup/growth.svg`` and its
renderer ``appliance.web.backup_chart`` (issue 13).

R9 (A01: only admins get it; A03: a target's name and address, from the settings or the admin
page, cannot inject markup into the image), R11 (the image refers to nothing outside itself).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from appliance.config import BackupSettings, BackupTarget, Settings, VaultSettings, WebSettings
from appliance.web.backup_chart import COLOURS, Series, render_growth, size_text

from .conftest import ADMIN_PASSWORD, ASSISTANT_PASSWORD, Box

SVG_NS = "{http://www.w3.org/2000/svg}"
HOSTILE = '<script>alert(1)</script>'
BERLIN = ZoneInfo("Europe/Berlin")
FORBIDDEN = ("script", "a", "image", "use", "foreignObject", "style", "iframe")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A box with two targets in the settings file."""
    return Settings(
        web=WebSettings(public_urls=("https://videosprechstunde.praxis-beispiel.de",)),
        vault=VaultSettings(path=tmp_path / "box" / "vault"),
        backup=BackupSettings(targets=(BackupTarget(name="usb", url=str(tmp_path / "usb")),
                                       BackupTarget(name="nas", url=str(tmp_path / "nas")))),
    )


def _sizes(settings: Settings, **per_target: list[tuple[str, int]]) -> None:
    """The sizes of good runs, as the backup service notes them in its state."""
    settings.backup_dir.mkdir(parents=True, exist_ok=True)
    (settings.backup_dir / "state.json").write_text(json.dumps(
        {name: {"sizes": [list(point) for point in sizes]}
         for name, sizes in per_target.items()}), "utf-8")


def _texts(svg: ET.Element) -> list[str]:
    return ["".join(node.itertext()) for node in svg.iter(f"{SVG_NS}text")]


def _safe(svg: ET.Element) -> None:
    """Nothing that runs, styles or fetches; no attribute naming another place."""
    for node in svg.iter():
        assert node.tag.removeprefix(SVG_NS) not in FORBIDDEN, node.tag
        for name, value in node.attrib.items():
            assert not name.startswith("on") and "href" not in name, (node.tag, name)
            assert "url(" not in value and "//" not in value, (node.tag, name, value)


async def test_only_admins_get_the_growth_chart(practice: Box, settings: Settings) -> None:
    """Issue 13, R9 (A01): nobody logged out and no assistant gets the image; the admin gets
    an SVG that is never cached, labelled in the request's language."""
    _sizes(settings, usb=[("2026-03-01T01:30:00+00:00", 12_400_000)])
    await practice.staff.post("/api/logout",
                              headers=await practice.login("admin", ADMIN_PASSWORD))
    assert (await practice.staff.get("/api/backup/growth.svg")).status == 401
    await practice.login("mfa", ASSISTANT_PASSWORD)
    assert (await practice.staff.get("/api/backup/growth.svg")).status == 403
    await practice.login("admin", ADMIN_PASSWORD)
    image = await practice.staff.get("/api/backup/growth.svg")
    assert image.status == 200
    assert image.headers["Content-Type"].startswith("image/svg+xml")
    assert image.headers["Cache-Control"] == "no-store"
    german = ET.fromstring(await image.text())
    assert "Größe der Sicherungen je Ziel" in _texts(german)
    english = await practice.staff.get("/api/backup/growth.svg",
                                       headers={"Accept-Language": "en"})
    assert "Size of the backups per target" in _texts(ET.fromstring(await english.text()))


async def test_one_series_per_target_and_a_hostile_address_stays_text(
        practice: Box, settings: Settings) -> None:
    """Issue 13, R9 (A03), R11: one series per target (settings first, then those added on the
    page), each with a point per good run; an address typed on the admin page with markup in it
    is text in the legend and in the series' title, and the image holds nothing that runs or
    fetches."""
    headers = await practice.login("admin", ADMIN_PASSWORD)
    added = await practice.staff.post("/api/backup/targets", headers=headers, json={
        "name": "extra", "url": f"/srv/{HOSTILE}"})
    assert added.status == 201, await added.text()
    _sizes(settings, usb=[("2026-03-01T01:30:00+00:00", 12_400_000),
                          ("2026-03-02T01:30:00+00:00", 13_100_000)],
           nas=[("2026-03-02T01:31:00+00:00", 13_200_000)])
    text = await (await practice.staff.get("/api/backup/growth.svg")).text()
    assert "<script" not in text
    svg = ET.fromstring(text)
    _safe(svg)
    series = svg.findall(f"{SVG_NS}g[@class='series']")
    assert [s.findtext(f"{SVG_NS}title", "").split(" ")[0] for s in series] == [
        "usb", "nas", "extra"]
    assert [len(s.findall(f"{SVG_NS}circle")) for s in series] == [2, 1, 0]
    assert series[0].find(f"{SVG_NS}polyline") is not None
    assert series[2].findtext(f"{SVG_NS}title") == f"extra (/srv/{HOSTILE})"
    assert any(HOSTILE in label for label in _texts(svg))


def test_sizes_in_german_and_dates_on_the_practice_clock() -> None:
    """Issue 13: sizes in kB/MB/GB with a decimal comma in German; a run shortly before
    midnight UTC on New Year's Eve is dated 01.01. on a Berlin practice's clock; each line has
    its own colour and the legend its latest size."""
    assert size_text(12_400_000, "de") == "12,4 MB"
    assert size_text(1_240_000_000, "de") == "1,2 GB"
    assert size_text(12_400_000, "en") == "12.4 MB"
    assert size_text(850_000, "de") == "850 kB"
    new_year = datetime(2025, 12, 31, 23, 30, tzinfo=UTC)
    svg = ET.fromstring(render_growth([
        Series(name="usb", url="/media/usb", sizes=[(new_year - timedelta(days=10), 800_000_000),
                                                     (new_year, 1_200_000_000)]),
        Series(name="cloud", url="s3:https://s3.example.test/praxis", sizes=[]),
    ], tz=BERLIN))
    _safe(svg)
    usb, cloud = svg.findall(f"{SVG_NS}g[@class='series']")
    assert usb.find(f"{SVG_NS}polyline").get("stroke") == COLOURS[0]
    dots = [c.findtext(f"{SVG_NS}title") for c in usb.findall(f"{SVG_NS}circle")]
    assert dots == ["22.12.2025 00:30: 800 MB", "01.01.2026 00:30: 1,2 GB"]
    labels = _texts(svg)
    assert "01.01.2026" in labels and "Datum: Europe/Berlin" in labels
    assert any(label.startswith("usb /media/usb – 1,2 GB") for label in labels)
    assert any(label.endswith("noch keine Sicherung") for label in labels)
    assert cloud.find(f"{SVG_NS}circle") is None
    empty = ET.fromstring(render_growth([], tz=BERLIN))
    assert any(label.startswith("Noch keine Sicherung") for label in _texts(empty))
    one_night = ET.fromstring(render_growth([Series(name="usb", url="/media/usb", sizes=[
        (new_year, 5_800)])], tz=BERLIN))
    assert "01.01. 00:30" in _texts(one_night)  # a single run: its time, not one date 5 times
