"""Locking the box: the vault sealed and every session ended, by an admin or by the clock (R9).

The box's periodic check is the same ``BoxLock.check`` these tests call; the clock is the box's
own (a ``ManualClock`` here), the sessions, sockets and the vault are real.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from appliance.clock import ManualClock
from appliance.config import Settings, VaultSettings, WebSettings
from appliance.practice.services import PracticeServices
from appliance.rtc import messages as m
from appliance.runtime import build_box, build_services
from appliance.vault.resume import FILE_NAME
from appliance.web.box_lock import BoxLock, in_span
from appliance.web.context import BOX_LOCK, EVENTS, HUB
from tests.rtc.peers import eventually
from tests.rtc.test_call_signaling import doctor_page, is_room, patient_page, waiting_patient

from .conftest import ADMIN_PASSWORD, ASSISTANT_PASSWORD, CHEAP_KDF, DOCTOR_PASSWORD, Box

#: Monday 5 January 2026, 23:00 in Köln (CET): inside the default lock hours 22:00–06:00
NIGHT = datetime(2026, 1, 5, 22, 0, tzinfo=UTC)
#: the same Monday, 10:00 in Köln
MORNING = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    """The box's clock, at 23:00 practice time unless a test moves it."""
    return ManualClock(NIGHT)


@pytest.fixture
def lock_settings() -> dict[str, object]:
    """``[vault]`` lock settings of the box under test (the defaults unless overridden)."""
    return {}


@pytest.fixture
def settings(tmp_path: Path, lock_settings: dict[str, object]) -> Settings:
    """``tests/web``'s settings with this module's lock settings."""
    return Settings(
        web=WebSettings(public_urls=("https://videosprechstunde.praxis-beispiel.de",)),
        vault=VaultSettings(path=tmp_path / "vault", **lock_settings),  # type: ignore[arg-type]
    )


@pytest.fixture
def services(settings: Settings, clock: ManualClock) -> PracticeServices:
    """The practice services on the manual clock."""
    return build_services(settings, clock=clock, kdf=CHEAP_KDF)


def _lock(box: Box) -> BoxLock:
    return box.staff.app[BOX_LOCK]


def _resume_file(settings: Settings) -> Path:
    return settings.vault.resume_dir / FILE_NAME


async def _status(box: Box) -> dict[str, object]:
    return await (await box.staff.get("/api/status")).json()


async def test_an_admin_locks_the_box(practice: Box, settings: Settings) -> None:
    """R9: "Box sperren" seals the vault at once, ends every session of both sites, removes the
    resume file; the login page says so; the next login (anyone's) unseals again."""
    appt, token = await waiting_patient(practice)  # a patient session on the public site ...
    await (await practice.public.post(f"/v/{token}/leave")).read()  # ... who left the room
    headers = await practice.login("admin", ADMIN_PASSWORD)
    assert (await _status(practice))["locked"] is None
    assert _resume_file(settings).exists()  # the admin's cookie could reopen the vault

    answer = await practice.staff.post("/api/box/lock", headers=headers)
    assert answer.status == 200, await answer.text()
    assert await answer.json() == {"locked": True, "pending": False}

    assert practice.services.vault.sealed
    assert not _resume_file(settings).exists()  # no cookie reopens it after a restart
    assert (await practice.staff.get("/api/session")).status == 401
    assert (await practice.public.get(f"/v/{token}/state")).status in (401, 503)
    status = await _status(practice)
    assert status["sealed"] and not status["logged_in"]
    assert status["locked"]["reason"] == "admin"
    assert datetime.fromisoformat(status["locked"]["at"]) == NIGHT

    await practice.login("dr.mueller", DOCTOR_PASSWORD)
    status = await _status(practice)
    assert status["logged_in"] and not status["sealed"] and status["locked"] is None
    actions = [(e.actor, e.action, e.target) for e in practice.services.audit.entries()]
    assert ("admin", "box.lock", "admin") in actions


async def test_only_an_admin_locks_the_box(practice: Box) -> None:
    """R9: an assistant or a doctor cannot lock everybody out."""
    for username, password in (("mfa", ASSISTANT_PASSWORD), ("dr.mueller", DOCTOR_PASSWORD)):
        headers = await practice.login(username, password)
        assert (await practice.staff.post("/api/box/lock", headers=headers)).status == 403
        assert (await practice.staff.delete("/api/box/lock", headers=headers)).status == 403
    assert not practice.services.vault.sealed
    headers = await practice.login("admin", ADMIN_PASSWORD)
    assert (await practice.staff.post("/api/box/lock")).status == 403  # CSRF token missing
    assert not practice.services.vault.sealed


async def test_the_lock_waits_for_the_waiting_patient_and_the_call(practice: Box) -> None:
    """R9: asked while a patient waits, the box stays open (the dashboard says it will lock),
    through the call, and locks once the doctor has ended it."""
    appt, token = await waiting_patient(practice)
    await practice.login("dr.mueller", DOCTOR_PASSWORD)
    doctor, patient = doctor_page(practice, appt), patient_page(practice.public, token)
    lock = _lock(practice)
    try:
        await doctor.open()
        await patient.open()
        await doctor.wait_for(is_room(lambda r: len(r.participants) == 2))
        async with practice.staff.app[EVENTS].subscribe() as events:
            assert lock.request("admin") is False
            assert await asyncio.wait_for(events.get(), 5) == {"type": "box-lock"}
        session = await (await practice.staff.get("/api/session")).json()
        assert session["box_lock"]["pending"] is True  # the doctor's page shows the banner
        assert lock.check() is False and not practice.services.vault.sealed

        await doctor.send("admit", participant=patient.id)
        await patient.wait_for(lambda msg: isinstance(msg, m.Admitted))
        assert lock.check() is False and not practice.services.vault.sealed

        await doctor.send("end")
        await patient.wait_for(lambda msg: isinstance(msg, m.Ended))
        assert lock.check() is True
        assert practice.services.vault.sealed and lock.locked is not None
        assert (await practice.staff.get("/api/session")).status == 401
        await eventually(lambda: practice.staff.app[HUB].socket_count == 0)
    finally:
        await doctor.close()
        await patient.close()


async def test_a_waiting_lock_can_be_called_off(practice: Box) -> None:
    """R9: an admin who asked while a patient waits can call the lock off again."""
    appt, token = await waiting_patient(practice)
    patient = patient_page(practice.public, token)
    headers = await practice.login("admin", ADMIN_PASSWORD)
    try:
        await patient.open()
        asked = await practice.staff.post("/api/box/lock", headers=headers)
        assert await asked.json() == {"locked": False, "pending": True}
        called_off = await practice.staff.delete("/api/box/lock", headers=headers)
        assert await called_off.json() == {"locked": False, "pending": False}
        session = await (await practice.staff.get("/api/session")).json()
        assert session["box_lock"]["pending"] is False
        await practice.staff.post("/api/logout", headers=headers)
    finally:
        await patient.close()
    await eventually(lambda: practice.staff.app[HUB].socket_count == 0)
    practice.services.clock.set(MORNING)  # nothing else due: the lock stays off
    assert _lock(practice).check() is False and not practice.services.vault.sealed


async def test_at_night_the_box_locks_once_the_last_staff_session_ends(
        practice: Box, clock: ManualClock) -> None:
    """R9: between 22:00 and 06:00 the box locks five minutes after the last staff session
    ended, not while someone is logged in, and never while a patient waits."""
    lock = _lock(practice)
    headers = await practice.login("dr.mueller", DOCTOR_PASSWORD)
    clock.advance(timedelta(hours=1))
    assert lock.check() is False  # someone works late
    appt, token = await waiting_patient(practice)
    patient = patient_page(practice.public, token)
    try:
        await patient.open()
        await practice.staff.post("/api/logout", headers=headers)
        clock.advance(timedelta(minutes=4))
        assert lock.check() is False  # a logout by mistake gets a moment
        clock.advance(timedelta(minutes=2))
        assert lock.check() is False and not practice.services.vault.sealed  # she waits
    finally:
        await patient.close()
    # gone for good (as at the end of her grace): the hub lets her go
    practice.staff.app[HUB].remove_member(appt.id, "patient", ban=False)
    assert lock.check() is True
    status = await _status(practice)
    assert status["locked"]["reason"] == "night"
    assert datetime.fromisoformat(status["locked"]["at"]) == clock.now()


@pytest.mark.parametrize("lock_settings", [{"lock_hours": None, "lock_idle_hours": 12}])
async def test_after_hours_without_staff_the_box_locks(practice: Box, clock: ManualClock) -> None:
    """R9: with the night hours switched off, the box locks after ``lock_idle_hours`` without
    any staff session (counted from the last one, not from the last check)."""
    clock.set(MORNING)
    lock = _lock(practice)
    headers = await practice.login("mfa", ASSISTANT_PASSWORD)
    assert lock.check() is False  # at 10:00 someone is logged in ...
    await practice.staff.post("/api/logout", headers=headers)  # ... and then nobody
    clock.advance(timedelta(hours=11, minutes=59))
    assert lock.check() is False  # 23:59 practice time, but no night hours
    clock.advance(timedelta(minutes=1))
    assert lock.check() is True
    assert (await _status(practice))["locked"]["reason"] == "idle"


@pytest.mark.parametrize("lock_settings", [{"lock_hours": None, "lock_idle_hours": 0}])
async def test_without_lock_settings_the_clock_never_locks(practice: Box,
                                                           clock: ManualClock) -> None:
    """R9: ``lock_hours = ""`` and ``lock_idle_hours = 0`` switch the automatic lock off; an
    admin can still lock."""
    lock = _lock(practice)
    lock.check()
    clock.advance(timedelta(days=3))
    assert lock.check() is False and not practice.services.vault.sealed
    headers = await practice.login("admin", ADMIN_PASSWORD)
    session = await (await practice.staff.get("/api/session")).json()
    assert session["box_lock"] == {"pending": False, "hours": None, "idle_hours": 0}
    assert (await (await practice.staff.post("/api/box/lock", headers=headers)).json())["locked"]


async def test_the_session_tells_the_lock_hours(practice: Box) -> None:
    """The settings page shows when the box locks itself."""
    await practice.login("admin", ADMIN_PASSWORD)
    session = await (await practice.staff.get("/api/session")).json()
    assert session["box_lock"] == {"pending": False, "hours": "22:00–06:00", "idle_hours": 12}


@pytest.mark.parametrize(("moment", "inside"), [
    (time(21, 59), False), (time(22, 0), True), (time(23, 59), True), (time(0, 0), True),
    (time(5, 59), True), (time(6, 0), False), (time(12, 0), False),
])
def test_lock_hours_pass_midnight(moment: time, inside: bool) -> None:
    """A span like 22:00–06:00 holds the night on both sides of midnight."""
    assert in_span(moment, (time(22, 0), time(6, 0))) is inside
    assert in_span(moment, (time(6, 0), time(22, 0))) is not inside


async def test_the_running_box_checks_by_itself(
        settings: Settings, services: PracticeServices, clock: ManualClock,
        aiohttp_client: Callable[..., Awaitable[TestClient]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """R9: the staff site runs the check while it runs (here every 50 ms)."""
    from appliance.practice.models import Role
    from appliance.practice.onboarding import onboard
    from appliance.web import box_lock
    from appliance.web.app import build_staff_app

    from .conftest import PROFILE

    monkeypatch.setattr(box_lock, "CHECK_EVERY_S", 0.05)
    onboard(services, profile=PROFILE, username="admin", display_name="Anna Admin",
            password=ADMIN_PASSWORD, roles={Role.ADMIN})
    parts = build_box(settings, services)
    staff_app = build_staff_app(parts)
    await aiohttp_client(staff_app)
    clock.advance(timedelta(minutes=6))
    await eventually(lambda: services.vault.sealed)
