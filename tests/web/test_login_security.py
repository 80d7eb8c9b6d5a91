"""The staff login over HTTP: lockout per PC with a per-name backstop; TOTP off re-checked."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from appliance.clock import ManualClock
from appliance.config import Settings
from appliance.practice import totp
from appliance.practice.services import PracticeServices
from appliance.runtime import build_services
from tests.web.conftest import CHEAP_KDF, DOCTOR_PASSWORD, Box

WRONG = "falsch-falsch-1"

Connect = Callable[[str], aiohttp.ClientSession]


@pytest.fixture
def clock() -> ManualClock:
    """The box's clock: TOTP steps move only when a test moves it."""
    return ManualClock(datetime(2026, 3, 2, 8, 0, tzinfo=UTC))


@pytest.fixture
def services(settings: Settings, clock: ManualClock) -> PracticeServices:
    """The box's services on the manual clock (replaces the conftest's)."""
    return build_services(settings, kdf=CHEAP_KDF, clock=clock)


@pytest.fixture
async def connect(practice: Box) -> AsyncIterator[Connect]:
    """Open a browser session on the staff site from another loopback address (another PC)."""
    sessions: list[aiohttp.ClientSession] = []

    def open_from(address: str) -> aiohttp.ClientSession:
        session = aiohttp.ClientSession(
            base_url=practice.staff.make_url(""),
            connector=aiohttp.TCPConnector(local_addr=(address, 0)),
            cookie_jar=aiohttp.CookieJar(unsafe=True),
        )
        sessions.append(session)
        return session

    yield open_from
    for session in sessions:
        await session.close()


async def _login(client: Any, password: str, code: str | None = None) -> aiohttp.ClientResponse:
    body = {"username": "dr.mueller", "password": password}
    if code is not None:
        body["totp"] = code
    return await client.post("/api/login", json=body)


async def _enable_totp(practice: Box, clock: ManualClock) -> tuple[dict[str, str], str]:
    """Log the doctor in on the default client and switch TOTP on; headers and secret."""
    headers = await practice.login("dr.mueller", DOCTOR_PASSWORD)
    bare = await practice.staff.post("/api/me/totp", headers=headers)
    assert bare.status == 400  # issue 9: a session alone installs no authenticator
    setup = await (await practice.staff.post("/api/me/totp", headers=headers,
                                             json={"password": DOCTOR_PASSWORD})).json()
    code = totp.code_at_step(setup["secret"], totp.time_step(clock.now()))
    confirmed = await practice.staff.post("/api/me/totp/confirm", headers=headers,
                                          json={"code": code, "password": DOCTOR_PASSWORD})
    assert confirmed.status == 200, await confirmed.text()
    clock.advance(timedelta(seconds=30))  # the confirming code is used up
    return headers, setup["secret"]


def _code(secret: str, clock: ManualClock) -> str:
    return totp.code_at_step(secret, totp.time_step(clock.now()))


async def _totp_enabled(practice: Box, headers: dict[str, str]) -> bool:
    session = await (await practice.staff.get("/api/session", headers=headers)).json()
    return session["user"]["totp_enabled"]


async def test_switching_totp_off_needs_password_and_code(practice: Box,
                                                          clock: ManualClock) -> None:
    """Security (R9): an unlocked PC's session alone cannot switch the second factor off."""
    headers, secret = await _enable_totp(practice, clock)

    bare = await practice.staff.delete("/api/me/totp", headers=headers)
    assert bare.status == 400 and (await bare.json())["field"] == "password"

    wrong = await practice.staff.delete("/api/me/totp", headers=headers,
                                        json={"password": WRONG, "totp": _code(secret, clock)})
    wrong_login = await _login(practice.staff, WRONG)
    assert wrong.status == wrong_login.status == 401
    assert await wrong.json() == await wrong_login.json()  # the very same error as a login

    no_code = await practice.staff.delete("/api/me/totp", headers=headers,
                                          json={"password": DOCTOR_PASSWORD})
    assert no_code.status == 401 and (await no_code.json())["error"] == "totp_required"
    assert await _totp_enabled(practice, headers)

    done = await practice.staff.delete("/api/me/totp", headers=headers, json={
        "password": DOCTOR_PASSWORD, "totp": _code(secret, clock)})
    assert done.status == 200 and await done.json() == {"ok": True}
    assert not await _totp_enabled(practice, headers)
    latest = practice.services.audit.entries(limit=1)[0]
    assert (latest.actor, latest.action, latest.target) == (
        "dr.mueller", "staff.totp.disable", "dr.mueller")


async def test_wrong_password_to_switch_totp_off_counts_as_a_failed_login(
    practice: Box, clock: ManualClock, connect: Connect,
) -> None:
    """Security (R9): guesses at the switch-off form lock the name like wrong logins do."""
    headers, secret = await _enable_totp(practice, clock)
    statuses = []
    for _ in range(5):
        response = await practice.staff.delete("/api/me/totp", headers=headers, json={
            "password": WRONG, "totp": _code(secret, clock)})
        statuses.append(response.status)
    assert statuses == [401] * 4 + [429]
    locked = await _login(practice.staff, DOCTOR_PASSWORD, _code(secret, clock))
    assert locked.status == 429 and (await locked.json())["error"] == "account_locked"
    assert await _totp_enabled(practice, headers)
    elsewhere = await _login(connect("127.0.0.2"), DOCTOR_PASSWORD, _code(secret, clock))
    assert elsewhere.status == 200, await elsewhere.text()


async def test_failures_from_one_pc_do_not_lock_the_doctor_out_on_another(
    practice: Box, connect: Connect,
) -> None:
    """Security (R9): the lockout holds per (name, client address), not per name alone."""
    other_pc = connect("127.0.0.2")
    for _ in range(5):
        await _login(other_pc, WRONG)
    locked = await _login(other_pc, DOCTOR_PASSWORD)
    body = await locked.json()
    assert locked.status == 429 and body["error"] == "account_locked" and body["minutes"] == 15
    mine = await _login(practice.staff, DOCTOR_PASSWORD)
    assert mine.status == 200, await mine.text()


async def test_failures_from_many_addresses_lock_the_name_everywhere(
    practice: Box, connect: Connect,
) -> None:
    """Security (R9): a guesser spread over ten addresses trips the per-name backstop."""
    for n in range(3, 13):
        pc = connect(f"127.0.0.{n}")
        statuses = [(await _login(pc, WRONG)).status for _ in range(5)]
        assert statuses[:4] == [401] * 4
    locked = await _login(practice.staff, DOCTOR_PASSWORD)
    body = await locked.json()
    assert locked.status == 429 and body["error"] == "account_locked" and body["minutes"] == 60


async def test_a_stranger_cannot_lock_the_doctor_out_of_her_pc(
    practice: Box, connect: Connect,
) -> None:
    """Security (R9), issue 8 defect 5: the doctor's PC signed in before and carries the box's
    device cookie. A stranger on the LAN runs 50 wrong passwords for her name from ten
    addresses: every browser the box does not know is locked out for an hour (a forged device
    cookie too), but she still signs in at her PC. From her PC guessing stays at five tries."""
    doctor_pc = connect("127.0.0.2")
    first = await _login(doctor_pc, DOCTOR_PASSWORD)
    assert first.status == 200 and "sz_device" in first.cookies
    await doctor_pc.post("/api/logout", headers={"X-CSRF-Token": (await first.json())[
        "csrf_token"]})
    for n in range(3, 13):
        pc = connect(f"127.0.0.{n}")
        for _ in range(5):
            await _login(pc, WRONG)
    stranger = await _login(connect("127.0.0.13"), DOCTOR_PASSWORD)
    assert stranger.status == 429 and (await stranger.json())["minutes"] == 60
    forged = connect("127.0.0.14")
    forged.cookie_jar.update_cookies({"sz_device": "0" * 32 + "." + "0" * 64})
    assert (await _login(forged, DOCTOR_PASSWORD)).status == 429
    mine = await _login(doctor_pc, DOCTOR_PASSWORD)
    assert mine.status == 200, await mine.text()
    statuses = [(await _login(doctor_pc, WRONG)).status for _ in range(6)]
    assert statuses == [401] * 4 + [429] * 2


async def test_the_document_asks_for_password_and_code(practice: Box) -> None:
    """The OpenAPI document describes the switch-off body (generated from the same table)."""
    document = await (await practice.staff.get("/api/openapi.json")).json()
    body = document["paths"]["/api/me/totp"]["delete"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert body["required"] is True and schema["required"] == ["password"]
    assert set(schema["properties"]) == {"password", "totp"}


async def test_staff_cookie_ends_with_the_browser(practice: Box) -> None:
    """R9 (CSRF, sessions), issue 9, defect 6: the staff session cookie (it also reopens the
    vault after a restart)
    has no Max-Age or Expires, so it never lands on the practice PC's disk; HttpOnly,
    SameSite=Strict."""
    response = await practice.staff.post("/api/login", json={
        "username": "dr.mueller", "password": DOCTOR_PASSWORD})
    assert response.status == 200
    cookie = response.cookies["sz_staff"]
    assert not cookie.get("max-age") and not cookie.get("expires")
    assert cookie["httponly"] and cookie["samesite"] == "Strict"


def test_session_cookie_on_tls_is_host_prefixed_and_secure() -> None:
    """R9, issue 9, defect 6: on a TLS site the cookie is ``__Host-sz_staff``, Secure, path /, no
    Domain; a cookie without the prefix is not accepted there."""
    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request

    from appliance.web.sessions import SessionStore, StaffSession

    store = SessionStore[StaffSession]("sz_staff", idle_s=60, max_s=600, persistent=False)
    request = make_mocked_request("POST", "/api/login").clone(scheme="https")
    response = web.Response()
    session_id = store.create(response, request, StaffSession(username="dr.mueller"))
    cookie = response.cookies["__Host-sz_staff"]
    assert cookie["secure"] and cookie["path"] == "/" and not cookie["domain"]
    assert not cookie.get("max-age") and not cookie.get("expires")
    prefixed = make_mocked_request(
        "GET", "/", headers={"Cookie": f"__Host-sz_staff={session_id}"}).clone(scheme="https")
    plain = make_mocked_request(
        "GET", "/", headers={"Cookie": f"sz_staff={session_id}"}).clone(scheme="https")
    assert store.get(prefixed).username == "dr.mueller"
    assert store.get(plain) is None


async def test_a_weak_old_password_still_works_but_is_to_be_changed(practice: Box) -> None:
    """R9, issue 9, defect 3: a password from before the policy (here one on the common lists) still
    logs in, and the session says so until the member changed it to a good one."""
    practice.services.vault.set_password("dr.mueller", "passwort1234")  # as set before the rules
    headers = await practice.login("dr.mueller", "passwort1234")
    session = await (await practice.staff.get("/api/session")).json()
    assert session["password_weak"] is True
    refused = await practice.staff.post("/api/staff/dr.mueller/password", headers=headers, json={
        "old_password": "passwort1234", "new_password": "passwort12345"})
    assert refused.status == 400
    assert "häufigsten Passwörter" in (await refused.json())["message"]
    changed = await practice.staff.post("/api/staff/dr.mueller/password", headers=headers, json={
        "old_password": "passwort1234", "new_password": "Kiesel Wolke Laterne 12"})
    assert changed.status == 200, await changed.text()
    assert (await (await practice.staff.get("/api/session")).json())["password_weak"] is False
    await practice.login("dr.mueller", "Kiesel Wolke Laterne 12")
    assert (await (await practice.staff.get("/api/session")).json())["password_weak"] is False
