"""Fixtures of the practice domain: a real vault in ``tmp_path`` (cheap KDF) and a manual clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from appliance.clock import ManualClock
from appliance.practice.appointments import AppointmentBook
from appliance.practice.audit import AuditLog
from appliance.practice.calls import Calls
from appliance.practice.models import Appointment, Patient, PracticeProfile, Role, StaffMember
from appliance.practice.patients import PatientRegistry
from appliance.practice.profile import PracticeOffice
from appliance.practice.reception import Reception
from appliance.practice.staff import StaffDirectory
from appliance.vault import KdfParams, Vault

#: a Monday morning, 08:00 UTC (09:00 in Berlin)
START: datetime = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
CHEAP_KDF = KdfParams(memory_kib=1024, iterations=1, lanes=1)
PASSWORDS: dict[str, str] = {
    "admin": "admin-passwort-1",
    "dr.weber": "weber-passwort-1",
    "dr.yilmaz": "yilmaz-passwort-1",
    "mfa.klein": "klein-passwort-1",
}


@pytest.fixture
def passwords() -> dict[str, str]:
    """Every test member's password, by username."""
    return dict(PASSWORDS)


@pytest.fixture
def clock() -> ManualClock:
    """A clock standing at ``START`` until a test moves it."""
    return ManualClock(START)


@pytest.fixture
def vault_path(tmp_path: Path) -> Path:
    """Where the test vault lives."""
    return tmp_path / "vault"


@pytest.fixture
def make_vault(vault_path: Path) -> Iterator[Callable[[], Vault]]:
    """Open (another) vault object on the test vault's files, like a reboot does."""
    opened: list[Vault] = []

    def make() -> Vault:
        """A new vault object on the same directory."""
        vault = Vault(vault_path, kdf=CHEAP_KDF)
        opened.append(vault)
        return vault

    yield make
    for vault in opened:
        close = getattr(vault, "close", None)
        if close is not None:
            close()


@pytest.fixture
def vault(make_vault: Callable[[], Vault]) -> Vault:
    """A real, not yet initialised vault."""
    return make_vault()


@pytest.fixture
def audit(vault: Vault, clock: ManualClock) -> AuditLog:
    """The audit log on the test vault."""
    return AuditLog(vault, clock)


@pytest.fixture
def staff(vault: Vault, audit: AuditLog, clock: ManualClock) -> StaffDirectory:
    """The staff directory on the test vault."""
    return StaffDirectory(vault, audit, clock)


@pytest.fixture
def admin(staff: StaffDirectory) -> StaffMember:
    """The practice's first admin; creating it creates the vault (left unsealed)."""
    member, _ = staff.create_first_admin(
        username="admin", display_name="Praxis Verwaltung", password=PASSWORDS["admin"]
    )
    return member


@pytest.fixture
def doctor(staff: StaffDirectory, admin: StaffMember) -> StaffMember:
    """A doctor of the practice."""
    return staff.add("admin", username="dr.weber", display_name="Dr. Anna Weber",
                     roles={Role.DOCTOR}, password=PASSWORDS["dr.weber"], lanr="123456601")


@pytest.fixture
def doctor2(staff: StaffDirectory, admin: StaffMember) -> StaffMember:
    """A second doctor of the practice."""
    return staff.add("admin", username="dr.yilmaz", display_name="Dr. Deniz Yilmaz",
                     roles={Role.DOCTOR}, password=PASSWORDS["dr.yilmaz"], lanr="765432101")


@pytest.fixture
def assistant(staff: StaffDirectory, admin: StaffMember) -> StaffMember:
    """A medical assistant (MFA): organisational tasks only."""
    return staff.add("admin", username="mfa.klein", display_name="Lena Klein",
                     roles={Role.ASSISTANT}, password=PASSWORDS["mfa.klein"])


@pytest.fixture
def office(vault: Vault, audit: AuditLog, admin: StaffMember) -> PracticeOffice:
    """The practice office, without a saved profile."""
    return PracticeOffice(vault, audit)


@pytest.fixture
def profile() -> PracticeProfile:
    """A valid practice profile."""
    return PracticeProfile(
        name="Hausarztpraxis am Markt",
        bsnr="123456789",
        street="Marktplatz 1",
        postal_code="01067",
        city="Dresden",
        kv_region="SN",
        public_urls=("https://praxis.example.de", "https://lte.praxis.example.de"),
    )


@pytest.fixture
def patients(vault: Vault, audit: AuditLog, clock: ManualClock,
             admin: StaffMember) -> PatientRegistry:
    """The patient registry on the test vault."""
    return PatientRegistry(vault, audit, clock)


@pytest.fixture
def patient(patients: PatientRegistry) -> Patient:
    """A patient without consent yet."""
    return patients.add("admin", full_name="Erika Mustermann", email="erika@example.de",
                        phone="+49 351 123456")


@pytest.fixture
def book(vault: Vault, audit: AuditLog, clock: ManualClock, staff: StaffDirectory,
         patients: PatientRegistry, office: PracticeOffice) -> AppointmentBook:
    """The appointment book."""
    return AppointmentBook(vault, audit, clock, staff, patients, office)


@pytest.fixture
def reception(book: AppointmentBook, audit: AuditLog, clock: ManualClock,
              patients: PatientRegistry, office: PracticeOffice) -> Reception:
    """The way in by link and code."""
    return Reception(book, audit, clock, patients, office)


@pytest.fixture
def calls(book: AppointmentBook, audit: AuditLog, clock: ManualClock) -> Calls:
    """Who is in the call."""
    return Calls(book, audit, clock)


@pytest.fixture
def make_appointment(
    book: AppointmentBook, doctor: StaffMember, assistant: StaffMember, patient: Patient,
    clock: ManualClock,
) -> Callable[..., Appointment]:
    """Book an appointment (by the assistant, with Dr. Weber, in one hour unless told)."""

    def make(*, actor: str = "mfa.klein", **changes: Any) -> Appointment:
        """Book one, with ``changes`` to the defaults."""
        arguments: dict[str, Any] = {
            "doctor": doctor.username,
            "patient_id": patient.id,
            "start": clock.now() + timedelta(hours=1),
            "duration_minutes": 15,
        }
        return book.create(actor, **{**arguments, **changes})

    return make
