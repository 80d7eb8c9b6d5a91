"""Several public hosts per call: the patient's page keeps a signaling socket over each uplink.

Each uplink has its own public host name (UPLINKS.md). The page lives on one of them; its cookie
is not sent to the others, so the box hands the page a ticket that opens this link's signaling
socket there (and nothing else), allows exactly those hosts in the page's CSP, and accepts their
origins on the socket.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from msgspec.structs import replace

from appliance.rtc import messages as m
from tests.web import conftest as web_fixtures
from tests.web.conftest import DOCTOR_PASSWORD, Box

from .peers import SignalingPage
from .test_call_signaling import doctor_page, is_room, patient_page, waiting_patient

settings, services, box, practice = (
    web_fixtures.settings, web_fixtures.services, web_fixtures.box, web_fixtures.practice)

DSL = "https://videosprechstunde.praxis-beispiel.de"
LTE = "https://lte.praxis-beispiel.de:8443"


@pytest.fixture
def two_lines(practice: Box) -> Box:
    """The practice reaches patients over two lines, each with its own public host."""
    office = practice.services.office
    office.save_profile("admin", replace(office.profile(), public_urls=(DSL, LTE)))
    return practice


def _elsewhere(box: Box, token: str, ticket: str | None, origin: str = LTE) -> SignalingPage:
    """The same page's socket to the other host: no cookie there, the ticket instead."""
    protocols = ("sz.v1",) if ticket is None else ("sz.v1", f"sz.ticket.{ticket}")

    async def connect() -> aiohttp.ClientWebSocketResponse:
        session = aiohttp.ClientSession()  # a host that never saw this browser's cookie
        try:
            ws = await session.ws_connect(box.public.make_url(f"/v/{token}/signal"),
                                          protocols=protocols, headers={"Origin": origin})
        except BaseException:
            await session.close()
            raise
        ws._sz_session = session  # type: ignore[attr-defined] - closed with the test
        return ws

    return SignalingPage(connect, name="patient@lte")


async def _hosts(box: Box, token: str) -> dict[str, Any]:
    answer = await box.public.get(f"/v/{token}/signaling")
    assert answer.status == 200, await answer.text()
    return await answer.json()


async def test_the_page_learns_every_host_and_a_ticket(two_lines: Box) -> None:
    """Only a verified page learns the hosts and its ticket; the ticket is its own."""
    _, token = await waiting_patient(two_lines)
    hosts = await _hosts(two_lines, token)
    assert hosts["origins"] == [DSL, LTE]
    assert len(hosts["ticket"]) >= 40
    stranger = await two_lines.public.get(f"/v/{token}/signaling",
                                          cookies={"sz_patient": "x" * 43})
    assert stranger.status == 401
    _, other_token = await waiting_patient(two_lines, name="Max Mustermann")
    assert (await _hosts(two_lines, other_token))["ticket"] != hosts["ticket"]


async def test_a_socket_per_host_for_one_participant(two_lines: Box) -> None:
    """UPLINKS.md: the patient holds a socket on each host at once, as one participant; the
    doctor's message reaches them while one of the two sockets is dead."""
    appt, token = await waiting_patient(two_lines)
    ticket = (await _hosts(two_lines, token))["ticket"]
    await two_lines.login("dr.mueller", DOCTOR_PASSWORD)
    doctor = doctor_page(two_lines, appt)
    patient = patient_page(two_lines.public, token)
    second: Any = None
    try:
        await doctor.open()
        await patient.open()
        patient.connect_socket = _elsewhere(two_lines, token, ticket).connect_socket
        second = await patient.open()  # same session, second host
        room = await doctor.wait_for(is_room(lambda r: any(
            p.role == "patient" for p in r.participants)))
        assert isinstance(room, m.Room)
        assert [p.role for p in room.participants].count("patient") == 1
        await doctor.send("admit", participant=patient.id)
        await patient.wait_for(lambda msg: isinstance(msg, m.Admitted))
        patient.kill_path(patient.lines[0])  # the first line dies; the second carries on
        await doctor.send("signal", to=patient.id, data={"kind": "note", "text": "über LTE"})
        await patient.wait_for(lambda msg: isinstance(msg, m.SignalFrom)
                               and msg.data.get("text") == "über LTE")
        assert second in patient.live_lines()
    finally:
        await doctor.close()
        await patient.close()
        for line in patient.lines:
            session = getattr(line.ws, "_sz_session", None)
            if session is not None:
                await session.close()


@pytest.mark.parametrize(("ticket", "origin", "status"), [
    (None, LTE, 401),  # no cookie, no ticket
    ("x" * 43, LTE, 401),  # a made-up ticket
    ("mine", "https://evil.example", 403),  # a page of another site (cross-site hijacking)
    ("mine", "https://praxis-beispiel.de.evil.example", 403),
])
async def test_the_other_host_wants_ticket_and_a_practice_origin(
    two_lines: Box, ticket: str | None, origin: str, status: int
) -> None:
    """R1: without the ticket of this very link, or from a page of another origin, the other
    host opens nothing."""
    _, token = await waiting_patient(two_lines)
    mine = (await _hosts(two_lines, token))["ticket"]
    page = _elsewhere(two_lines, token, mine if ticket == "mine" else ticket, origin)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await page.open()
    assert refused.value.status == status


async def test_a_ticket_opens_only_its_own_link(two_lines: Box) -> None:
    """The ticket of one link opens no other link's socket (and the cookie of that other
    browser is not needed to prove it)."""
    _, token = await waiting_patient(two_lines)
    mine = (await _hosts(two_lines, token))["ticket"]
    _, other = await waiting_patient(two_lines, name="Max Mustermann")
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await _elsewhere(two_lines, other, mine).open()
    assert refused.value.status == 401


async def test_csp_allows_exactly_the_other_hosts(two_lines: Box) -> None:
    """No request to any other origin — except the signaling sockets to the practice's own
    other public hosts, on the patient site only."""
    _, token = await waiting_patient(two_lines)
    page = await two_lines.public.get(f"/v/{token}")
    csp = page.headers["Content-Security-Policy"]
    connect = next(d for d in csp.split("; ") if d.startswith("connect-src"))
    assert connect == "connect-src 'self' wss://videosprechstunde.praxis-beispiel.de " \
                      "wss://lte.praxis-beispiel.de:8443"
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    staff = await two_lines.staff.get("/")
    assert "connect-src 'self';" in staff.headers["Content-Security-Policy"]


@pytest.mark.parametrize("protocols", [
    ("sz.ticket.{ticket}",),  # without sz.v1 aiohttp would log the offer (and the ticket)
    ("sz.v1", "sz.ticket.short"),
    ("sz.v1", "sz.ticket.{ticket}", "sz.ticket.{ticket}"),
    ("sz.v1", "sz.ticket.\udcff" + "a" * 42),
])
async def test_a_malformed_ticket_offer_is_refused_plainly(
    two_lines: Box, protocols: tuple[str, ...], caplog: pytest.LogCaptureFixture
) -> None:
    """Bad input gets a clear 400 before the upgrade: never a 500, never the ticket in a log."""
    _, token = await waiting_patient(two_lines)
    ticket = (await _hosts(two_lines, token))["ticket"]
    offered = ", ".join(p.format(ticket=ticket) for p in protocols)
    async with aiohttp.ClientSession() as session:
        answer = await session.get(
            two_lines.public.make_url(f"/v/{token}/signal"),
            headers={"Origin": LTE, "Connection": "Upgrade", "Upgrade": "websocket",
                     "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                     "Sec-WebSocket-Protocol": offered.encode("utf-8", "surrogateescape")
                     .decode("latin-1")})
        assert answer.status == 400, await answer.text()
    assert ticket not in caplog.text
