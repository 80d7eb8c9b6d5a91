"""Password checks do their Argon2id work off the event loop that carries every page."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient

from appliance.config import Settings
from appliance.practice.models import Role
from appliance.practice.onboarding import onboard
from appliance.runtime import build_box, build_services
from appliance.vault import KdfParams, crypto
from appliance.web.app import build_staff_app

from .conftest import ADMIN_PASSWORD, DOCTOR_PASSWORD, PROFILE, Box


async def test_a_login_does_not_hold_up_the_other_pages(
    settings: Settings, aiohttp_client: Callable[..., Awaitable[TestClient]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A login runs its Argon2id key derivation (~0.3 s at the box's real costs) in a worker
    thread: while it is held there, a request that arrives (here the status the pages poll; in a
    call, signaling heartbeats) is answered. On the event loop it would wait for the login.
    Deterministic: the derivation is held on an event until the status has been answered."""
    services = build_services(settings, kdf=KdfParams())  # the real costs, not the tests' cheap
    onboard(services, profile=PROFILE, username="admin", display_name="Anna Admin",
            password=ADMIN_PASSWORD, roles={Role.ADMIN})
    parts = build_box(settings, services)
    staff_app = build_staff_app(parts)
    client = await aiohttp_client(staff_app)
    loop = asyncio.get_running_loop()
    deriving, release = asyncio.Event(), threading.Event()
    real = crypto._argon2id

    def held(secret: bytes, salt: bytes, params: KdfParams) -> bytes:
        loop.call_soon_threadsafe(deriving.set)
        assert release.wait(30), "the test never released the derivation"
        return real(secret, salt, params)

    monkeypatch.setattr(crypto, "_argon2id", held)
    login = asyncio.ensure_future(client.post(
        "/api/login", json={"username": "admin", "password": ADMIN_PASSWORD}))
    try:
        async with asyncio.timeout(30):
            await deriving.wait()
        status = await client.get("/api/status")  # answered while the login is held
        assert status.status == 200 and not login.done()
    finally:
        release.set()
    answer = await login
    assert answer.status == 200, await answer.text()


async def test_a_locked_name_costs_no_key_derivation(
    practice: Box, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a name is locked from an address, further tries from there are refused before any
    Argon2id work (a flood of them cannot keep the workers busy)."""
    runs: list[bytes] = []
    real = crypto._argon2id
    monkeypatch.setattr(crypto, "_argon2id", lambda secret, salt, params: (
        runs.append(salt) or real(secret, salt, params)))
    statuses = []
    for _ in range(7):
        answer = await practice.staff.post("/api/login", json={"username": "dr.mueller",
                                                               "password": "falsch-falsch-1"})
        statuses.append(answer.status)
    assert statuses == [401] * 4 + [429] * 3  # the fifth wrong password locks
    assert len(runs) == 5  # one per try (in the worker; the check uses it), none when locked


async def test_staff_logging_in_at_the_same_moment(
    settings: Settings, aiohttp_client: Callable[..., Awaitable[TestClient]],
) -> None:
    """The morning rush: the admin and a doctor log in on two PCs at once, at the box's real
    Argon2id costs; both get in (two derivations at once failed in ``cryptography``)."""
    services = build_services(settings, kdf=KdfParams())
    onboard(services, profile=PROFILE, username="admin", display_name="Anna Admin",
            password=ADMIN_PASSWORD, roles={Role.ADMIN})
    services.staff.add("admin", username="dr.mueller", display_name="Dr. Maria Müller",
                       roles={Role.DOCTOR}, password=DOCTOR_PASSWORD, lanr="123456701")
    services.vault.seal()  # as every morning after the night's lock: the first login unseals
    parts = build_box(settings, services)
    staff_app = build_staff_app(parts)
    first, second = await aiohttp_client(staff_app), await aiohttp_client(staff_app)
    async with asyncio.timeout(60):
        answers = await asyncio.gather(
            first.post("/api/login", json={"username": "admin", "password": ADMIN_PASSWORD}),
            second.post("/api/login", json={"username": "dr.mueller",
                                            "password": DOCTOR_PASSWORD}))
    assert [answer.status for answer in answers] == [200, 200], [
        await answer.text() for answer in answers]
