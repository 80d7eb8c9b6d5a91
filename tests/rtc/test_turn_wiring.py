"""The sites hand admitted participants short-lived TURN credentials for their side (R4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config import Settings, TurnSettings, TurnUplink, VaultSettings, WebSettings
from appliance.rtc import messages as m
from appliance.rtc.turn import password_for
from tests.web import conftest as web_fixtures
from tests.web.conftest import DOCTOR_PASSWORD

from .peers import SignalingPage
from .test_call_signaling import doctor_page, is_room, patient_page, waiting_patient

services, box, practice = web_fixtures.services, web_fixtures.box, web_fixtures.practice
SECRET = "t" * 40


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A box with TURN on: one uplink (documentation addresses; no traffic goes there)."""
    return Settings(
        web=WebSettings(public_urls=("https://videosprechstunde.praxis-beispiel.de",)),
        vault=VaultSettings(path=tmp_path / "vault"),
        turn=TurnSettings(
            enabled=True, secret=SECRET, realm="praxis.test", lan_address="192.168.50.10",
            uplinks=(TurnUplink(public_host="videosprechstunde.praxis-beispiel.de",
                                public_address="203.0.113.10", lan_address="192.168.50.10"),),
        ),
    )


def _admitted(page: SignalingPage):
    return page.wait_for(lambda msg: isinstance(msg, m.Admitted))


async def test_admitted_patient_gets_public_turn_and_doctor_the_lan_one(practice) -> None:
    """Patient: TURN on the public host; doctor: TURN on the box's LAN address (TURN.md, R4).
    The doctor's login name has a dot (issue 9, defect 5: the binding refused it) and appears
    nowhere in the TURN username, which coturn logs (R9)."""
    appt, token = await waiting_patient(practice)
    await practice.login("dr.mueller", DOCTOR_PASSWORD)
    doctor, patient = doctor_page(practice, appt), patient_page(practice.public, token)
    try:
        await doctor.open()
        await patient.open()
        await doctor.wait_for(is_room(lambda r: any(
            p.role == "patient" and p.present for p in r.participants)))
        await doctor.send("admit", participant=patient.id)
        for page, url in ((patient, "turn:videosprechstunde.praxis-beispiel.de:3478"),
                          (doctor, "turn:192.168.50.10:3478")):
            admitted = await _admitted(page)
            (server,) = admitted.ice_servers
            assert any(u.startswith(url) for u in server["urls"]), server["urls"]
            assert appt.id in server["username"]
            assert "mueller" not in server["username"]
            assert server["credential"] == password_for(SECRET, server["username"])
            assert SECRET not in str(admitted)
    finally:
        await patient.close()
        await doctor.close()


async def test_device_check_pages_get_turn_for_their_side(practice) -> None:
    """Before its offer, a patient's device check gets public TURN; a practice PC the LAN one."""
    appt, token = await waiting_patient(practice)
    patient = await (await practice.public.get(f"/v/{token}/device-check")).json()
    (server,) = patient["ice_servers"]
    assert any(u.startswith("turn:videosprechstunde.praxis-beispiel.de:3478")
               for u in server["urls"])
    assert server["credential"] == password_for(SECRET, server["username"])
    assert (await practice.public.get("/v/AAAAAAAAAAAAAAAAAAAAAA/device-check")).status in (
        401, 404)
    headers = await practice.login("dr.mueller", DOCTOR_PASSWORD)
    staff = await (await practice.staff.get("/api/device-check", headers=headers)).json()
    assert staff["ice_servers"][0]["urls"][0].startswith("turn:192.168.50.10:3478")
