"""The public (patient) site: only the patient's and guests' links, assets, terms, privacy (R11)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final
from zoneinfo import ZoneInfo

import msgspec
from aiohttp import web
from yarl import URL

from appliance.errors import (
    NotFound,
    PracticeOffline,
    SprechzimmerError,
    VaultSealed,
)
from appliance.practice.appointments import Visitor
from appliance.practice.models import Appointment, Guest
from appliance.practice.services import PracticeServices
from appliance.web.api import Endpoint, read_body, reply
from appliance.web.auth import visitor as verified_visitor
from appliance.web.context import CODE_LIMIT, EVENTS, PATIENT_SESSIONS, PUBLIC_LIMIT, SERVICES
from appliance.web.events import stream_events
from appliance.web.schema import NOT_BLANK, OK, TWO_CHARACTERS, Form, Ok, View
from appliance.web.security import client_address
from appliance.web.sessions import PatientSession

TOKEN_PATTERN: Final = r"[A-Za-z0-9_-]{16,64}"
#: the page a patient's or guest's link opens
LINK_PATH: Final = "/v/{token}"


class CodeForm(Form, frozen=True, kw_only=True):
    """The access code as the patient typed it."""

    code: Annotated[str, msgspec.Meta(min_length=1, max_length=20, pattern=NOT_BLANK)]


class CheckIn(Form, frozen=True, kw_only=True):
    """The name the doctor will see, and the confirmations of consent and the rules."""

    full_name: Annotated[str, msgspec.Meta(min_length=2, max_length=200,
                                           pattern=TWO_CHARACTERS)]
    consent: bool
    rules: bool


class LinkInfo(View, frozen=True, kw_only=True):
    """What the link's page shows before the code: the practice and the time (nothing while
    the practice is offline); the state once the code was right."""

    online: bool
    verified: bool
    practice_name: str | None | msgspec.UnsetType = msgspec.UNSET
    start: datetime | msgspec.UnsetType = msgspec.UNSET
    end: datetime | msgspec.UnsetType = msgspec.UNSET
    state: str | None | msgspec.UnsetType = msgspec.UNSET
    guest: bool | msgspec.UnsetType = msgspec.UNSET


class VisitorState(View, frozen=True, kw_only=True):
    """Where the patient or guest stands (``closed``: the link no longer opens anything)."""

    state: str
    name: str | None


class SignalingPlaces(View, frozen=True, kw_only=True):
    """The practice's public hosts (one per uplink) and the ticket for the others."""

    origins: list[str]
    ticket: str


CLOSED: Final = VisitorState(state="closed", name=None)


def _services(request: web.Request) -> PracticeServices:
    return request.app[SERVICES]


def _limit(request: web.Request) -> None:
    request.app[PUBLIC_LIMIT].hit(client_address(request))


def _visitor_state(visitor: Visitor) -> VisitorState:
    return VisitorState(state=visitor.state.value, name=visitor.name)


def link_of(base_url: str, holder: Appointment | Guest) -> str:
    """A patient's or guest's link on the public site at ``base_url``."""
    return base_url.rstrip("/") + LINK_PATH.format(token=holder.link_token)


def public_origins(services: PracticeServices) -> tuple[str, ...]:
    """The practice's public sites (one per uplink) as origins, the patient links' first."""
    if services.vault.sealed:
        return ()
    profile = services.office.profile()
    origins: list[str] = []
    for url in profile.public_urls if profile else ():
        origin = str(URL(url).origin())
        if origin not in origins:
            origins.append(origin)
    return tuple(origins)


async def _info(request: web.Request) -> web.Response:
    _limit(request)
    services = _services(request)
    if services.vault.sealed:
        return reply(LinkInfo(online=False, verified=False))
    visitor = services.appointments.find_visitor(request.match_info["token"])
    if visitor is None:
        raise NotFound()
    appt = visitor.appointment
    profile = services.office.profile()
    tz = ZoneInfo(profile.timezone) if profile else ZoneInfo("Europe/Berlin")
    session = request.app[PATIENT_SESSIONS].get(request)
    verified = bool(session and session.token == request.match_info["token"])
    return reply(LinkInfo(
        online=True, practice_name=profile.name if profile else None,
        start=appt.start.astimezone(tz), end=appt.end.astimezone(tz),
        state=visitor.state.value if verified else None,
        verified=verified, guest=visitor.guest is not None,
    ))


async def _code(request: web.Request) -> web.Response:
    _limit(request)
    request.app[CODE_LIMIT].hit(client_address(request))
    data = await read_body(request, CodeForm)
    services = _services(request)
    if services.vault.sealed:
        raise PracticeOffline()
    token = request.match_info["token"]
    visitor = services.reception.verify_access(token, data.code)
    response = reply(OK)
    request.app[PATIENT_SESSIONS].create(response, request, PatientSession(
        appointment_id=visitor.appointment.id, token=token, code=data.code,
        guest_id=None if visitor.guest is None else visitor.guest.id))
    return response


async def _check_in(request: web.Request) -> web.Response:
    _limit(request)
    session, visitor = verified_visitor(request)
    data = await read_body(request, CheckIn)
    reception = _services(request).reception
    if visitor.guest is None:
        visitor = Visitor(appointment=reception.check_in(
            session.token, session.code, full_name=data.full_name.strip(),
            consent_confirmed=data.consent, rules_confirmed=data.rules))
    else:  # a guest confirms taking part; the patient's consent record is not theirs (O1)
        visitor = reception.guest_check_in(
            session.token, session.code, full_name=data.full_name.strip(),
            consent_confirmed=data.consent, rules_confirmed=data.rules)
    request.app[EVENTS].publish({"type": "appointment", "id": visitor.appointment.id})
    return reply(_visitor_state(visitor))


async def _signaling(request: web.Request) -> web.Response:
    """Where this page keeps its signaling sockets: every public host, and the ticket for the
    hosts that do not see this host's cookie."""
    _limit(request)
    session, _ = verified_visitor(request)
    return reply(SignalingPlaces(origins=list(public_origins(_services(request))),
                                 ticket=session.ticket))


async def _state(request: web.Request) -> web.Response:
    _limit(request)
    _, visitor = verified_visitor(request)
    return reply(_visitor_state(visitor))


async def _leave(request: web.Request) -> web.Response:
    _, visitor = verified_visitor(request)
    reception = _services(request).reception
    appointment_id = visitor.appointment.id
    if visitor.guest is None:
        visitor = Visitor(appointment=reception.leave_waiting_room(appointment_id))
    else:
        visitor = reception.guest_leave(appointment_id, visitor.guest.id)
    request.app[EVENTS].publish({"type": "appointment", "id": appointment_id})
    return reply(_visitor_state(visitor))


async def _events(request: web.Request) -> web.StreamResponse:
    _limit(request)
    _, visitor = verified_visitor(request)
    services = _services(request)
    appointment_id = visitor.appointment.id
    guest_id = None if visitor.guest is None else visitor.guest.id

    def render(event: dict[str, Any]) -> VisitorState:
        try:
            appointment = services.appointments.get(appointment_id)
        except (NotFound, VaultSealed):
            return CLOSED
        guest = None if guest_id is None else appointment.guest(guest_id)
        if guest_id is not None and guest is None:  # uninvited: the link is gone
            return CLOSED
        return _visitor_state(Visitor(appointment=appointment, guest=guest))

    def still_allowed() -> bool:
        try:
            verified_visitor(request)
        except SprechzimmerError:  # session gone, link reissued, vault sealed
            return False
        return True

    return await stream_events(
        request, request.app[EVENTS], lambda e: e.get("id") == appointment_id, render,
        still_allowed,
    )


ENDPOINTS: Final[tuple[Endpoint, ...]] = (
    Endpoint(method="GET", path="/v/{token}/info", handler=_info, access="public",
             summary="Praxisname und Terminzeit zum Link (Patient oder weitere Person)",
             response=LinkInfo),
    Endpoint(method="POST", path="/v/{token}/code", handler=_code, access="public", body=CodeForm,
             summary="Zugangscode prüfen (5 Fehlversuche sperren den Link)",
             response=Ok),
    Endpoint(method="POST", path="/v/{token}/check-in", handler=_check_in, access="public",
             body=CheckIn, summary="Name, Einwilligung und Regeln bestätigen: ins Wartezimmer",
             response=VisitorState),
    Endpoint(method="GET", path="/v/{token}/state", handler=_state, access="public",
             summary="Eigener Stand im Wartezimmer", response=VisitorState),
    Endpoint(method="GET", path="/v/{token}/signaling", handler=_signaling, access="public",
             summary="Öffentliche Adressen der Praxis (eine je Internetleitung) und das "
                     "Ticket für die Signalisierung über die anderen",
             response=SignalingPlaces),
    Endpoint(method="POST", path="/v/{token}/leave", handler=_leave, access="public",
             summary="Wartezimmer verlassen", response=VisitorState),
    Endpoint(method="GET", path="/v/{token}/events", handler=_events, access="public",
             summary="Live-Stand des eigenen Termins (Server-Sent Events)",
             content_type="text/event-stream", response=str),
)
