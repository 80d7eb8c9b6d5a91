"""The patient's way in on the public site: code, name, consent, waiting room (R1, O1, O4)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from appliance.practice.models import AppointmentState

from .conftest import Box


def _appointment(box: Box):
    services = box.services
    patient = services.patients.add("admin", full_name="Erika Mustermann")
    start = services.clock.now() + timedelta(minutes=5)
    return services.appointments.create("admin", doctor="dr.mueller", patient_id=patient.id,
                                        start=start)


def _token(box: Box, appt) -> str:
    return appt.link_token


async def test_patient_checks_in_and_waits(practice: Box) -> None:
    """Right code, full name and both confirmations put the patient in the waiting room."""
    appt = _appointment(practice)
    token = _token(practice, appt)
    info = await (await practice.public.get(f"/v/{token}/info")).json()
    assert info["online"] and info["practice_name"] == "Praxis Dr. Beispiel"
    assert info["state"] is None  # nothing beyond name and time before the code
    page = await practice.public.get(f"/v/{token}")
    assert page.status == 200
    ok = await practice.public.post(f"/v/{token}/code",
                                    json={"code": appt.access_code.lower().replace("-", " ")})
    assert ok.status == 200, await ok.text()
    missing = await practice.public.post(f"/v/{token}/check-in", json={
        "full_name": "Erika Mustermann", "consent": True, "rules": False})
    assert missing.status == 400
    checked = await practice.public.post(f"/v/{token}/check-in", json={
        "full_name": "Erika Mustermann", "consent": True, "rules": True})
    assert checked.status == 200, await checked.text()
    assert (await checked.json())["state"] == "waiting"
    stored = practice.services.appointments.get(appt.id)
    assert stored.state is AppointmentState.WAITING
    assert stored.checked_in_name == "Erika Mustermann"
    patient = practice.services.patients.get(appt.patient_id)
    assert patient.consent is not None and patient.consent.method.value == "online"  # O1
    state = await (await practice.public.get(f"/v/{token}/state")).json()
    assert state["state"] == "waiting"


async def test_wrong_codes_lock_the_link_until_reissue(practice: Box) -> None:
    """Five wrong codes lock the link; the staff's reissue gives a working new link (R9)."""
    appt = _appointment(practice)
    token = _token(practice, appt)
    first = await practice.public.post(f"/v/{token}/code", json={"code": "AAA-AAA-AAA"})
    body = await first.json()
    assert first.status == 401 and body["remaining"] == 4 and "Zugangscode" in body["message"]
    for _ in range(4):
        last = await practice.public.post(f"/v/{token}/code", json={"code": "AAA-AAA-AAA"})
    assert last.status == 423
    right = await practice.public.post(f"/v/{token}/code", json={"code": appt.access_code})
    assert right.status == 423  # locked, even for the right code
    new = practice.services.appointments.reissue("admin", appt.id)
    gone = await practice.public.post(f"/v/{token}/code", json={"code": appt.access_code})
    assert gone.status == 404
    fresh = await practice.public.post(f"/v/{_token(practice, new)}/code",
                                       json={"code": new.access_code})
    assert fresh.status == 200


async def test_check_in_needs_the_code_first(practice: Box) -> None:
    """Without a verified code nobody enters the waiting room or reads the state."""
    appt = _appointment(practice)
    token = _token(practice, appt)
    response = await practice.public.post(f"/v/{token}/check-in", json={
        "full_name": "Mallory", "consent": True, "rules": True})
    assert response.status == 401
    assert (await practice.public.get(f"/v/{token}/state")).status == 401


async def test_session_of_one_link_does_not_open_another(practice: Box) -> None:
    """A patient verified for appointment A cannot read or check in to appointment B (R1)."""
    a, b = _appointment(practice), _appointment(practice)
    await practice.public.post(f"/v/{_token(practice, a)}/code", json={"code": a.access_code})
    response = await practice.public.get(f"/v/{_token(practice, b)}/state")
    assert response.status == 401


async def test_sealed_box_says_practice_not_online(practice: Box) -> None:
    """While the vault is sealed the patient page learns the practice is not online yet."""
    appt = _appointment(practice)
    token = _token(practice, appt)
    practice.services.vault.seal()
    info = await (await practice.public.get(f"/v/{token}/info")).json()
    assert info == {"online": False, "verified": False}
    code = await practice.public.post(f"/v/{token}/code", json={"code": appt.access_code})
    assert code.status == 503
    assert "nicht online" in (await code.json())["message"]


async def test_unknown_token_is_404(practice: Box) -> None:
    """A made-up link finds nothing."""
    response = await practice.public.get("/v/AAAAAAAAAAAAAAAAAAAAAA/info")
    assert response.status == 404


async def test_code_attempts_are_rate_limited_per_address(practice: Box) -> None:
    """Guessing codes across many links from one address hits the per-address limit (R9)."""
    statuses = set()
    for i in range(12):
        response = await practice.public.post(f"/v/{'A' * 21}{i:x}/code",
                                              json={"code": "AAA-AAA-AAA"})
        statuses.add(response.status)
    assert 429 in statuses


async def test_old_link_stream_ends_on_reissue(practice: Box) -> None:
    """After a reissue the old link's open live stream ends and carries no name (R9 A01)."""
    appt = _appointment(practice)
    token = _token(practice, appt)
    await practice.public.post(f"/v/{token}/code", json={"code": appt.access_code})
    await practice.public.post(f"/v/{token}/check-in", json={
        "full_name": "Erika Mustermann", "consent": True, "rules": True})
    stream = await practice.public.get(f"/v/{token}/events")
    assert stream.status == 200
    assert (await stream.content.readline()).startswith(b"retry:")
    practice.services.appointments.reissue("admin", appt.id)  # publishes a change
    rest = await asyncio.wait_for(stream.content.read(), 5)
    assert b"Erika" not in rest and b"event:" not in rest
