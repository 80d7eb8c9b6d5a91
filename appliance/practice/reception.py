"""The reception: patients and guests come in by link and access code, give their full name and
consent, and wait in the waiting room (R1, O1, O2, R9); the appointments themselves are in the
book (``appointments.py``)."""

from __future__ import annotations

import logging

from msgspec.structs import replace

from appliance.clock import Clock
from appliance.errors import (
    AppointmentClosed,
    InvalidInput,
    LinkLocked,
    NotFound,
    WrongAccessCode,
)
from appliance.practice.access_codes import codes_match
from appliance.practice.appointments import (
    GUEST_ACTOR,
    MAX_CODE_FAILURES,
    AppointmentBook,
    Visitor,
)
from appliance.practice.audit import AuditLog
from appliance.practice.models import CLOSED_STATES, Appointment, AppointmentState, ConsentMethod
from appliance.practice.patients import (
    CONSENT_FORM_VERSION,
    PATIENT_ACTOR,
    PatientRegistry,
    clean_full_name,
)
from appliance.practice.profile import PracticeOffice

_LOGGER = logging.getLogger(__name__)
_S = AppointmentState


class Reception:
    """The way in by link and code, for the patient and each guest; every link counts its own
    wrong codes."""

    def __init__(self, book: AppointmentBook, audit: AuditLog, clock: Clock,
                 patients: PatientRegistry, office: PracticeOffice) -> None:
        self._book = book
        self._audit = audit
        self._clock = clock
        self._patients = patients
        self._office = office

    def verify_access(self, token: str, code: str) -> Visitor:
        """Check the access code of any link (patient or guest): expiry, closed states, lockout.

        Every link counts its own wrong codes; the fifth locks that link only (R9).
        """
        visitor = self._book.find_visitor(token)
        if visitor is None:
            raise NotFound()
        holder = visitor.holder
        if holder.link_locked:
            raise LinkLocked()
        now = self._clock.now()
        appointment = visitor.appointment
        if appointment.state in CLOSED_STATES or now > appointment.code_expires_at:
            raise AppointmentClosed()
        actor, prefix = (PATIENT_ACTOR, "appointment") if visitor.guest is None else (
            GUEST_ACTOR, "guest")
        if not codes_match(holder.access_code, code):
            failures = holder.code_failures + 1
            locked = failures >= MAX_CODE_FAILURES
            self._book.save_holder(visitor, replace(holder, code_failures=failures,
                                               link_locked=locked))
            action = f"{prefix}.link_locked" if locked else f"{prefix}.code_failed"
            self._audit.record(actor, action, visitor.audit_target)
            _LOGGER.info("wrong access code%s", "; link locked" if locked else "")
            if locked:
                raise LinkLocked()
            raise WrongAccessCode(remaining=MAX_CODE_FAILURES - failures)
        if holder.code_failures:
            visitor = self._book.save_holder(visitor, replace(holder, code_failures=0))
        return visitor

    def check_in(
        self,
        token: str,
        code: str,
        *,
        full_name: str,
        consent_confirmed: bool,
        rules_confirmed: bool,
    ) -> Appointment:
        """The patient enters the waiting room with their full name (R1) and consent (O1)."""
        visitor = self.verify_access(token, code)
        if visitor.guest is not None:  # a guest's link: ``guest_check_in``
            raise NotFound()
        appointment = visitor.appointment
        name = _confirmed_name(full_name, consent_confirmed, rules_confirmed)
        patient = self._patients.get(appointment.patient_id)
        now = self._clock.now()
        if patient.consent is None:
            self._patients.record_consent(
                PATIENT_ACTOR,
                patient.id,
                given_on=now.astimezone(self._office.timezone()).date(),
                form_version=CONSENT_FORM_VERSION,
                method=ConsentMethod.ONLINE,
            )
        return self._book.move(
            "check_in",
            PATIENT_ACTOR,
            appointment,
            checked_in_name=name,
            checked_in_at=appointment.checked_in_at
            if appointment.state is _S.WAITING else now,
        )

    def guest_check_in(
        self,
        token: str,
        code: str,
        *,
        full_name: str,
        consent_confirmed: bool,
        rules_confirmed: bool,
    ) -> Visitor:
        """A guest enters the waiting room: full name (O2), consent to take part and the rules.

        Their confirmation is kept as the check-in time only; the patient's consent record
        (O1) is not touched.
        """
        visitor = self.verify_access(token, code)
        if visitor.guest is None:
            raise NotFound()
        name = _confirmed_name(full_name, consent_confirmed, rules_confirmed)
        guest = visitor.guest
        visitor = self._book.save_holder(visitor, replace(
            guest, checked_in_name=name,
            checked_in_at=guest.checked_in_at or self._clock.now()))
        self._audit.record(GUEST_ACTOR, "guest.check_in", visitor.audit_target)
        self._book.notify(visitor.appointment)
        return visitor

    def guest_leave(self, appointment_id: str, guest_id: str) -> Visitor:
        """The guest left the waiting room: they check in again to come back."""
        visitor = self._book.guest_visitor(appointment_id, guest_id)
        assert visitor.guest is not None
        visitor = self._book.save_holder(visitor, replace(
            visitor.guest, checked_in_name=None, checked_in_at=None))
        self._audit.record(GUEST_ACTOR, "guest.leave", visitor.audit_target)
        self._book.notify(visitor.appointment)
        return visitor

    def leave_waiting_room(self, appointment_id: str) -> Appointment:
        """The patient left the waiting room (closed the page): back to scheduled."""
        return self._book.move("leave_waiting_room", PATIENT_ACTOR, self._book.get(appointment_id))


def _confirmed_name(full_name: str, consent_confirmed: bool, rules_confirmed: bool) -> str:
    """The cleaned full name, once consent and rules are confirmed (patient and guests alike)."""
    name = clean_full_name(full_name)
    if consent_confirmed is not True:
        raise InvalidInput(field="consent_confirmed", detail="bitte bestätigen")
    if rules_confirmed is not True:
        raise InvalidInput(field="rules_confirmed", detail="bitte bestätigen")
    return name
