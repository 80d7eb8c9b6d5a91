"""The practice's patients: contact data and consent to video consultations, nothing medical."""

from __future__ import annotations

import re
from datetime import UTC, date, timedelta
from typing import TYPE_CHECKING, Any, Final

from msgspec.structs import replace
from tinydb import Query
from tinydb.table import Table

from appliance.clock import Clock
from appliance.errors import Conflict, InvalidInput, NotFound
from appliance.practice import store
from appliance.practice.audit import AuditLog
from appliance.practice.models import (
    OPEN_STATES,
    Consent,
    ConsentMethod,
    Patient,
    new_id,
)

if TYPE_CHECKING:
    from appliance.vault import Vault

#: the version of the consent form the box prints and the patient page shows (O1)
CONSENT_FORM_VERSION: Final = "2026-01"
#: the actor recorded when the patient themself confirms on the patient page
PATIENT_ACTOR: Final = "patient"
MIN_NAME: Final = 2
MAX_NAME: Final = 200
_EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_PHONE: Final = re.compile(r"\+?[0-9][0-9 ()/-]{2,30}")
_EDITABLE: Final = frozenset({"full_name", "email", "phone"})
#: consent dates are the practice's calendar days; every practice is in Germany
_LATEST_OFFSET: Final = timedelta(hours=14)


def clean_full_name(value: str, field: str = "full_name") -> str:
    """A person's full name, trimmed and with inner runs of whitespace collapsed."""
    value = " ".join(value.split())
    if not MIN_NAME <= len(value) <= MAX_NAME:
        raise InvalidInput(field=field, detail=f"{MIN_NAME}–{MAX_NAME} Zeichen")
    return value


def _email(value: str | None) -> str | None:
    value = (value or "").strip()
    if not value:
        return None
    if len(value) > 254 or not _EMAIL.fullmatch(value):
        raise InvalidInput(field="email", detail="keine gültige E-Mail-Adresse")
    return value


def _phone(value: str | None) -> str | None:
    value = " ".join((value or "").split())
    if not value:
        return None
    if not _PHONE.fullmatch(value):
        raise InvalidInput(field="phone", detail="nur Ziffern, +, Leerzeichen, / und -")
    return value


class PatientRegistry:
    """Patients in the vault, with the consent each gave (O1)."""

    def __init__(self, vault: Vault, audit: AuditLog, clock: Clock) -> None:
        self._vault = vault
        self._audit = audit
        self._clock = clock

    def add(
        self, actor: str, *, full_name: str, email: str | None = None, phone: str | None = None
    ) -> Patient:
        """Register a patient."""
        patient = Patient(
            id=new_id(),
            full_name=clean_full_name(full_name),
            email=_email(email),
            phone=_phone(phone),
            created_at=self._clock.now(),
        )
        self._table().insert(patient.to_dict())
        self._audit.record(actor, "patient.add", patient.id)
        return patient

    def get(self, patient_id: str) -> Patient:
        """The patient with ``patient_id``; ``NotFound`` if there is none."""
        doc = self._table().get(Query().id == patient_id)
        if doc is None:
            raise NotFound()
        return Patient.from_dict(doc)

    def update(self, actor: str, patient_id: str, **fields: str | None) -> Patient:
        """Change ``full_name``, ``email`` or ``phone``."""
        patient = self.get(patient_id)
        for name in fields:
            if name not in _EDITABLE:
                raise InvalidInput(field=name, detail="dieses Feld gibt es nicht")
        changed = replace(
            patient,
            full_name=clean_full_name(fields["full_name"] or "")
            if "full_name" in fields else patient.full_name,
            email=_email(fields["email"]) if "email" in fields else patient.email,
            phone=_phone(fields["phone"]) if "phone" in fields else patient.phone,
        )
        self._save(changed)
        self._audit.record(actor, "patient.update", patient_id)
        return changed

    def search(self, text: str = "") -> list[Patient]:
        """Patients whose name contains ``text`` (any case), sorted by name."""
        needle = " ".join(text.split()).casefold()
        patients = [
            Patient.from_dict(doc)
            for doc in self._table().all()
            if needle in doc["full_name"].casefold()
        ]
        return sorted(patients, key=lambda patient: (patient.full_name.casefold(), patient.id))

    def record_consent(
        self,
        actor: str,
        patient_id: str,
        *,
        given_on: date,
        form_version: str,
        method: ConsentMethod | str,
    ) -> Patient:
        """Record that the patient consented to video consultations (O1)."""
        patient = self.get(patient_id)
        now = self._clock.now()
        # "today" somewhere on earth (UTC+14 at most): whatever zone the practice is set to,
        # a consent given today is never refused as lying in the future
        if given_on > (now.astimezone(UTC) + _LATEST_OFFSET).date():
            raise InvalidInput(field="given_on", detail="liegt in der Zukunft")
        form_version = form_version.strip()
        if not form_version or len(form_version) > 40:
            raise InvalidInput(field="form_version", detail="1–40 Zeichen")
        try:
            method = ConsentMethod(method)
        except ValueError:
            raise InvalidInput(field="method", detail="unbekannte Art der Einwilligung") from None
        consent = Consent(given_on=given_on, form_version=form_version, method=method,
                          recorded_by=actor, recorded_at=now)
        changed = replace(patient, consent=consent)
        self._save(changed)
        self._audit.record(actor, "patient.consent", patient_id)
        return changed

    def remove(self, actor: str, patient_id: str) -> None:
        """Delete a patient and every name they typed; refused while an appointment is open."""
        self.get(patient_id)
        open_states = [str(state) for state in OPEN_STATES]
        appointments = self._vault.db.table(store.APPOINTMENTS)
        query = (Query().patient_id == patient_id) & Query().state.one_of(open_states)
        if appointments.contains(query):
            raise Conflict(detail="der Patient hat noch offene Termine")
        self._table().remove(Query().id == patient_id)
        # the name the patient typed at check-in goes too (a deletion request means all of it)
        appointments.update({"checked_in_name": None}, Query().patient_id == patient_id)
        self._vault.compact()  # and out of the files, not only out of the live data
        self._audit.record(actor, "patient.remove", patient_id)

    def _table(self) -> Table:
        return self._vault.db.table(store.PATIENTS)

    def _save(self, patient: Patient) -> None:
        data: dict[str, Any] = patient.to_dict()
        self._table().update(data, Query().id == patient.id)
