"""Fixtures: a real box (vault on disk, both aiohttp sites) driven by aiohttp test clients."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from appliance.config import Settings, VaultSettings, WebSettings
from appliance.practice.models import PracticeProfile, Role
from appliance.practice.onboarding import onboard
from appliance.practice.services import PracticeServices
from appliance.runtime import build_box, build_services
from appliance.vault import KdfParams
from appliance.web.app import build_public_app, build_staff_app

CHEAP_KDF = KdfParams(memory_kib=1024, iterations=1, lanes=1)
ADMIN_PASSWORD = "admin-passwort-123"
DOCTOR_PASSWORD = "arzt-passwort-1234"
ASSISTANT_PASSWORD = "mfa-passwort-12345"
PROFILE = PracticeProfile(
    name="Praxis Dr. Beispiel", bsnr="123456789", street="Hauptstr. 1", postal_code="50667",
    city="Köln", kv_region="NO", timezone="Europe/Berlin",
    public_urls=("https://videosprechstunde.praxis-beispiel.de",),
)


@dataclass
class Box:
    """A running box under test: services and a client per site."""

    services: PracticeServices
    staff: TestClient
    public: TestClient

    async def login(self, username: str, password: str) -> dict[str, str]:
        """Log in on the staff site; return headers carrying the CSRF token."""
        response = await self.staff.post("/api/login", json={
            "username": username, "password": password})
        assert response.status == 200, await response.text()
        body = await response.json()
        return {"X-CSRF-Token": body["csrf_token"]}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with the vault in a temporary directory."""
    return Settings(
        web=WebSettings(public_urls=("https://videosprechstunde.praxis-beispiel.de",)),
        vault=VaultSettings(path=tmp_path / "vault"),
    )


@pytest.fixture
def services(settings: Settings) -> PracticeServices:
    """The practice services over a fresh vault (not onboarded yet)."""
    return build_services(settings, kdf=CHEAP_KDF)


@pytest.fixture
async def box(
    settings: Settings, services: PracticeServices,
    aiohttp_client: Callable[..., Awaitable[TestClient]],
) -> Box:
    """Both sites of a box that has not been onboarded."""
    parts = build_box(settings, services)
    staff_app = build_staff_app(parts)
    public_app = build_public_app(parts)
    staff = await aiohttp_client(staff_app)
    public = await aiohttp_client(public_app)
    return Box(services, staff, public)


@pytest.fixture
async def practice(box: Box) -> Box:
    """An onboarded box with an admin, a doctor and an assistant (admin logged in)."""
    onboard(box.services, profile=PROFILE, username="admin", display_name="Anna Admin",
            password=ADMIN_PASSWORD, roles={Role.ADMIN})
    box.services.staff.add("admin", username="dr.mueller", display_name="Dr. Maria Müller",
                           roles={Role.DOCTOR}, password=DOCTOR_PASSWORD, lanr="123456701")
    box.services.staff.add("admin", username="mfa", display_name="Tom MFA",
                           roles={Role.ASSISTANT}, password=ASSISTANT_PASSWORD)
    return box
