"""The practice's internet lines as the staff sees them: ``GET /api/uplinks`` (every member),
``GET /api/uplinks/timeline.svg`` (admins) and the live ``uplinks`` event, against real probes:
two lines from 127.0.0.1 and 127.0.0.2 to a STUN responder on loopback that a test silences.

R4 (the box's relay is the fallback path: staff see which lines carry it), R9 (A01: who may
see what; A03: a line's name from the settings cannot inject markup into the image), R11 (the
image refers to nothing outside itself: no third-party content).
"""

from __future__ import annotations

import asyncio
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from appliance.config import Settings, TurnSettings, TurnUplink, VaultSettings, WebSettings
from appliance.practice.models import Role
from appliance.practice.onboarding import onboard
from appliance.runtime import build_box, build_services
from appliance.uplinks import Fault, LineState, LineStatus, Minute
from appliance.web.app import build_staff_app
from appliance.web.uplink_timeline import FILLS, render_timeline
from tests.stun_responder import StunResponder, stun_responder

from .conftest import ADMIN_PASSWORD, ASSISTANT_PASSWORD, CHEAP_KDF, PROFILE

SVG_NS = "{http://www.w3.org/2000/svg}"
HOSTILE = '<script>alert(1)</script>'
BERLIN = ZoneInfo("Europe/Berlin")


@dataclass
class LinesBox:
    """A box with two lines probed against ``stun``, and its staff site."""

    staff: TestClient
    stun: StunResponder

    async def login(self, username: str, password: str) -> None:
        answer = await self.staff.post("/api/login", json={"username": username,
                                                           "password": password})
        assert answer.status == 200, await answer.text()

    async def lines(self) -> list[dict[str, Any]]:
        answer = await self.staff.get("/api/uplinks")
        assert answer.status == 200, await answer.text()
        return (await answer.json())["lines"]

    async def until(self, states: dict[str, str], timeout_s: float = 10.0,
                    ) -> list[dict[str, Any]]:
        """The lines once each named line is in its state."""
        deadline = time.monotonic() + timeout_s
        while True:
            lines = await self.lines()
            now = {line["name"]: line["state"] for line in lines}
            if all(now.get(name) == state for name, state in states.items()):
                return lines
            assert time.monotonic() < deadline, now
            await asyncio.sleep(0.05)


def _lines(port: int, dsl_name: str = "DSL") -> tuple[TurnUplink, ...]:
    """Two lines: the responder reports each probe's source, so that is each public address."""
    return (
        TurnUplink(name=dsl_name, public_host="videosprechstunde.praxis-beispiel.de",
                   public_address="127.0.0.1", lan_address="127.0.0.1",
                   stun_target=("127.0.0.1", port)),
        TurnUplink(name="LTE", public_host="lte.praxis-beispiel.de",
                   public_address="127.0.0.2", lan_address="127.0.0.2",
                   stun_target=("127.0.0.1", port)),
    )


@pytest.fixture
async def stun() -> AsyncIterator[StunResponder]:
    async with stun_responder() as responder:
        yield responder


@pytest.fixture
def lines_box_factory(
    tmp_path: Path, stun: StunResponder, aiohttp_client: Callable[..., Awaitable[TestClient]],
) -> Callable[..., Awaitable[LinesBox]]:
    """A box with an admin and an assistant whose monitor probes every 0.2 s."""

    async def make(dsl_name: str = "DSL") -> LinesBox:
        settings = Settings(
            web=WebSettings(public_urls=("https://videosprechstunde.praxis-beispiel.de",)),
            vault=VaultSettings(path=tmp_path / "vault"),
            turn=TurnSettings(uplinks=_lines(stun.port, dsl_name), probe_interval_s=0.2,
                              probe_timeout_s=0.15),
        )
        services = build_services(settings, kdf=CHEAP_KDF)
        onboard(services, profile=PROFILE, username="admin", display_name="Anna Admin",
                password=ADMIN_PASSWORD, roles={Role.ADMIN})
        services.staff.add("admin", username="mfa", display_name="Tom MFA",
                           roles={Role.ASSISTANT}, password=ASSISTANT_PASSWORD)
        staff = await aiohttp_client(build_staff_app(build_box(settings, services)))
        return LinesBox(staff, stun)

    return make


@pytest.fixture
async def lines_box(lines_box_factory: Callable[..., Awaitable[LinesBox]]) -> LinesBox:
    return await lines_box_factory()


async def test_every_member_sees_each_line_now(lines_box: LinesBox) -> None:
    """R4: an assistant sees both lines answering: state, since, round trip, loss, what is
    probed; no history in the answer; the answer fits the published schema."""
    await lines_box.login("mfa", ASSISTANT_PASSWORD)
    lines = await lines_box.until({"DSL": "up", "LTE": "up"})
    dsl, lte = lines
    assert dsl["name"] == "DSL" and lte["name"] == "LTE"
    assert dsl["public_host"] == "videosprechstunde.praxis-beispiel.de"
    assert dsl["target"] == f"127.0.0.1:{lines_box.stun.port}" and not dsl["by_loopback"]
    assert lte["lan_address"] == "127.0.0.2" and lte["fault"] == ""
    assert dsl["rtt_ms"] is not None and 0 <= dsl["rtt_ms"] < 150 and dsl["loss"] == 0
    assert dsl["since"].endswith(("+01:00", "+02:00"))  # the practice's time zone
    assert dsl["last_answer"] is not None
    assert "history" not in dsl
    document = await (await lines_box.staff.get("/api/openapi.json")).json()
    schema = document["paths"]["/api/uplinks"]["get"]["responses"]["200"]["content"][
        "application/json"]["schema"]
    jsonschema.validate({"lines": lines}, schema)


async def test_who_may_see_the_lines_and_their_image(lines_box: LinesBox) -> None:
    """R9 (A01): nobody anonymous sees either; an assistant sees the lines, not the image; an
    admin gets the image as SVG, labelled in the request's language."""
    assert (await lines_box.staff.get("/api/uplinks")).status == 401
    assert (await lines_box.staff.get("/api/uplinks/timeline.svg")).status == 401
    await lines_box.login("mfa", ASSISTANT_PASSWORD)
    assert (await lines_box.staff.get("/api/uplinks")).status == 200
    refused = await lines_box.staff.get("/api/uplinks/timeline.svg")
    assert refused.status == 403 and (await refused.json())["error"] == "permission_denied"
    await lines_box.login("admin", ADMIN_PASSWORD)
    image = await lines_box.staff.get("/api/uplinks/timeline.svg")
    assert image.status == 200
    assert image.headers["Content-Type"].startswith("image/svg+xml")
    assert image.headers["Cache-Control"] == "no-store"
    assert "img-src 'self'" in image.headers["Content-Security-Policy"]
    assert "Internetleitungen der letzten 24 Stunden" in await image.text()
    ET.fromstring(await image.text())
    english = await lines_box.staff.get("/api/uplinks/timeline.svg",
                                        headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert "Internet lines over the last 24 hours" in await english.text()


async def _next_uplinks_event(events: ClientResponse) -> list[dict[str, Any]]:
    """The lines of the next ``uplinks`` event on an open stream."""
    kind = None
    while True:
        line = (await events.content.readline()).decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: ") and kind == "uplinks":
            return json.loads(line.removeprefix("data: "))["lines"]


async def test_a_dead_line_is_down_live_and_in_the_image(lines_box: LinesBox) -> None:
    """R4: the responder stops answering DSL: the open event stream says so at once (the
    dashboard's warning), the API names the fault, the image shows a down minute in DSL's band
    and none in LTE's; DSL answers again and the stream says it is back."""
    await lines_box.login("admin", ADMIN_PASSWORD)
    await lines_box.until({"DSL": "up", "LTE": "up"})
    events = await lines_box.staff.get("/api/events")
    assert events.status == 200
    lines_box.stun.silenced.add("127.0.0.1")
    async with asyncio.timeout(10):
        while True:
            lines = await _next_uplinks_event(events)
            if lines[0]["state"] == "down":
                break
    dsl, lte = lines
    assert dsl["fault"] == "no_answer" and dsl["since"] is not None and lte["state"] == "up"
    svg = ET.fromstring(await (await lines_box.staff.get("/api/uplinks/timeline.svg")).text())
    bands = svg.findall(f"{SVG_NS}g[@class='line']")
    assert len(bands) == 2
    assert FILLS[LineState.DOWN] in _fills(bands[0])
    assert FILLS[LineState.DOWN] not in _fills(bands[1])
    lines_box.stun.silenced.clear()
    async with asyncio.timeout(10):
        while (await _next_uplinks_event(events))[0]["state"] != "up":
            pass
    events.close()


def _fills(band: ET.Element) -> set[str]:
    """The colours of a band's runs (the band's own ground left out)."""
    return {rect.get("fill", "") for rect in band.findall(f"{SVG_NS}rect")
            if rect.find(f"{SVG_NS}title") is not None}


async def test_a_hostile_line_name_stays_text(
        lines_box_factory: Callable[..., Awaitable[LinesBox]]) -> None:
    """R9 (A03), R11: a line named like markup is escaped in the image, which holds no script,
    no link and no reference to anything outside itself."""
    box = await lines_box_factory(dsl_name=HOSTILE)
    await box.login("admin", ADMIN_PASSWORD)
    await box.until({HOSTILE: "up"})
    text = await (await box.staff.get("/api/uplinks/timeline.svg")).text()
    assert "<script" not in text and "&lt;script&gt;" in text
    svg = ET.fromstring(text)
    # the label, shortened to its column, is the name as text; the band's title is all of it
    assert HOSTILE[:21] + "…" in ["".join(node.itertext()) for node in svg.iter(f"{SVG_NS}text")]
    assert HOSTILE in svg.findtext(f"{SVG_NS}g[@class='line']/{SVG_NS}title", "")
    for node in svg.iter():
        assert node.tag.removeprefix(SVG_NS) not in ("script", "a", "image", "use",
                                                     "foreignObject", "style"), node.tag
        assert not [name for name in node.attrib
                    if name.endswith("href") or name.startswith("on") or name == "style"]


# --- the image on its own: a history written by hand ------------------------------------------


def _status(name: str, history: tuple[Minute, ...], **changes: Any) -> LineStatus:
    line = LineStatus(name=name, public_host=f"{name.lower()}.praxis-beispiel.de",
                      public_address="203.0.113.1", lan_address="192.168.50.10",
                      target="stun.provider-beispiel.de:3478", state=LineState.UP,
                      since=None, rtt_ms=21.0, loss=0.0, fault=Fault.NONE,
                      last_answer=None, history=history)
    return replace(line, **changes)


def _day(now: float, down: range = range(0), degraded: range = range(0)) -> tuple[Minute, ...]:
    """24 h of minutes before ``now``: up, except the minutes ago given as down or degraded."""
    minutes = []
    for ago in range(24 * 60, 0, -1):
        state = (LineState.DOWN if ago in down else
                 LineState.DEGRADED if ago in degraded else LineState.UP)
        answered = 0 if state is LineState.DOWN else 30
        minutes.append(Minute(start=int(now) // 60 * 60 - ago * 60, sent=30, answered=answered,
                              rtt_ms_sum=answered * (300.0 if state is LineState.DEGRADED
                                                     else 20.0), worst=state))
    return tuple(minutes)


def test_image_shows_each_state_where_it_happened() -> None:
    """A DSL down from 10:42 to 10:50 (Berlin) shows as one down run with those times, in DSL's
    band only; LTE without any history is all "no data"; hour ticks are the practice's clock;
    the round trip is a line over each band that has answers."""
    now = 1_764_928_800.0  # 2025-12-05 11:00 in Berlin (10:00 UTC)
    dsl = _status("DSL", _day(now, down=range(11, 19)))
    lte = _status("LTE", (), state=LineState.UNKNOWN, rtt_ms=None)
    svg = ET.fromstring(render_timeline([dsl, lte], now=now, tz=BERLIN))
    bands = svg.findall(f"{SVG_NS}g[@class='line']")
    assert len(bands) == 2
    down = [rect for rect in bands[0].iter(f"{SVG_NS}rect")
            if rect.get("fill") == FILLS[LineState.DOWN]]
    assert len(down) == 1
    assert down[0].findtext(f"{SVG_NS}title") == "10:42–10:50: ausgefallen"
    assert bands[0].find(f"{SVG_NS}polyline") is not None
    assert _fills(bands[1]) == set() and bands[1].find(f"{SVG_NS}polyline") is None
    labels = {"".join(t.itertext()) for t in svg.iter(f"{SVG_NS}text")}
    assert {"12:00", "15:00", "00:00", "09:00"} <= labels  # Berlin's hours, not UTC's
    assert "ausgefallen" in labels and "in Ordnung" in labels and "gestört" in labels


def test_image_in_english_and_without_lines() -> None:
    """The labels follow the request's language; without lines the image says there are none."""
    now = time.time()
    english = render_timeline([_status("DSL", _day(now, degraded=range(5, 9)))], now=now,
                              tz=BERLIN, lang="en")
    assert "impaired" in english and "Internet lines over the last 24 hours" in english
    empty = ET.fromstring(render_timeline([], now=now, tz=BERLIN))
    assert "Keine Internetleitung eingerichtet." in "".join(empty.itertext())
