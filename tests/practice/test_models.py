"""The records: round trips through plain data, derived times, no personal data in reprs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from appliance.practice.models import (
    Appointment,
    AppointmentState,
    AuditEntry,
    Consent,
    ConsentMethod,
    Patient,
    PracticeProfile,
    Role,
    StaffMember,
    new_id,
    to_utc_text,
)

AT = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
CET = timezone(timedelta(hours=1))


def _appointment() -> Appointment:
    return Appointment(
        id=new_id(), doctor="dr.weber", patient_id="p1",
        start=datetime(2026, 3, 2, 10, 0, tzinfo=CET), duration_minutes=20,
        state=AppointmentState.WAITING, link_token="tok-secret", access_code="ACD-EFH-JKM",
        code_failures=2, checked_in_name="Erika Mustermann", checked_in_at=AT,
        created_by="mfa.klein", created_at=AT, updated_at=AT,
    )


def test_round_trips() -> None:
    """Every record survives to_dict → from_dict unchanged."""
    consent = Consent(given_on=date(2026, 3, 1), form_version="2026-01",
                      method=ConsentMethod.WRITTEN, recorded_by="mfa.klein", recorded_at=AT)
    records = [
        PracticeProfile(name="Praxis", bsnr="123456789", street="Markt 1", postal_code="01067",
                        city="Dresden", kv_region="SN", public_urls=("https://a.example",)),
        StaffMember(username="dr.weber", display_name="Dr. Weber",
                    roles=frozenset({Role.DOCTOR, Role.ADMIN}), lanr="123456601",
                    created_at=AT),
        consent,
        Patient(id=new_id(), full_name="Erika Mustermann", consent=consent, created_at=AT),
        _appointment(),
        AuditEntry(seq=1, at=AT, actor="admin", action="login", target=None,
                   prev_hash="0" * 64, hash="f" * 64),
    ]
    for record in records:
        assert type(record).from_dict(record.to_dict()) == record


def test_times_are_stored_in_utc() -> None:
    """Datetimes are stored as ISO strings in UTC; naive ones are refused."""
    data = _appointment().to_dict()
    assert data["start"] == "2026-03-02T09:00:00+00:00"
    with pytest.raises(ValueError):
        to_utc_text(datetime(2026, 3, 2, 8, 0))


def test_end_and_code_expiry() -> None:
    """The code works until two hours after the planned end."""
    appointment = _appointment()
    assert appointment.end == datetime(2026, 3, 2, 9, 20, tzinfo=UTC)
    assert appointment.code_expires_at == datetime(2026, 3, 2, 11, 20, tzinfo=UTC)


def test_reprs_carry_no_personal_data() -> None:
    """Logging a record by accident shows no name, token or code."""
    text = repr(_appointment()) + repr(
        Patient(id="p1", full_name="Erika Mustermann", email="e@example.de",
                phone="0351 1", created_at=AT))
    for secret in ("Erika", "tok-secret", "ACD-EFH-JKM", "e@example.de", "0351"):
        assert secret not in text


def test_ids_are_random_hex() -> None:
    """Record ids are 64-bit random hex strings."""
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in ids)
