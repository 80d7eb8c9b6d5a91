"""The device check through the real sites (R13): a patient's or a practice PC's call to the echo.

An aiortc client stands in for the page: it posts its offer to the route, connects with the
answer and checks that picture, voice and probes come back. Runs in the test namespace.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jsonschema
import pytest

from appliance import runtime
from appliance.practice.models import Appointment
from appliance.rtc.connection_verdict import THRESHOLDS
from appliance.rtc.echo_peer import EchoService
from appliance.web.device_check import BUSY, DEVICE_CHECK_RATE

from ..rtc.echo_client import EchoClient, clients_fixture, eventually  # noqa: F401 - fixture
from .conftest import DOCTOR_PASSWORD, Box

MAX_SECONDS = 2.0


@pytest.fixture(autouse=True)
def echo(monkeypatch: pytest.MonkeyPatch) -> EchoService:
    """The box's echo service, with a 2 s limit so the hang-up is seen quickly."""
    service = EchoService(max_concurrent=2, max_seconds=MAX_SECONDS)
    monkeypatch.setattr(runtime, "EchoService", lambda **_: service)
    return service


async def _client(clients: list[EchoClient]) -> tuple[EchoClient, dict[str, str]]:
    client = EchoClient()
    clients.append(client)
    return client, await client.offer()


def _appointment(box: Box) -> Appointment:
    patient = box.services.patients.add("admin", full_name="Erika Mustermann")
    start = box.services.clock.now() + timedelta(minutes=10)
    return box.services.appointments.create("admin", doctor="dr.mueller", patient_id=patient.id,
                                            start=start)


async def _verified_link(box: Box) -> str:
    """A link whose code the patient (the public test client) has entered."""
    appt = _appointment(box)
    token = appt.link_token
    response = await box.public.post(f"/v/{token}/code", json={"code": appt.access_code})
    assert response.status == 200, await response.text()
    return token


async def test_patient_check_echoes_picture_voice_and_probes(
    practice: Box, echo: EchoService, clients: list[EchoClient]
) -> None:
    """The patient's page gets an answer with the thresholds; media and probes come back."""
    token = await _verified_link(practice)
    client, offer = await _client(clients)
    response = await practice.public.post(f"/v/{token}/device-check", json=offer)
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert answer["type"] == "answer" and answer["sdp"].startswith("v=0")
    assert answer["thresholds"] == THRESHOLDS.as_json()  # one source of truth for the page
    assert answer["max_seconds"] == MAX_SECONDS
    await client.accept(answer)
    await client.wait_open()
    rtt = await client.probe(1)
    assert rtt > 0  # the probe came back (no timing bound: the machine may be busy)
    await client.wait_frames(5, seconds=MAX_SECONDS)
    assert client.audio_frames > 0 and max(client.frame_sizes) <= (320, 240)
    assert echo.active == 1
    await client.close()  # the page leaves: the slot frees at once
    await eventually(lambda: not echo.active, seconds=2)


async def test_staff_check_answers_per_the_document_and_ends_after_max_seconds(
    practice: Box, echo: EchoService, clients: list[EchoClient]
) -> None:
    """A logged-in staff member's check connects; the box hangs up after ``max_seconds``."""
    headers = await practice.login("dr.mueller", DOCTOR_PASSWORD)
    client, offer = await _client(clients)
    response = await practice.staff.post("/api/device-check", json=offer, headers=headers)
    assert response.status == 200, await response.text()
    answer = await response.json()
    document = await (await practice.staff.get("/api/openapi.json")).json()
    operation = document["paths"]["/api/device-check"]["post"]
    jsonschema.validate(answer, operation["responses"]["200"]["content"]["application/json"][
        "schema"])
    assert operation["x-access"] == "staff"
    await client.accept(answer)
    await client.wait_open()
    await client.wait_frames(3, seconds=MAX_SECONDS)
    await client.wait_hung_up(seconds=MAX_SECONDS + 10)  # the box hangs up by itself
    assert echo.active == 0


async def test_third_concurrent_check_waits_with_a_retry_hint(
    practice: Box, echo: EchoService, clients: list[EchoClient]
) -> None:
    """Two checks run (a patient, a practice PC); the third patient gets 503 and a hint."""
    first = await _verified_link(practice)
    _, offer = await _client(clients)
    assert (await practice.public.post(f"/v/{first}/device-check", json=offer)).status == 200
    headers = await practice.login("dr.mueller", DOCTOR_PASSWORD)
    _, offer = await _client(clients)
    staff = await practice.staff.post("/api/device-check", json=offer, headers=headers)
    assert staff.status == 200
    second = await _verified_link(practice)  # the same browser, now verified for link 2
    _, offer = await _client(clients)
    response = await practice.public.post(f"/v/{second}/device-check", json=offer)
    assert response.status == 503
    body = await response.json()
    jsonschema.validate(body, BUSY)
    assert body["error"] == "device_check_busy" and body["position"] == 1
    assert 1 <= body["retry_after_s"] <= MAX_SECONDS
    assert response.headers["Retry-After"] == str(body["retry_after_s"])
    assert body["message"].startswith(
        "Bitte einen Moment – der Verbindungstest ist gerade belegt.")
    english = await practice.public.post(f"/v/{second}/device-check", json=offer,
                                         headers={"Accept-Language": "en"})
    assert "connection test is busy" in (await english.json())["message"]
    assert echo.active == 2


async def test_patient_route_needs_the_session_of_that_very_link(
    practice: Box, clients: list[EchoClient]
) -> None:
    """No code entered → 401; verified for another link → 401; nothing is started."""
    appt = _appointment(practice)
    token = appt.link_token
    _, offer = await _client(clients)
    response = await practice.public.post(f"/v/{token}/device-check", json=offer)
    assert response.status == 401
    assert (await response.json())["error"] == "not_logged_in"
    await _verified_link(practice)  # a session, but for a different appointment
    response = await practice.public.post(f"/v/{token}/device-check", json=offer)
    assert response.status == 401
    foreign = await practice.public.post(f"/v/{token}/device-check", json=offer,
                                         headers={"Origin": "https://evil.example"})
    assert foreign.status == 403


async def test_staff_route_needs_login_and_csrf(
    practice: Box, clients: list[EchoClient]
) -> None:
    """Not logged in → 401; logged in without the CSRF token → 403; not on the public site."""
    _, offer = await _client(clients)
    assert (await practice.staff.post("/api/device-check", json=offer)).status == 401
    await practice.login("dr.mueller", DOCTOR_PASSWORD)
    assert (await practice.staff.post("/api/device-check", json=offer)).status == 403
    assert (await practice.public.post("/api/device-check", json=offer)).status == 404


async def test_bad_body_and_bad_offer_get_clear_errors(practice: Box) -> None:
    """A missing field and an unusable SDP are 400s with a German message; no slot is taken."""
    token = await _verified_link(practice)
    missing = await practice.public.post(f"/v/{token}/device-check", json={"type": "offer"})
    assert missing.status == 400 and (await missing.json())["field"] == "sdp"
    bad = await practice.public.post(f"/v/{token}/device-check",
                                     json={"sdp": "v=0\r\nm=banana\r\n", "type": "offer"})
    body: dict[str, Any] = await bad.json()
    assert bad.status == 400 and body["error"] == "device_check_offer_invalid"
    assert "Browser" in body["message"]


async def test_patient_checks_are_rate_limited_per_address(practice: Box) -> None:
    """Starting checks in a loop from one address hits the limit (429)."""
    statuses = [
        (await practice.public.post("/v/AAAAAAAAAAAAAAAAAAAAAA/device-check",
                                    json={"sdp": "v=0", "type": "offer"})).status
        for _ in range(DEVICE_CHECK_RATE[1] + 1)
    ]
    assert statuses[:-1] == [401] * DEVICE_CHECK_RATE[1] and statuses[-1] == 429
