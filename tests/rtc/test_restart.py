"""A restart of the web process: sessions come back by a staff cookie, the call's room too.

"Restart" here is what a new process sees: the old sites are gone, the vault is closed (its data
key left the memory), and new services and sites are built from the same settings — the files
on disk and in the runtime directory are all that is shared. (The Chromium test in
tests/e2e/test_call.py kills the real process.)
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from appliance.config import Settings
from appliance.practice.models import Appointment, AppointmentState
from appliance.rtc import messages as m
from appliance.runtime import build_box, build_services
from appliance.web import sessions as web_sessions
from appliance.web.app import build_public_app, build_staff_app
from tests.web import conftest as web_fixtures
from tests.web.conftest import ADMIN_PASSWORD, CHEAP_KDF, DOCTOR_PASSWORD, Box

from .peers import SignalingPage
from .test_call_signaling import doctor_page, is_room, patient_page, waiting_patient

settings, services, box, practice = (
    web_fixtures.settings, web_fixtures.services, web_fixtures.box, web_fixtures.practice)

Client = Callable[..., Awaitable[TestClient]]


async def _restart(old: Box, settings: Settings, aiohttp_client: Client) -> Box:
    """Stop both sites, forget the data key, start anew; the browsers keep their cookies."""
    jars = {site: list(getattr(old, site).session.cookie_jar) for site in ("staff", "public")}
    await old.staff.close()
    await old.public.close()
    old.services.vault.close()
    fresh = build_services(settings, kdf=CHEAP_KDF)
    parts = build_box(settings, fresh)
    staff_app = build_staff_app(parts)
    new = Box(fresh, await aiohttp_client(staff_app),
              await aiohttp_client(build_public_app(parts)))
    for site, cookies in jars.items():
        client = getattr(new, site)
        for cookie in cookies:
            client.session.cookie_jar.update_cookies({cookie.key: cookie.value},
                                                     URL(str(client.make_url("/"))))
    assert fresh.vault.sealed
    return new


async def _in_call(practice: Box) -> tuple[Appointment, str, SignalingPage, SignalingPage]:
    """A waiting patient, the doctor logged in, both pages open, the patient admitted."""
    appt, token = await waiting_patient(practice)
    await practice.login("dr.mueller", DOCTOR_PASSWORD)
    doctor, patient = doctor_page(practice, appt), patient_page(practice.public, token)
    await doctor.open()
    await patient.open()
    await doctor.wait_for(is_room(lambda r: any(p.role == "patient" for p in r.participants)))
    await doctor.send("admit", participant=patient.id)
    await patient.wait_for(lambda msg: isinstance(msg, m.Admitted))
    return appt, token, doctor, patient


async def _status(client: TestClient, path: str) -> tuple[int, Any]:
    response = await client.get(path)
    body = await response.json() if response.content_type == "application/json" else None
    return response.status, body


async def test_staff_cookie_reopens_and_patients_wait_meanwhile(
    practice: Box, settings: Settings, aiohttp_client: Client
) -> None:
    """Issue 3 (restart): until a staff browser comes back the patient hears "practice not
    online" (503: keep waiting), not "enter your code again"; the doctor's cookie reopens the
    vault without a password; then the patient's own session works again."""
    appt, token = await waiting_patient(practice)
    headers = await practice.login("dr.mueller", DOCTOR_PASSWORD)
    box = await _restart(practice, settings, aiohttp_client)

    status, body = await _status(box.public, f"/v/{token}/state")
    assert status == 503 and body["error"] == "practice_offline"
    assert box.services.vault.sealed

    status, body = await _status(box.staff, "/api/session")
    assert status == 200 and body["user"]["username"] == "dr.mueller"
    assert not box.services.vault.sealed
    assert body["csrf_token"] == headers["X-CSRF-Token"]  # the same session, not a new login

    status, body = await _status(box.public, f"/v/{token}/state")
    assert status == 200 and body["state"] == "waiting"
    added = await box.staff.post("/api/patients", headers=headers,
                                 json={"full_name": "Max Mustermann"})
    assert added.status == 201, await added.text()


async def test_a_patient_cookie_never_reopens_the_vault(
    practice: Box, settings: Settings, aiohttp_client: Client
) -> None:
    """Only staff sessions unseal: a patient who comes back first waits however often they ask;
    a password login (no staff cookie came back) brings the patient's session back too."""
    _, token = await waiting_patient(practice)
    await practice.login("dr.mueller", DOCTOR_PASSWORD)
    box = await _restart(practice, settings, aiohttp_client)
    box.staff.session.cookie_jar.clear()  # the doctor's browser was closed meanwhile
    for _ in range(3):
        status, _body = await _status(box.public, f"/v/{token}/state")
        assert status == 503
        status, _body = await _status(box.public, f"/v/{token}/info")
        assert status == 200 and _body["online"] is False
    assert box.services.vault.sealed
    await box.login("admin", ADMIN_PASSWORD)
    status, body = await _status(box.public, f"/v/{token}/state")
    assert status == 200 and body["state"] == "waiting"


async def test_logged_out_or_removed_staff_reopen_nothing(
    practice: Box, settings: Settings, aiohttp_client: Client
) -> None:
    """A session that ended (logout, account removed) is no key any more: after the restart
    the box is sealed for that browser, as after a boot."""
    headers = await practice.login("dr.mueller", DOCTOR_PASSWORD)
    out = await practice.staff.post("/api/logout", headers=headers)
    assert out.status in (200, 204)
    practice.staff.session.cookie_jar.update_cookies(
        {"sz_staff": "made-up-" + "x" * 40}, URL(str(practice.staff.make_url("/"))))
    box = await _restart(practice, settings, aiohttp_client)
    status, body = await _status(box.staff, "/api/status")
    assert status == 200 and body["sealed"] is True and body["logged_in"] is False
    status, _ = await _status(box.staff, "/api/session")
    assert status == 401 and box.services.vault.sealed

    # an account removed while its browser was logged in: its cookie opens nothing either
    second = await box.staff.post("/api/login", json={"username": "dr.mueller",
                                                      "password": DOCTOR_PASSWORD})
    assert second.status == 200
    doctor_cookies = {c.key: c.value for c in box.staff.session.cookie_jar}
    admin = await box.login("admin", ADMIN_PASSWORD)
    gone = await box.staff.delete("/api/staff/dr.mueller", headers=admin)
    assert gone.status in (200, 204), await gone.text()
    box.staff.session.cookie_jar.clear()
    box.staff.session.cookie_jar.update_cookies(doctor_cookies, URL(str(box.staff.make_url("/"))))
    again = await _restart(box, settings, aiohttp_client)
    status, _ = await _status(again.staff, "/api/session")
    assert status == 401 and again.services.vault.sealed


async def test_the_call_room_comes_back_with_the_same_ids(
    practice: Box, settings: Settings, aiohttp_client: Client
) -> None:
    """Issue 3 (restart): after the restart both pages rejoin a new hub as the same participants
    (their P2P connections go on), the patient of the running call is in without a new
    admission, and signals flow between them again; the doctor can still end the call (O3)."""
    appt, token, doctor, patient = await _in_call(practice)
    ids = (doctor.id, patient.id)
    await doctor.close()
    await patient.close()

    box = await _restart(practice, settings, aiohttp_client)
    doctor = doctor_page(box, appt)
    patient = patient_page(box.public, token)
    try:
        await doctor.open()  # the doctor's cookie reopens the vault on the socket's upgrade
        await patient.open()
        assert (doctor.id, patient.id) == ids
        admitted = await patient.wait_for(lambda msg: isinstance(msg, m.Admitted))
        assert isinstance(admitted, m.Admitted)
        await doctor.wait_for(is_room(lambda r: r.state == "in_call" and any(
            p.id == ids[1] and p.present and p.admitted for p in r.participants)))
        await doctor.send("signal", to=patient.id, data={"kind": "note", "text": "wieder da"})
        await patient.wait_for(lambda msg: isinstance(msg, m.SignalFrom)
                               and msg.data.get("text") == "wieder da")
        assert box.services.appointments.get(appt.id).state is AppointmentState.IN_CALL
        await doctor.send("end")
        await patient.wait_for(lambda msg: isinstance(msg, m.Ended))
        assert box.services.appointments.get(appt.id).state is AppointmentState.ENDED
    finally:
        await doctor.close()
        await patient.close()


async def test_an_admitted_guest_is_in_again_after_the_restart(
    practice: Box, settings: Settings, aiohttp_client: Client
) -> None:
    """A guest the doctor let in stays in (the admission is kept with the appointment); once
    the call ends, that admission is over."""
    appt, token = await waiting_patient(practice)
    headers = await practice.login("dr.mueller", DOCTOR_PASSWORD)
    invited = await (await practice.staff.post(f"/api/appointments/{appt.id}/guests",
                                               json={"label": "Tochter"}, headers=headers)).json()
    guest_token = invited["link"].rsplit("/", 1)[1]
    doctor = doctor_page(practice, appt)
    patient = patient_page(practice.public, token)
    await doctor.open()
    await patient.open()
    await doctor.wait_for(is_room(lambda r: len(r.participants) == 2))
    await doctor.send("admit", participant=patient.id)
    await patient.wait_for(lambda msg: isinstance(msg, m.Admitted))
    # the guest in the same test browser: its cookie replaces the patient's (whose socket is open)
    ok = await practice.public.post(f"/v/{guest_token}/code", json={"code": invited["access_code"]})
    assert ok.status == 200
    checked = await practice.public.post(f"/v/{guest_token}/check-in", json={
        "full_name": "Eva Mustermann", "consent": True, "rules": True})
    assert checked.status == 200, await checked.text()
    guest = patient_page(practice.public, guest_token)
    await guest.open()
    await doctor.wait_for(is_room(lambda r: len(r.participants) == 3))
    await doctor.send("admit", participant=guest.id)
    await guest.wait_for(lambda msg: isinstance(msg, m.Admitted))
    for page in (doctor, patient, guest):
        await page.close()

    box = await _restart(practice, settings, aiohttp_client)
    doctor = doctor_page(box, appt)
    guest = patient_page(box.public, guest_token)
    try:
        await doctor.open()
        await guest.open()
        await guest.wait_for(lambda msg: isinstance(msg, m.Admitted))
        await doctor.send("end")
        await guest.wait_for(lambda msg: isinstance(msg, m.Ended))
    finally:
        await doctor.close()
        await guest.close()
    stored = box.services.appointments.get(appt.id).guests[0]
    assert stored.admitted_at is None


async def test_someone_the_doctor_sent_out_stays_out_after_the_restart(
    practice: Box, settings: Settings, aiohttp_client: Client
) -> None:
    """O3: only the doctor admits. A patient the doctor removed from the call cannot use the
    restart to come back in (the removal is kept with the appointment, not only in the hub)."""
    appt, token, doctor, patient = await _in_call(practice)
    await doctor.send("remove", participant=patient.id)
    ended = await patient.wait_for(lambda msg: isinstance(msg, m.Ended))
    assert isinstance(ended, m.Ended) and ended.reason == "removed"
    await doctor.close()
    await patient.close()

    box = await _restart(practice, settings, aiohttp_client)
    doctor = doctor_page(box, appt)
    try:
        await doctor.open()
        ws = await box.public.ws_connect(f"/v/{token}/signal")
        await ws.send_str(m.serialize(m.Hello(session=secrets.token_urlsafe(18), received=0)))
        refused = m.parse_hub((await ws.receive()).data)
        assert isinstance(refused, m.Error) and refused.code == "signal_removed"
        await ws.close()
    finally:
        await doctor.close()


async def test_a_session_that_went_idle_meanwhile_reopens_nothing(
    practice: Box, settings: Settings, aiohttp_client: Client, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A grant is honoured only for a session that is still good: its saved idle time plus the
    time since counts (here the new process allows 1 s idle; the doctor's page was quiet
    longer), so the box stays sealed and the cookie is an unknown session."""
    await waiting_patient(practice)
    await practice.login("dr.mueller", DOCTOR_PASSWORD)
    await asyncio.sleep(1.2)
    monkeypatch.setattr(web_sessions, "STAFF_IDLE_S", 1.0)
    box = await _restart(practice, settings, aiohttp_client)
    status, _ = await _status(box.staff, "/api/session")
    assert status == 401 and box.services.vault.sealed
