"""Static files as the sites serve them: versioned URLs, compression, caching; patients' texts."""

from __future__ import annotations

import gzip
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient

from appliance.i18n import catalog, patient_catalog
from appliance.web.assets import IMMUTABLE, REVALIDATE, StaticAssets

from .conftest import Box

STATIC = Path(__file__).resolve().parents[2] / "appliance" / "web" / "static"
PATIENT_CODE = [*(STATIC / "patient").glob("*.js"), *(STATIC / "call").glob("*.js"),
                *(STATIC / "common").glob("*.js"), STATIC / "patient.html"]


async def test_pages_name_their_assets_by_content(practice: Box) -> None:
    """Issue 8: the patient page's scripts and styles carry ``?v=<content hash>``; under that
    URL they are cached for good, compressed; an old or bare URL is revalidated (ETag, 304)."""
    page = await practice.public.get("/v/AAAAAAAAAAAAAAAAAAAAAA", headers={
        "Accept-Encoding": "gzip"})
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Content-Encoding"] == "gzip"
    html = await page.text()
    script = re.search(r'src="(/static/patient/patient\.js\?v=[0-9a-f]{16})"', html)
    assert script, html[:600]
    versioned = await practice.public.get(script.group(1), headers={"Accept-Encoding": "gzip"})
    assert versioned.status == 200 and versioned.headers["Cache-Control"] == IMMUTABLE
    assert versioned.headers["Content-Encoding"] == "gzip"
    assert versioned.headers["Content-Type"].startswith("text/javascript")
    body = await versioned.read()  # aiohttp's client decodes gzip itself
    assert re.search(rb"from '/static/common/api\.js\?v=[0-9a-f]{16}'", body)
    bare = await practice.public.get("/static/patient/patient.js")
    assert bare.headers["Cache-Control"] == REVALIDATE
    again = await practice.public.get("/static/patient/patient.js", headers={
        "If-None-Match": bare.headers["ETag"]})
    assert again.status == 304


async def test_a_module_changes_its_url_when_an_import_changes(
    tmp_path: Path, aiohttp_client: Callable[..., Awaitable[TestClient]],
) -> None:
    """The version of a module holds its imports' versions (relative and absolute ones): a
    change deep down gives every module above it a new URL, so nothing stale stays cached."""
    (tmp_path / "call").mkdir()
    (tmp_path / "call" / "stats.js").write_text("export const x = 1;\n")
    (tmp_path / "call" / "peer.js").write_text("import { x } from './stats.js';\n")
    (tmp_path / "call" / "app.js").write_text("import '/static/call/peer.js';\n")
    first = StaticAssets(tmp_path)
    (tmp_path / "call" / "stats.js").write_text("export const x = 2;\n")
    second = StaticAssets(tmp_path)
    for url in ("/static/call/stats.js", "/static/call/peer.js", "/static/call/app.js"):
        assert first.url(url) != second.url(url), url
    app = web.Application()
    second.setup(app)
    client = await aiohttp_client(app)
    text = await (await client.get(second.url("/static/call/peer.js"))).text()
    stats_version = second.url("/static/call/stats.js")[-16:]
    assert text == f"import {{ x }} from './stats.js?v={stats_version}';\n"
    raw = await client.get("/static/call/app.js", headers={"Accept-Encoding": "identity"},
                           auto_decompress=False)
    assert "Content-Encoding" not in raw.headers  # small: not worth compressing
    assert (await client.get("/static/call/missing.js")).status == 404


async def test_compressed_bytes_are_the_file(practice: Box) -> None:
    """What goes out gzip-compressed decompresses to exactly what the box serves plainly."""
    plain = await (await practice.staff.get("/static/call/peer.js", headers={
        "Accept-Encoding": "identity"})).read()
    packed = await practice.staff.get("/static/call/peer.js", headers={"Accept-Encoding": "gzip"},
                                      auto_decompress=False)
    assert packed.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(await packed.read()) == plain and len(plain) > 10_000


async def test_the_patient_gets_only_patient_texts(practice: Box) -> None:
    """Issue 8: the public site's catalogue holds every text the patient's page names and none
    of the staff's (it sent all 43 KB, staff texts included, to every patient)."""
    public = await (await practice.public.get("/locales/de.json")).json()
    staff = await (await practice.staff.get("/locales/de.json")).json()
    assert public == patient_catalog("de") and staff == catalog("de")
    assert not any(key.startswith(("ui.dashboard.", "ui.users.", "ui.audit.")) for key in public)
    named = {key for path in PATIENT_CODE for key in re.findall(
        r"""['"`]((?:ui|device_check)\.[\w.]+\w)['"`]""", path.read_text("utf-8"))}
    prefixes = {key for path in PATIENT_CODE for key in re.findall(
        r"""`((?:ui|device_check)\.[\w.]+\.)\$\{""", path.read_text("utf-8"))}
    assert named and prefixes
    assert sorted(named - public.keys()) == []
    for prefix in prefixes:
        assert any(key.startswith(prefix) for key in public), prefix
