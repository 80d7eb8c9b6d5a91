"""The call's membership: whom the doctor lets in, sends out, and when the call ends (O3, R2,
R3); the appointments themselves are in the book (``appointments.py``)."""

from __future__ import annotations

from msgspec.structs import replace

from appliance.clock import Clock
from appliance.errors import Conflict, NotFound, PermissionDenied
from appliance.practice.appointments import (
    GUEST_KEY_PREFIX,
    PATIENT_KEY,
    STATE_WORDS,
    AppointmentBook,
    Visitor,
    guest_key,
)
from appliance.practice.audit import AuditLog
from appliance.practice.models import OPEN_STATES, Appointment, AppointmentState, Guest, Role

_S = AppointmentState


class Calls:
    """Admitting, removing and ending: only the appointment's doctor, one call at a time."""

    def __init__(self, book: AppointmentBook, audit: AuditLog, clock: Clock) -> None:
        self._book = book
        self._audit = audit
        self._clock = clock

    def admit(self, actor: str, appointment_id: str) -> Appointment:
        """Let the waiting patient in: only their own doctor, and only when not in another call."""
        member = self._book.require_staff(actor)
        if Role.DOCTOR not in member.roles:  # R2: organisational logins never take a call
            raise PermissionDenied()
        appointment = self._book.get(appointment_id)
        if appointment.doctor != actor:  # O3 and R1: the patient reaches only this doctor
            raise PermissionDenied()
        running = self._book.current_call(actor)
        if running is not None and running.id != appointment.id:  # R3
            raise Conflict(detail="Sie sind bereits in einer Videosprechstunde")
        return self._book.move("admit", actor, appointment, admitted_at=self._clock.now())

    def admit_member(self, actor: str, appointment_id: str, key: str) -> None:
        """Let ``key`` (``patient``, ``guest:<id>``) into the call: the patient starts it (unless
        it runs: a return after a drop), a guest joins the running call (O3, R3: the doctor's)."""
        if key == PATIENT_KEY:
            if self._book.get(appointment_id).state is not _S.IN_CALL:
                self.admit(actor, appointment_id)
        elif key.startswith(GUEST_KEY_PREFIX):
            self.admit_guest(actor, appointment_id, key.removeprefix(GUEST_KEY_PREFIX))

    def admit_guest(self, actor: str, appointment_id: str, guest_id: str) -> Guest:
        """Let a checked-in guest into the call: only the appointment's doctor (O3, R2, R3)."""
        appointment = self._book.own_appointment(actor, appointment_id)
        running = self._book.current_call(actor)
        if running is not None and running.id != appointment.id:  # R3
            raise Conflict(detail="Sie sind bereits in einer Videosprechstunde")
        if appointment.state not in OPEN_STATES:
            raise Conflict(detail=f"der Termin ist {STATE_WORDS[appointment.state]}")
        guest = appointment.guest(guest_id)
        if guest is None:
            raise NotFound()
        if guest.checked_in_at is None:
            raise Conflict(detail="die Person hat sich nicht angemeldet")
        admitted = replace(guest, admitted_at=self._clock.now())
        self._book.save_holder(Visitor(appointment=appointment, guest=guest), admitted)
        self._audit.record(actor, "guest.admit", f"{appointment.id}:{guest.id}")
        return admitted

    def end(self, actor: str, appointment_id: str) -> Appointment:
        """End the call: only the appointment's doctor (O3)."""
        appointment = self._book.own_appointment(actor, appointment_id)
        return self._book.move("end", actor, appointment, ended_at=self._clock.now(),
                          guests=_out_of_call(appointment.guests))

    def reopen(self, actor: str, appointment_id: str) -> Appointment:
        """Put an ended appointment back into the waiting room: only its doctor."""
        appointment = self._book.own_appointment(actor, appointment_id)
        return self._book.move("reopen", actor, appointment, ended_at=None,
                          guests=_out_of_call(appointment.guests), removed_from_call=())

    def remove_from_call(self, actor: str, appointment_id: str, key: str) -> Appointment:
        """The doctor sends ``key`` (``patient``, ``guest:<id>``) out of the call (O3); they stay
        out, also after a restart of the box, until reopened or given a new link."""
        appointment = self._book.own_appointment(actor, appointment_id)
        if appointment.state is not _S.IN_CALL:  # nobody is kept out of a waiting room
            raise Conflict(detail=f"der Termin ist {STATE_WORDS[appointment.state]}")
        if key in appointment.removed_from_call:
            return appointment
        guests = tuple(replace(g, admitted_at=None) if guest_key(g.id) == key else g
                       for g in appointment.guests)
        changed = replace(appointment, removed_from_call=(*appointment.removed_from_call, key),
                          guests=guests, updated_at=self._clock.now())
        self._book.save(changed)
        guest = changed.guest(key.removeprefix(GUEST_KEY_PREFIX))
        self._audit.record(actor, "appointment.remove_from_call",
                           Visitor(appointment=changed, guest=guest).audit_target)
        self._book.notify(changed)
        return changed


def _out_of_call(guests: tuple[Guest, ...]) -> tuple[Guest, ...]:
    """The guests with their admission to a call that is over."""
    return tuple(replace(g, admitted_at=None) for g in guests)
