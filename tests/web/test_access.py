"""Access control on the staff API (R2, R9 A01): login required, roles enforced."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest

from appliance.web import staff
from appliance.web.context import EVENTS

from .conftest import ASSISTANT_PASSWORD, DOCTOR_PASSWORD, Box

PROTECTED = [ep for ep in staff.ENDPOINTS if ep.access != "public"]
ADMIN_ONLY = [ep for ep in staff.ENDPOINTS if ep.access == "admin"]


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "someone", path)


@pytest.mark.parametrize("endpoint", PROTECTED, ids=lambda ep: f"{ep.method} {ep.path}")
async def test_protected_endpoint_needs_login(practice: Box, endpoint: staff.Endpoint) -> None:
    """Without a session every non-public endpoint answers 401."""
    response = await practice.staff.request(endpoint.method, _concrete(endpoint.path), json={})
    assert response.status == 401
    assert (await response.json())["error"] == "not_logged_in"


@pytest.mark.parametrize("endpoint", ADMIN_ONLY, ids=lambda ep: f"{ep.method} {ep.path}")
async def test_admin_endpoint_refuses_assistant_and_doctor(
    practice: Box, endpoint: staff.Endpoint
) -> None:
    """Only admins manage users, settings and the audit log (R2)."""
    for username, password in (("mfa", ASSISTANT_PASSWORD), ("dr.mueller", DOCTOR_PASSWORD)):
        headers = await practice.login(username, password)
        response = await practice.staff.request(
            endpoint.method, _concrete(endpoint.path), json={}, headers=headers)
        assert response.status == 403, (username, response.status)


async def test_assistant_schedules_but_cannot_change_others_password(practice: Box) -> None:
    """An assistant does organisational work (R2) and nothing beyond."""
    headers = await practice.login("mfa", ASSISTANT_PASSWORD)
    patient = await practice.staff.post("/api/patients", json={"full_name": "Erika Muster"},
                                        headers=headers)
    assert patient.status == 201
    other = await practice.staff.post("/api/staff/dr.mueller/password",
                                      json={"new_password": "neues-passwort-99"}, headers=headers)
    assert other.status == 403


async def test_removed_member_loses_session_stream_and_vault_access(practice: Box) -> None:
    """Removing a member ends their sessions and live streams; the vault is re-keyed (R9 A01)."""
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
    async with aiohttp.ClientSession(cookie_jar=jar) as doctor:
        login = await doctor.post(practice.staff.make_url("/api/login"), json={
            "username": "dr.mueller", "password": DOCTOR_PASSWORD})
        assert login.status == 200
        stream = await doctor.get(practice.staff.make_url("/api/events"))
        assert (await stream.content.readline()).startswith(b"retry:")

        admin = await practice.login("admin", "admin-passwort-123")
        removed = await practice.staff.delete("/api/staff/dr.mueller", headers=admin)
        assert removed.status == 200, await removed.text()
        practice.staff.app[EVENTS].publish({"type": "appointment", "id": "any"})
        rest = await asyncio.wait_for(stream.content.read(), 5)
        assert b"event:" not in rest  # the stream ended instead of serving the next change
        session = await doctor.get(practice.staff.make_url("/api/session"))
        assert session.status == 401
    assert "dr.mueller" not in practice.services.vault.members()
    assert not practice.services.vault.check_password("dr.mueller", DOCTOR_PASSWORD)
