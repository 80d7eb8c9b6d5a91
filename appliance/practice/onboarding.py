"""Onboarding: the practice profile and the first admin, created together or not at all."""

from __future__ import annotations

from collections.abc import Iterable

from appliance.practice.models import PracticeProfile, Role
from appliance.practice.profile import validated
from appliance.practice.services import PracticeServices
from appliance.vault import RecoveryKey


def onboard(
    services: PracticeServices, *, profile: PracticeProfile, username: str, display_name: str,
    password: str, roles: Iterable[Role], lanr: str | None = None,
) -> RecoveryKey:
    """Create the vault with its first admin and the practice profile; return the recovery key.

    Everything is validated before the vault is created, so a typo leaves no half-configured
    box behind (``VaultAlreadyInitialized`` if it exists already).
    """
    profile = validated(profile)
    _, recovery_key = services.staff.create_first_admin(
        username=username, display_name=display_name, password=password, roles=roles,
        lanr=lanr,
    )
    services.office.save_profile(username, profile)
    return recovery_key
