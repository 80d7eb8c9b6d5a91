"""Guests through both sites: staff invite, reissue and remove; the guest's way in (R1, O2, R9)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import aiohttp

from appliance.practice.models import Appointment

from .conftest import ASSISTANT_PASSWORD, Box


def _appointment(box: Box) -> Appointment:
    services = box.services
    patient = services.patients.add("admin", full_name="Erika Mustermann")
    start = services.clock.now() + timedelta(minutes=5)
    return services.appointments.create("admin", doctor="dr.mueller", patient_id=patient.id,
                                        start=start)


def _token(link: str) -> str:
    return link.rsplit("/", 1)[1]


async def _invite(box: Box, appt: Appointment, headers: dict[str, str],
                  label: str = "Tochter") -> dict[str, Any]:
    response = await box.staff.post(f"/api/appointments/{appt.id}/guests", json={"label": label},
                                    headers=headers)
    assert response.status == 201, await response.text()
    return await response.json()


async def test_assistant_invites_and_sees_link_and_code(practice: Box) -> None:
    """R1, R2: any staff member invites (organisational work); link and code as for the patient."""
    appt = _appointment(practice)
    headers = await practice.login("mfa", ASSISTANT_PASSWORD)
    guest = await _invite(practice, appt, headers)
    assert guest["label"] == "Tochter" and guest["checked_in_name"] is None
    assert guest["link"].startswith("https://videosprechstunde.praxis-beispiel.de/v/")
    assert len(guest["access_code"]) == 11 and not guest["link_locked"]
    listed = await (await practice.staff.get(f"/api/appointments/{appt.id}/guests")).json()
    assert listed == [guest]
    shown = await (await practice.staff.get(f"/api/appointments/{appt.id}")).json()
    assert shown["guests"] == [guest]
    await _invite(practice, appt, headers, "Dolmetscher")
    third = await practice.staff.post(f"/api/appointments/{appt.id}/guests",
                                      json={"label": "Kollege"}, headers=headers)
    assert third.status == 409
    empty = await practice.staff.post(f"/api/appointments/{appt.id}/guests", json={"label": ""},
                                      headers=headers)
    assert empty.status == 400
    no_csrf = await practice.staff.post(f"/api/appointments/{appt.id}/guests",
                                        json={"label": "Sohn"})
    assert no_csrf.status == 403


async def test_guest_way_in_and_the_patients_consent(practice: Box) -> None:
    """O2: a guest enters code, full name and confirmations; the patient's consent stays unset."""
    appt = _appointment(practice)
    headers = await practice.login("mfa", ASSISTANT_PASSWORD)
    guest = await _invite(practice, appt, headers, "Dolmetscher")
    token = _token(guest["link"])
    info = await (await practice.public.get(f"/v/{token}/info")).json()
    assert info["guest"] is True and info["state"] is None
    assert (await practice.public.get(f"/v/{token}/state")).status == 401
    ok = await practice.public.post(f"/v/{token}/code", json={"code": guest["access_code"]})
    assert ok.status == 200, await ok.text()
    info = await (await practice.public.get(f"/v/{token}/info")).json()
    assert info["verified"] and info["state"] == "scheduled"
    checked = await practice.public.post(f"/v/{token}/check-in", json={
        "full_name": "Ali Yilmaz", "consent": True, "rules": True})
    assert await checked.json() == {"state": "waiting", "name": "Ali Yilmaz"}
    patient = practice.services.patients.get(appt.patient_id)
    assert patient.consent is None
    assert practice.services.appointments.get(appt.id).state.value == "scheduled"
    shown = await (await practice.staff.get(f"/api/appointments/{appt.id}/guests")).json()
    assert shown[0]["checked_in_name"] == "Ali Yilmaz"  # O2: listed by name for the doctor
    left = await practice.public.post(f"/v/{token}/leave")
    assert await left.json() == {"state": "scheduled", "name": None}
    # the guest's session opens neither the patient's link nor the other way round
    patient_token = appt.link_token
    assert (await practice.public.get(f"/v/{patient_token}/state")).status == 401


async def test_guest_socket_needs_check_in(practice: Box) -> None:
    """O4: a guest signals only once checked in."""
    appt = _appointment(practice)
    headers = await practice.login("mfa", ASSISTANT_PASSWORD)
    guest = await _invite(practice, appt, headers)
    token = _token(guest["link"])
    await practice.public.post(f"/v/{token}/code", json={"code": guest["access_code"]})
    try:
        await practice.public.ws_connect(f"/v/{token}/signal")
    except aiohttp.WSServerHandshakeError as refused:
        assert refused.status == 409
    else:
        raise AssertionError("socket opened before check-in")


async def test_reissue_and_remove_stop_the_old_link(practice: Box) -> None:
    """R9: a reissued or removed guest's link answers 404; the session on it ends."""
    appt = _appointment(practice)
    headers = await practice.login("mfa", ASSISTANT_PASSWORD)
    guest = await _invite(practice, appt, headers)
    old = _token(guest["link"])
    await practice.public.post(f"/v/{old}/code", json={"code": guest["access_code"]})
    base = f"/api/appointments/{appt.id}/guests/{guest['id']}"
    fresh = await (await practice.staff.post(f"{base}/reissue", headers=headers)).json()
    assert fresh["id"] == guest["id"] and fresh["link"] != guest["link"]
    assert fresh["access_code"] != guest["access_code"]
    assert (await practice.public.get(f"/v/{old}/info")).status == 404
    assert (await practice.public.get(f"/v/{old}/state")).status == 404
    new = _token(fresh["link"])
    assert (await practice.public.get(f"/v/{new}/info")).status == 200
    removed = await practice.staff.delete(base, headers=headers)
    assert removed.status == 200
    assert (await practice.public.get(f"/v/{new}/info")).status == 404
    assert (await practice.staff.delete(base, headers=headers)).status == 404
    actions = [e.action for e in practice.services.audit.entries(limit=10)]
    assert {"guest.invite", "guest.reissue", "guest.remove"} <= set(actions)


async def test_wrong_codes_lock_only_the_guests_link(practice: Box) -> None:
    """R9: five wrong codes lock the guest's link; the patient's still opens."""
    appt = _appointment(practice)
    headers = await practice.login("mfa", ASSISTANT_PASSWORD)
    guest = await _invite(practice, appt, headers)
    token = _token(guest["link"])
    statuses = []
    async with aiohttp.ClientSession(base_url=practice.public.make_url("/"),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
        for _ in range(5):
            wrong = await other.post(f"/v/{token}/code", json={"code": "XXX-XXX-XXX"})
            statuses.append(wrong.status)
    assert statuses[-1] == 423
    shown = await (await practice.staff.get(f"/api/appointments/{appt.id}")).json()
    assert shown["guests"][0]["link_locked"] and not shown["link_locked"]
    patient_token = appt.link_token
    ok = await practice.public.post(f"/v/{patient_token}/code", json={"code": appt.access_code})
    assert ok.status == 200
