"""Patients and their consent (O1)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Final

import msgspec
from aiohttp import web

from appliance.practice.models import ConsentMethod, Patient, StaffMember
from appliance.practice.patients import CONSENT_FORM_VERSION
from appliance.practice.services import PracticeServices
from appliance.web.api import Endpoint, read_body, reply
from appliance.web.auth import current_staff
from appliance.web.schema import NOT_BLANK, OK, TWO_CHARACTERS, Form, Ok
from appliance.web.staff.common import services_of

FullName = Annotated[str, msgspec.Meta(min_length=2, max_length=200, pattern=TWO_CHARACTERS)]
Email = Annotated[str, msgspec.Meta(max_length=254)]
Phone = Annotated[str, msgspec.Meta(max_length=40)]


class NewConsent(Form, frozen=True, kw_only=True):
    """A patient's consent as staff record it (O1)."""

    given_on: date
    form_version: Annotated[str, msgspec.Meta(min_length=1, max_length=40,
                                              pattern=NOT_BLANK)] = CONSENT_FORM_VERSION
    method: ConsentMethod


class NewPatient(Form, frozen=True, kw_only=True):
    """A patient: the name, how to reach them, and their consent if it is there already."""

    full_name: FullName
    email: Email | None = None
    phone: Phone | None = None
    consent: NewConsent | None = None


class PatientChange(Form, frozen=True, kw_only=True):
    """Another name, e-mail or phone (what is left out stays; empty or null removes)."""

    full_name: FullName | msgspec.UnsetType = msgspec.UNSET
    email: Email | None | msgspec.UnsetType = msgspec.UNSET
    phone: Phone | None | msgspec.UnsetType = msgspec.UNSET


def _text(value: str | None) -> str | None:
    """A typed text without its outer spaces; empty is none."""
    return (value or "").strip() or None


async def _list_patients(request: web.Request) -> web.Response:
    current_staff(request)
    text = request.query.get("q", "")[:200]
    return reply(services_of(request).patients.search(text))


async def _add_patient(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    data = await read_body(request, NewPatient)
    services = services_of(request)
    patient = services.patients.add(actor.username, full_name=data.full_name.strip(),
                                    email=_text(data.email), phone=_text(data.phone))
    if data.consent is not None:
        patient = _record_consent(services, actor, patient.id, data.consent)
    return reply(patient, status=201)


def _record_consent(services: PracticeServices, actor: StaffMember, patient_id: str,
                    consent: NewConsent) -> Patient:
    return services.patients.record_consent(
        actor.username, patient_id, given_on=consent.given_on,
        form_version=consent.form_version.strip(), method=consent.method)


async def _get_patient(request: web.Request) -> web.Response:
    current_staff(request)
    patient = services_of(request).patients.get(request.match_info["patient_id"])
    return reply(patient)


async def _update_patient(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    data = await read_body(request, PatientChange)
    changes = {name: _text(value) for name, value in msgspec.structs.asdict(data).items()
               if value is not msgspec.UNSET}
    patient = services_of(request).patients.update(
        actor.username, request.match_info["patient_id"], **changes
    )
    return reply(patient)


async def _remove_patient(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    services_of(request).patients.remove(actor.username, request.match_info["patient_id"])
    return reply(OK)


async def _add_consent(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    data = await read_body(request, NewConsent)
    patient = _record_consent(services_of(request), actor, request.match_info["patient_id"], data)
    return reply(patient)


ENDPOINTS: Final[tuple[Endpoint, ...]] = (
    Endpoint(method="GET", path="/api/patients", handler=_list_patients,
             summary="Patienten suchen (?q=Name)", response=list[Patient]),
    Endpoint(method="POST", path="/api/patients", handler=_add_patient, body=NewPatient,
             summary="Patient anlegen, optional mit Einwilligung", response=Patient, status=201),
    Endpoint(method="GET", path="/api/patients/{patient_id}", handler=_get_patient,
             summary="Ein Patient", response=Patient),
    Endpoint(method="PATCH", path="/api/patients/{patient_id}", handler=_update_patient,
             body=PatientChange, summary="Patient ändern", response=Patient),
    Endpoint(method="DELETE", path="/api/patients/{patient_id}", handler=_remove_patient,
             summary="Patient löschen", response=Ok),
    Endpoint(method="POST", path="/api/patients/{patient_id}/consent", handler=_add_consent,
             body=NewConsent, summary="Einwilligung erfassen (O1)", response=Patient),
)
