"""Patients and their consent (O1)."""

from __future__ import annotations

from datetime import date
from typing import Any, Final

from aiohttp import web

from appliance.practice.models import ConsentMethod, Patient, StaffMember
from appliance.practice.services import PracticeServices
from appliance.web.api import Endpoint, read_body
from appliance.web.auth import current_staff
from appliance.web.schema import array, obj, string
from appliance.web.staff.common import OK, PATIENT, patient_json, services_of

NEW_PATIENT = obj({
    "full_name": string(min_length=2, max_length=200),
    "email": string(max_length=254, nullable=True),
    "phone": string(max_length=40, nullable=True),
    "consent": obj({
        "given_on": string(fmt="date"),
        "form_version": string(min_length=1, max_length=40),
        "method": string(enum=[m.value for m in ConsentMethod]),
    }, required=("given_on", "method"), nullable=True),
}, required=("full_name",))


PATIENT_CHANGE = obj({
    "full_name": string(min_length=2, max_length=200),
    "email": string(max_length=254, nullable=True),
    "phone": string(max_length=40, nullable=True),
})


NEW_CONSENT = obj({
    "given_on": string(fmt="date"),
    "form_version": string(min_length=1, max_length=40),
    "method": string(enum=[m.value for m in ConsentMethod]),
}, required=("given_on", "method"))


async def _list_patients(request: web.Request) -> web.Response:
    current_staff(request)
    text = request.query.get("q", "")[:200]
    return web.json_response([patient_json(p) for p in services_of(request).patients.search(text)])


async def _add_patient(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    data = await read_body(request, NEW_PATIENT)
    services = services_of(request)
    patient = services.patients.add(
        actor.username, full_name=data["full_name"].strip(),
        email=(data.get("email") or "").strip() or None,
        phone=(data.get("phone") or "").strip() or None,
    )
    if consent := data.get("consent"):
        patient = _record_consent(services, actor, patient.id, consent)
    return web.json_response(patient_json(patient), status=201)


def _record_consent(services: PracticeServices, actor: StaffMember, patient_id: str,
                    consent: dict[str, Any]) -> Patient:
    from appliance.practice.patients import CONSENT_FORM_VERSION

    return services.patients.record_consent(
        actor.username, patient_id, given_on=date.fromisoformat(consent["given_on"]),
        form_version=consent.get("form_version") or CONSENT_FORM_VERSION,
        method=ConsentMethod(consent["method"]),
    )


async def _get_patient(request: web.Request) -> web.Response:
    current_staff(request)
    patient = services_of(request).patients.get(request.match_info["patient_id"])
    return web.json_response(patient_json(patient))


async def _update_patient(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    data = await read_body(request, PATIENT_CHANGE)
    changes = {k: (v.strip() or None) if isinstance(v, str) else v for k, v in data.items()}
    patient = services_of(request).patients.update(
        actor.username, request.match_info["patient_id"], **changes
    )
    return web.json_response(patient_json(patient))


async def _remove_patient(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    services_of(request).patients.remove(actor.username, request.match_info["patient_id"])
    return web.json_response({"ok": True})


async def _add_consent(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    data = await read_body(request, NEW_CONSENT)
    patient = _record_consent(services_of(request), actor, request.match_info["patient_id"], data)
    return web.json_response(patient_json(patient))


ENDPOINTS: Final[tuple[Endpoint, ...]] = (
    Endpoint(method="GET", path="/api/patients", handler=_list_patients,
             summary="Patienten suchen (?q=Name)", response=array(PATIENT)),
    Endpoint(method="POST", path="/api/patients", handler=_add_patient, body=NEW_PATIENT,
             summary="Patient anlegen, optional mit Einwilligung", response=PATIENT, status=201),
    Endpoint(method="GET", path="/api/patients/{patient_id}", handler=_get_patient,
             summary="Ein Patient", response=PATIENT),
    Endpoint(method="PATCH", path="/api/patients/{patient_id}", handler=_update_patient,
             body=PATIENT_CHANGE, summary="Patient ändern", response=PATIENT),
    Endpoint(method="DELETE", path="/api/patients/{patient_id}", handler=_remove_patient,
             summary="Patient löschen", response=OK),
    Endpoint(method="POST", path="/api/patients/{patient_id}/consent", handler=_add_consent,
             body=NEW_CONSENT, summary="Einwilligung erfassen (O1)", response=PATIENT),
)
