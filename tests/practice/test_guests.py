"""Guests of an appointment: own link and code, the patient link's rules, purged with it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from appliance.clock import ManualClock
from appliance.errors import (
    AppointmentClosed,
    Conflict,
    InvalidInput,
    LinkLocked,
    NotFound,
    PermissionDenied,
    WrongAccessCode,
)
from appliance.practice.appointments import MAX_GUESTS, AppointmentBook
from appliance.practice.audit import AuditLog
from appliance.practice.calls import Calls
from appliance.practice.models import Appointment, AppointmentState, Guest, Patient
from appliance.practice.patients import PatientRegistry
from appliance.practice.reception import Reception
from appliance.practice.retention import RetentionPolicy
from tests.practice.test_appointments import _to, _wrong

if TYPE_CHECKING:
    from appliance.vault import Vault

MakeAppointment = Callable[..., Appointment]
S = AppointmentState


def _patient_link(book, token: str):  # noqa: ANN001, ANN202 - the book under test
    """The appointment whose patient link carries ``token``, or None (a guest's link: None)."""
    visitor = book.find_visitor(token)
    return visitor.appointment if visitor is not None and visitor.guest is None else None


def _check_in(reception: Reception, guest: Guest, name: str = "Lena Mustermann") -> Guest:
    visitor = reception.guest_check_in(guest.link_token, guest.access_code, full_name=name,
                                       consent_confirmed=True, rules_confirmed=True)
    assert visitor.guest is not None
    return visitor.guest


def test_invite_gives_an_own_link_and_code(book: AppointmentBook,
                                           make_appointment: MakeAppointment,
                                           audit: AuditLog) -> None:
    """R1: a relative or interpreter joins without an account, by their own link and code."""
    appointment = make_appointment()
    guest = book.invite_guest("mfa.klein", appointment.id, label="  Tochter ")
    assert guest.label == "Tochter" and guest.appointment_id == appointment.id
    assert guest.link_token != appointment.link_token
    assert guest.access_code != appointment.access_code
    assert book.guests(appointment.id) == (guest,)
    visitor = book.find_visitor(guest.link_token)
    assert visitor is not None and visitor.guest == guest and visitor.key == f"guest:{guest.id}"
    assert visitor.state is S.SCHEDULED
    assert _patient_link(book, guest.link_token) is None  # not the patient's link
    entry = audit.entries(limit=1)[0]
    assert (entry.action, entry.target) == ("guest.invite", f"{appointment.id}:{guest.id}")
    assert "Tochter" not in repr(audit.entries(limit=5))  # no names in the audit log


def test_at_most_two_guests(book: AppointmentBook, make_appointment: MakeAppointment) -> None:
    """Doctor, patient and two guests make the four places of a call."""
    appointment = make_appointment()
    for label in ("Tochter", "Dolmetscher")[:MAX_GUESTS]:
        book.invite_guest("mfa.klein", appointment.id, label=label)
    with pytest.raises(Conflict):
        book.invite_guest("mfa.klein", appointment.id, label="Kollege")
    assert len(book.guests(appointment.id)) == MAX_GUESTS == 2


@pytest.mark.parametrize("label", ["", "   ", "x" * 61])
def test_label_is_short_text(book: AppointmentBook, make_appointment: MakeAppointment,
                             label: str) -> None:
    """The label is what staff call the person, nothing more."""
    with pytest.raises(InvalidInput):
        book.invite_guest("mfa.klein", make_appointment().id, label=label)


def test_only_staff_invite(book: AppointmentBook, make_appointment: MakeAppointment) -> None:
    """R2: inviting is organisational work of any staff member, nobody else."""
    appointment = make_appointment()
    with pytest.raises(PermissionDenied):
        book.invite_guest("patient", appointment.id, label="Tochter")
    assert book.invite_guest("dr.weber", appointment.id, label="Tochter").created_by == "dr.weber"


def test_not_on_closed_appointments(book: AppointmentBook, reception: Reception,
                                    make_appointment: MakeAppointment) -> None:
    """A cancelled appointment takes no guests, and its guests' links say it is over."""
    appointment = make_appointment()
    guest = book.invite_guest("mfa.klein", appointment.id, label="Tochter")
    book.cancel("mfa.klein", appointment.id)
    with pytest.raises(Conflict):
        book.invite_guest("mfa.klein", appointment.id, label="Sohn")
    with pytest.raises(Conflict):
        book.reissue_guest("mfa.klein", appointment.id, guest.id)
    with pytest.raises(AppointmentClosed):
        reception.verify_access(guest.link_token, guest.access_code)


def test_guest_link_expires_like_the_patients(book: AppointmentBook, reception: Reception,
                                              make_appointment: MakeAppointment,
                                              clock: ManualClock) -> None:
    """R9: the guest's code stops with the appointment's code."""
    appointment = make_appointment()
    guest = book.invite_guest("mfa.klein", appointment.id, label="Tochter")
    clock.set(appointment.code_expires_at + timedelta(seconds=1))
    with pytest.raises(AppointmentClosed):
        reception.verify_access(guest.link_token, guest.access_code)


def test_five_wrong_codes_lock_only_that_guest(book: AppointmentBook, reception: Reception,
                                               make_appointment: MakeAppointment,
                                               audit: AuditLog) -> None:
    """R9: each link counts its own failures; the fifth locks it until it is reissued."""
    appointment = make_appointment()
    guest = book.invite_guest("mfa.klein", appointment.id, label="Tochter")
    other = book.invite_guest("mfa.klein", appointment.id, label="Dolmetscher")
    for remaining in (4, 3, 2, 1):
        with pytest.raises(WrongAccessCode) as wrong:
            reception.verify_access(guest.link_token, _wrong(guest.access_code))
        assert wrong.value.params == {"remaining": remaining}
    with pytest.raises(LinkLocked):
        reception.verify_access(guest.link_token, _wrong(guest.access_code))
    with pytest.raises(LinkLocked):
        reception.verify_access(guest.link_token, guest.access_code)
    assert audit.entries(limit=1)[0].action == "guest.link_locked"
    # the patient and the other guest are untouched
    patient_link = reception.verify_access(appointment.link_token, appointment.access_code)
    assert patient_link.appointment.code_failures == 0
    assert reception.verify_access(other.link_token, other.access_code).guest == other
    fresh = book.reissue_guest("mfa.klein", appointment.id, guest.id)
    assert not fresh.link_locked and fresh.code_failures == 0
    assert reception.verify_access(fresh.link_token, fresh.access_code).guest == fresh


def test_reissue_and_remove_stop_the_old_link(book: AppointmentBook, reception: Reception,
                                              make_appointment: MakeAppointment) -> None:
    """R9: a reissued or removed guest's old link opens nothing any more."""
    appointment = make_appointment()
    guest = _check_in(reception, book.invite_guest("mfa.klein", appointment.id, label="Tochter"))
    fresh = book.reissue_guest("mfa.klein", appointment.id, guest.id)
    assert fresh.id == guest.id and fresh.checked_in_at is None  # must check in again
    assert book.find_visitor(guest.link_token) is None
    with pytest.raises(NotFound):
        reception.verify_access(guest.link_token, guest.access_code)
    book.remove_guest("mfa.klein", appointment.id, guest.id)
    assert book.find_visitor(fresh.link_token) is None
    assert book.guests(appointment.id) == ()
    with pytest.raises(NotFound):
        book.remove_guest("mfa.klein", appointment.id, guest.id)


def test_guest_check_in_is_not_the_patients_consent(book: AppointmentBook, reception: Reception,
                                                    make_appointment: MakeAppointment,
                                                    patients: PatientRegistry,
                                                    patient: Patient) -> None:
    """O1/O2: a guest confirms consent and rules by name; the patient's record stays untouched."""
    appointment = make_appointment()
    guest = book.invite_guest("mfa.klein", appointment.id, label="Dolmetscher")
    with pytest.raises(InvalidInput):
        reception.guest_check_in(guest.link_token, guest.access_code, full_name="Ali Yilmaz",
                                 consent_confirmed=False, rules_confirmed=True)
    with pytest.raises(NotFound):  # the patient's check-in is not for guests
        reception.check_in(guest.link_token, guest.access_code, full_name="Ali Yilmaz",
                           consent_confirmed=True, rules_confirmed=True)
    checked = _check_in(reception, guest, "  Ali   Yilmaz ")
    assert checked.checked_in_name == "Ali Yilmaz" and checked.checked_in_at is not None
    assert patients.get(patient.id).consent is None
    assert book.get(appointment.id).state is S.SCHEDULED  # the patient has not come yet
    visitor = book.find_visitor(guest.link_token)
    assert visitor is not None and visitor.state is S.WAITING and visitor.name == "Ali Yilmaz"
    left = reception.guest_leave(appointment.id, guest.id)
    assert left.state is S.SCHEDULED and left.name is None


def test_only_the_doctor_admits_a_checked_in_guest(book: AppointmentBook, reception: Reception,
                                                   calls: Calls,
                                                    make_appointment: MakeAppointment) -> None:
    """O3, R2: only the appointment's doctor lets a guest in, once they checked in."""
    appointment = make_appointment()
    guest = book.invite_guest("mfa.klein", appointment.id, label="Tochter")
    with pytest.raises(Conflict):
        calls.admit_guest("dr.weber", appointment.id, guest.id)
    _check_in(reception, guest)
    with pytest.raises(PermissionDenied):
        calls.admit_guest("mfa.klein", appointment.id, guest.id)
    assert calls.admit_guest("dr.weber", appointment.id, guest.id).id == guest.id


def test_the_call_remembers_who_is_in_and_who_was_sent_out(
    book: AppointmentBook, reception: Reception, calls: Calls,
    make_appointment: MakeAppointment, audit: AuditLog,
) -> None:
    """O3, issue 3 (restart): admissions and removals are kept with the appointment, so that a
    restarted box lets back exactly those the doctor let in. A removed guest is back only with a
    new link; the end clears every admission, a reopening every removal."""
    appointment = _to(book, reception, calls, make_appointment(), S.IN_CALL)
    guest = _check_in(reception, book.invite_guest("mfa.klein", appointment.id, label="Tochter"))

    def visitor(token: str):  # noqa: ANN202 - a Visitor
        found = book.find_visitor(token)
        assert found is not None
        return found

    assert visitor(appointment.link_token).in_call
    assert not visitor(guest.link_token).in_call  # checked in, not yet admitted
    calls.admit_guest("dr.weber", appointment.id, guest.id)
    assert visitor(guest.link_token).in_call

    with pytest.raises(PermissionDenied):  # only the appointment's doctor sends someone out
        calls.remove_from_call("mfa.klein", appointment.id, f"guest:{guest.id}")
    calls.remove_from_call("dr.weber", appointment.id, f"guest:{guest.id}")
    out = visitor(guest.link_token)
    assert out.removed and not out.in_call and out.guest.admitted_at is None
    entry = audit.entries(limit=1)[0]
    assert (entry.action, entry.target) == ("appointment.remove_from_call",
                                            f"{appointment.id}:{guest.id}")
    fresh = _check_in(reception, book.reissue_guest("mfa.klein", appointment.id, guest.id))
    assert not visitor(fresh.link_token).removed  # a new link: the doctor may admit again

    calls.remove_from_call("dr.weber", appointment.id, "patient")
    assert visitor(appointment.link_token).removed
    assert not visitor(appointment.link_token).in_call
    calls.admit_guest("dr.weber", appointment.id, guest.id)
    ended = calls.end("dr.weber", appointment.id)
    assert all(g.admitted_at is None for g in ended.guests)
    reopened = calls.reopen("dr.weber", appointment.id)
    assert reopened.removed_from_call == ()


def test_nobody_is_kept_out_of_a_waiting_room(book: AppointmentBook, reception: Reception,
                                              calls: Calls,
                                              make_appointment: MakeAppointment) -> None:
    """A removal is for the running call only: a waiting patient cannot be locked out by it
    (staff withdraw a link by reissuing or cancelling it)."""
    appointment = _to(book, reception, calls, make_appointment(), S.WAITING)
    with pytest.raises(Conflict):
        calls.remove_from_call("dr.weber", appointment.id, "patient")
    assert book.get(appointment.id).removed_from_call == ()


def test_guests_survive_unseal_and_go_with_their_appointment(
    book: AppointmentBook, make_appointment: MakeAppointment, vault: Vault, audit: AuditLog,
    clock: ManualClock,
) -> None:
    """R8: guests live inside their appointment: the index is rebuilt, the purge takes them."""
    appointment = make_appointment()
    guest = book.invite_guest("mfa.klein", appointment.id, label="Tochter")
    book.rebuild_index()
    visitor = book.find_visitor(guest.link_token)
    assert visitor is not None and visitor.guest == guest
    policy = RetentionPolicy(vault, audit, clock, book=book)
    clock.set(appointment.end + timedelta(days=91))
    assert policy.purge().appointments == 1
    assert book.find_visitor(guest.link_token) is None
    assert "Tochter" not in repr(vault.db.table("appointments").all())
