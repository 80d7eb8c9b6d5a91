"""The public (patient) site: only the patient link, its assets, terms and privacy (R11)."""

from __future__ import annotations

from typing import Any, Final
from zoneinfo import ZoneInfo

from aiohttp import web

from appliance.errors import (
    CsrfFailed,
    NotFound,
    NotLoggedIn,
    PracticeOffline,
    SprechzimmerError,
    VaultSealed,
)
from appliance.practice.models import Appointment
from appliance.practice.services import PracticeServices
from appliance.web.api import Endpoint, read_body
from appliance.web.context import CODE_LIMIT, EVENTS, PATIENT_SESSIONS, PUBLIC_LIMIT, SERVICES
from appliance.web.events import stream_events
from appliance.web.schema import boolean, obj, string
from appliance.web.security import check_same_origin, client_address
from appliance.web.sessions import PatientSession

TOKEN_PATTERN: Final = r"[A-Za-z0-9_-]{16,64}"
CODE = obj({"code": string(min_length=1, max_length=20)}, required=("code",))
CHECK_IN = obj({
    "full_name": string(min_length=2, max_length=200),
    "consent": boolean(),
    "rules": boolean(),
}, required=("full_name", "consent", "rules"))
INFO = obj({
    "online": boolean(), "practice_name": string(nullable=True),
    "start": string(nullable=True), "end": string(nullable=True),
    "state": string(nullable=True), "verified": boolean(),
}, required=("online", "verified"))
STATE = obj({"state": string(), "name": string(nullable=True)}, required=("state",))


def _services(request: web.Request) -> PracticeServices:
    return request.app[SERVICES]


def _limit(request: web.Request) -> None:
    request.app[PUBLIC_LIMIT].hit(client_address(request))


def _patient_state(appt: Appointment) -> dict[str, Any]:
    return {"state": appt.state.value, "name": appt.checked_in_name}


def _verified(request: web.Request) -> tuple[PatientSession, Appointment]:
    """The patient session for this very link, and its appointment (still the same link)."""
    token = request.match_info["token"]
    session = request.app[PATIENT_SESSIONS].get(request)
    services = _services(request)
    if services.vault.sealed:
        raise PracticeOffline()
    if session is None or session.token != token:
        raise NotLoggedIn()
    appt = services.appointments.find_by_token(token)
    if appt is None or appt.id != session.appointment_id:
        raise NotFound()
    return session, appt


async def _info(request: web.Request) -> web.Response:
    _limit(request)
    services = _services(request)
    if services.vault.sealed:
        return web.json_response({"online": False, "verified": False})
    appt = services.appointments.find_by_token(request.match_info["token"])
    if appt is None:
        raise NotFound()
    profile = services.office.profile()
    tz = ZoneInfo(profile.timezone) if profile else ZoneInfo("Europe/Berlin")
    session = request.app[PATIENT_SESSIONS].get(request)
    verified = bool(session and session.token == request.match_info["token"])
    return web.json_response({
        "online": True, "practice_name": profile.name if profile else None,
        "start": appt.start.astimezone(tz).isoformat(),
        "end": appt.end.astimezone(tz).isoformat(),
        "state": appt.state.value if verified else None,
        "verified": verified,
    })


async def _code(request: web.Request) -> web.Response:
    if not check_same_origin(request):
        raise CsrfFailed()
    _limit(request)
    request.app[CODE_LIMIT].hit(client_address(request))
    data = await read_body(request, CODE)
    services = _services(request)
    if services.vault.sealed:
        raise PracticeOffline()
    token = request.match_info["token"]
    appt = services.appointments.verify_code(token, data["code"])
    response = web.json_response({"ok": True})
    request.app[PATIENT_SESSIONS].create(
        response, request, PatientSession(appointment_id=appt.id, token=token, code=data["code"])
    )
    return response


async def _check_in(request: web.Request) -> web.Response:
    if not check_same_origin(request):
        raise CsrfFailed()
    _limit(request)
    session, _ = _verified(request)
    data = await read_body(request, CHECK_IN)
    appt = _services(request).appointments.check_in(
        session.token, session.code, full_name=data["full_name"].strip(),
        consent_confirmed=data["consent"], rules_confirmed=data["rules"],
    )
    request.app[EVENTS].publish({"type": "appointment", "id": appt.id})
    return web.json_response(_patient_state(appt))


async def _state(request: web.Request) -> web.Response:
    _limit(request)
    _, appt = _verified(request)
    return web.json_response(_patient_state(appt))


async def _leave(request: web.Request) -> web.Response:
    if not check_same_origin(request):
        raise CsrfFailed()
    _, appt = _verified(request)
    appt = _services(request).appointments.leave_waiting_room(appt.id)
    request.app[EVENTS].publish({"type": "appointment", "id": appt.id})
    return web.json_response(_patient_state(appt))


async def _events(request: web.Request) -> web.StreamResponse:
    _limit(request)
    _, appt = _verified(request)
    services = _services(request)
    appointment_id = appt.id

    def render(event: dict[str, Any]) -> dict[str, Any] | None:
        try:
            return _patient_state(services.appointments.get(appointment_id))
        except (NotFound, VaultSealed):
            return {"state": "closed", "name": None}

    def still_allowed() -> bool:
        try:
            _verified(request)
        except SprechzimmerError:  # session gone, link reissued, vault sealed
            return False
        return True

    return await stream_events(
        request, request.app[EVENTS], lambda e: e.get("id") == appointment_id, render,
        still_allowed,
    )


ENDPOINTS: Final[tuple[Endpoint, ...]] = (
    Endpoint(method="GET", path="/v/{token}/info", handler=_info, access="public",
             summary="Praxisname und Terminzeit zum Link (sonst nichts)", response=INFO),
    Endpoint(method="POST", path="/v/{token}/code", handler=_code, access="public", body=CODE,
             summary="Zugangscode prüfen (5 Fehlversuche sperren den Link)",
             response=obj({"ok": boolean()}, required=("ok",))),
    Endpoint(method="POST", path="/v/{token}/check-in", handler=_check_in, access="public",
             body=CHECK_IN, summary="Name, Einwilligung und Regeln bestätigen: ins Wartezimmer",
             response=STATE),
    Endpoint(method="GET", path="/v/{token}/state", handler=_state, access="public",
             summary="Eigener Stand im Wartezimmer", response=STATE),
    Endpoint(method="POST", path="/v/{token}/leave", handler=_leave, access="public",
             summary="Wartezimmer verlassen", response=STATE),
    Endpoint(method="GET", path="/v/{token}/events", handler=_events, access="public",
             summary="Live-Stand des eigenen Termins (Server-Sent Events)",
             content_type="text/event-stream", response={"type": "string"}),
)
