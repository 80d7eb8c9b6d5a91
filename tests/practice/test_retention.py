"""Retention (R8): metadata is gone after at most 90 days, and the audit chain still verifies."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from appliance.clock import ManualClock
from appliance.errors import NotFound
from appliance.practice.appointments import AppointmentBook
from appliance.practice.audit import AuditLog
from appliance.practice.calls import Calls
from appliance.practice.models import Appointment, AppointmentState, Patient
from appliance.practice.patients import PatientRegistry
from appliance.practice.reception import Reception
from appliance.practice.retention import PurgeReport, RetentionPolicy

if TYPE_CHECKING:
    from appliance.vault import Vault

MakeAppointment = Callable[..., Appointment]


def _patient_link(book, token: str):  # noqa: ANN001, ANN202 - the book under test
    """The appointment whose patient link carries ``token``, or None (a guest's link: None)."""
    visitor = book.find_visitor(token)
    return visitor.appointment if visitor is not None and visitor.guest is None else None


@pytest.fixture
def policy(vault: Vault, audit: AuditLog, clock: ManualClock,
           book: AppointmentBook) -> RetentionPolicy:
    """The default policy: 90 days, told about the book's token index."""
    return RetentionPolicy(vault, audit, clock, book=book)


@pytest.mark.parametrize("days", [0, -1, 91, 365, 30.5, True])
def test_days_outside_1_to_90_are_refused(vault: Vault, audit: AuditLog, clock: ManualClock,
                                          days: object) -> None:
    """R8: never longer than 90 days (and at least one)."""
    with pytest.raises(ValueError):
        RetentionPolicy(vault, audit, clock, days=days)  # type: ignore[arg-type]


def test_default_is_90_days(vault: Vault, audit: AuditLog, clock: ManualClock) -> None:
    """R8: the default is the maximum, 90 days; 1 day is allowed too."""
    assert RetentionPolicy(vault, audit, clock).days == 90
    assert RetentionPolicy(vault, audit, clock, days=1).days == 1


def test_kept_at_89_days_gone_at_91(policy: RetentionPolicy, book: AppointmentBook,
                                    reception: Reception, calls: Calls,
                                    make_appointment: MakeAppointment, patient: Patient,
                                    patients: PatientRegistry, audit: AuditLog,
                                    clock: ManualClock) -> None:
    """R8: kept 89 days after its end; at 91 days gone with patient, link and old audit entries."""
    appointment = make_appointment()
    reception.check_in(appointment.link_token, appointment.access_code,
                       full_name="Erika Mustermann",
                  consent_confirmed=True, rules_confirmed=True)
    calls.admit("dr.weber", appointment.id)
    calls.end("dr.weber", appointment.id)
    entries_before = audit.verify()

    clock.set(appointment.end + timedelta(days=89))
    assert policy.purge() == PurgeReport(appointments=0, patients=0, audit_entries=0)
    assert audit.verify() == entries_before  # an empty purge leaves no audit entry
    assert book.get(appointment.id).state is AppointmentState.ENDED
    assert patients.get(patient.id).consent is not None

    clock.set(appointment.end + timedelta(days=91))
    report = policy.purge()
    assert report.appointments == 1
    assert report.patients == 1
    assert report.audit_entries == entries_before
    with pytest.raises(NotFound):
        book.get(appointment.id)
    with pytest.raises(NotFound):
        patients.get(patient.id)
    assert _patient_link(book, appointment.link_token) is None
    assert book._index == {}
    assert audit.verify() == 1
    last = audit.entries(limit=1)[0]
    assert (last.actor, last.action) == ("system", "retention.purge")
    assert last.target == f"appointments=1 patients=1 audit_entries={entries_before}"


def test_purge_takes_every_state(policy: RetentionPolicy, book: AppointmentBook,
                                 make_appointment: MakeAppointment, clock: ManualClock) -> None:
    """R8: cancelled, missed and never-touched appointments go too, once old enough."""
    cancelled, missed, untouched = make_appointment(), make_appointment(), make_appointment()
    book.cancel("mfa.klein", cancelled.id)
    book.mark_no_show("mfa.klein", missed.id)
    clock.set(untouched.end + timedelta(days=90, seconds=1))
    assert policy.purge().appointments == 3
    assert book.upcoming() == []


def test_patient_with_a_recent_appointment_stays(policy: RetentionPolicy,
                                                 make_appointment: MakeAppointment,
                                                 patient: Patient, patients: PatientRegistry,
                                                 clock: ManualClock) -> None:
    """An old patient record stays while it has an appointment within the period."""
    clock.advance(timedelta(days=100))
    recent = make_appointment()
    fresh = patients.add("mfa.klein", full_name="Neu Patient")
    assert policy.purge().patients == 0
    assert patients.get(patient.id).id == recent.patient_id
    assert patients.get(fresh.id) == fresh


def test_shorter_period(vault: Vault, audit: AuditLog, clock: ManualClock,
                        make_appointment: MakeAppointment, book: AppointmentBook) -> None:
    """A practice may keep less: with 7 days, an appointment 8 days past is gone."""
    appointment = make_appointment()
    clock.set(appointment.end + timedelta(days=8))
    assert RetentionPolicy(vault, audit, clock, days=7).purge().appointments == 1
    # without being told, the book's index still drops the dead token on the next lookup
    assert _patient_link(book, appointment.link_token) is None
    assert book._index == {}



def test_purge_compacts_the_vault(policy: RetentionPolicy, vault: Vault,
                                  make_appointment: Callable[..., Appointment],
                                  clock: ManualClock) -> None:
    """R8: a purge compacts at once, so the deleted records leave the journal on disk too."""
    appointment = make_appointment()
    clock.set(appointment.end + timedelta(days=91))
    before = vault.status()
    assert before.journal_records > 1
    policy.purge()
    after = vault.status()
    assert after.generation > before.generation
    assert after.journal_records <= 1  # only the purge's own audit entry
