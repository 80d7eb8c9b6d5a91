"""Patients: contact data with validation, search, consent (O1), removal rules."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

import pytest
from msgspec.structs import fields

from appliance.clock import ManualClock
from appliance.errors import Conflict, InvalidInput, NotFound
from appliance.practice.appointments import AppointmentBook
from appliance.practice.audit import AuditLog
from appliance.practice.models import Appointment, ConsentMethod, Patient
from appliance.practice.patients import CONSENT_FORM_VERSION, PatientRegistry


def test_add_and_get(patients: PatientRegistry, patient: Patient, audit: AuditLog) -> None:
    """A patient is stored with contact data only and found by id; adding is audited by id."""
    assert patients.get(patient.id) == patient
    assert patient.consent is None
    assert {f.name for f in fields(Patient)} == {
        "id", "full_name", "email", "phone", "consent", "created_at"}
    entry = audit.entries(limit=1)[0]
    assert (entry.action, entry.target) == ("patient.add", patient.id)
    with pytest.raises(NotFound):
        patients.get("0000000000000000")


def test_add_cleans_input(patients: PatientRegistry) -> None:
    """Names lose extra whitespace; empty e-mail and phone become None."""
    patient = patients.add("admin", full_name="  Max   Müller ", email=" ", phone="")
    assert (patient.full_name, patient.email, patient.phone) == ("Max Müller", None, None)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"full_name": "X"}, "full_name"),
        ({"full_name": "x" * 201}, "full_name"),
        ({"email": "erika"}, "email"),
        ({"email": "erika@example"}, "email"),
        ({"email": "eri ka@example.de"}, "email"),
        ({"phone": "0351-abc"}, "phone"),
        ({"phone": "+"}, "phone"),
    ],
)
def test_add_validates(patients: PatientRegistry, changes: dict, field: str) -> None:
    """Name 2–200 characters, an e-mail address's shape, a phone of digits, + and spaces."""
    with pytest.raises(InvalidInput) as raised:
        patients.add("admin", **{"full_name": "Erika Mustermann", **changes})
    assert raised.value.params["field"] == field
    assert patients.search() == []


def test_update(patients: PatientRegistry, patient: Patient) -> None:
    """Name, e-mail and phone can change; other fields cannot."""
    changed = patients.update("admin", patient.id, full_name="Erika Musterfrau", email=None)
    assert changed == patients.get(patient.id)
    assert (changed.full_name, changed.email, changed.phone) == (
        "Erika Musterfrau", None, "+49 351 123456")
    with pytest.raises(InvalidInput):
        patients.update("admin", patient.id, diagnosis="Grippe")
    with pytest.raises(InvalidInput):
        patients.update("admin", patient.id, full_name=None)


def test_search(patients: PatientRegistry, patient: Patient) -> None:
    """Case-insensitive substring search on the name, sorted by name."""
    patients.add("admin", full_name="Zoe Muster")
    patients.add("admin", full_name="anna mustermann")
    patients.add("admin", full_name="Bernd Berg")
    assert [p.full_name for p in patients.search("MUSTER")] == [
        "anna mustermann", "Erika Mustermann", "Zoe Muster"]
    assert len(patients.search()) == 4
    assert patients.search("nobody") == []


@pytest.mark.parametrize("method", list(ConsentMethod))
def test_record_consent(patients: PatientRegistry, patient: Patient,
                        method: ConsentMethod) -> None:
    """O1: consent is recorded with date, form version, method and who recorded it."""
    changed = patients.record_consent("mfa.klein", patient.id, given_on=date(2026, 3, 1),
                                      form_version=CONSENT_FORM_VERSION, method=method)
    consent = patients.get(patient.id).consent
    assert consent == changed.consent
    assert consent is not None
    assert (consent.given_on, consent.form_version, consent.method, consent.recorded_by) == (
        date(2026, 3, 1), "2026-01", method, "mfa.klein")


def test_record_consent_validates(patients: PatientRegistry, patient: Patient) -> None:
    """O1: no consent dated in the future, no empty form version, no unknown method."""
    with pytest.raises(InvalidInput):
        patients.record_consent("admin", patient.id, given_on=date(2026, 3, 3),
                                form_version="2026-01", method=ConsentMethod.WRITTEN)
    with pytest.raises(InvalidInput):
        patients.record_consent("admin", patient.id, given_on=date(2026, 3, 2),
                                form_version=" ", method=ConsentMethod.WRITTEN)
    with pytest.raises(InvalidInput):
        patients.record_consent("admin", patient.id, given_on=date(2026, 3, 2),
                                form_version="2026-01", method="telepathy")
    assert patients.get(patient.id).consent is None


def test_remove_refused_while_an_appointment_is_open(
    patients: PatientRegistry, patient: Patient, book: AppointmentBook,
    make_appointment: Callable[..., Appointment],
) -> None:
    """A patient with an open appointment stays; after cancelling it they can go."""
    appointment = make_appointment()
    with pytest.raises(Conflict):
        patients.remove("admin", patient.id)
    book.cancel("mfa.klein", appointment.id)
    patients.remove("admin", patient.id)
    with pytest.raises(NotFound):
        patients.get(patient.id)


def test_consent_of_today_is_accepted_in_any_zone(patients: PatientRegistry, patient: Patient,
                                                  clock: ManualClock) -> None:
    """O1: a consent given "today" in a zone ahead of UTC is not refused as future-dated."""
    clock.set(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))  # already 3 March east of UTC+12
    patients.record_consent("admin", patient.id, given_on=date(2026, 3, 3),
                            form_version="2026-01", method=ConsentMethod.WRITTEN)
    with pytest.raises(InvalidInput):
        patients.record_consent("admin", patient.id, given_on=date(2026, 3, 4),
                                form_version="2026-01", method=ConsentMethod.WRITTEN)
