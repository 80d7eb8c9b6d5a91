"""Appointments, their links and codes, guests, and the dashboard's live events."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Final

import msgspec
from aiohttp import web

from appliance.errors import InvalidInput, SprechzimmerError
from appliance.practice.appointments import guest_key
from appliance.web.api import Endpoint, read_body, reply
from appliance.web.auth import current_staff, staff_member
from appliance.web.context import EVENTS, HUB
from appliance.web.events import stream_events
from appliance.web.schema import NOT_BLANK, OK, Form, LocalTime, Ok
from appliance.web.staff.backup import backup_warnings
from appliance.web.staff.common import (
    AppointmentView,
    GuestView,
    appointment_view,
    box_lock_state,
    guest_view,
    maybe,
    parse_start,
    practice_timezone,
    publish,
    services_of,
)
from appliance.web.staff.uplinks import uplinks_view

Doctor = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=NOT_BLANK)]
Minutes = Annotated[int, msgspec.Meta(ge=5, le=180)]


class NewGuest(Form, frozen=True, kw_only=True):
    """Whom staff invite, in their words ("Tochter", "Dolmetscher")."""

    label: Annotated[str, msgspec.Meta(min_length=1, max_length=60, pattern=NOT_BLANK)]


class NewAppointment(Form, frozen=True, kw_only=True):
    """A video consultation to plan."""

    doctor: Doctor
    patient_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=NOT_BLANK)]
    start: LocalTime
    duration_minutes: Minutes = 15


class AppointmentChange(Form, frozen=True, kw_only=True):
    """Another doctor, time or length for an appointment (what is left out stays)."""

    doctor: Doctor | msgspec.UnsetType = msgspec.UNSET
    start: LocalTime | msgspec.UnsetType = msgspec.UNSET
    duration_minutes: Minutes | msgspec.UnsetType = msgspec.UNSET


async def _list_appointments(request: web.Request) -> web.Response:
    current_staff(request)
    services = services_of(request)
    tz = practice_timezone(services)
    try:
        day = date.fromisoformat(request.query["date"]) if "date" in request.query else (
            services.clock.now().astimezone(tz).date()
        )
    except ValueError:
        raise InvalidInput(field="date", detail="JJJJ-MM-TT") from None
    appts = services.appointments.day(day, tz)
    return reply([appointment_view(request, a) for a in appts])


async def _add_appointment(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    data = await read_body(request, NewAppointment)
    services = services_of(request)
    appt = services.appointments.create(
        actor.username, doctor=data.doctor, patient_id=data.patient_id,
        start=parse_start(data.start, practice_timezone(services)),
        duration_minutes=data.duration_minutes,
    )
    publish(request, appt)
    return reply(appointment_view(request, appt), status=201)


async def _get_appointment(request: web.Request) -> web.Response:
    current_staff(request)
    services = services_of(request)
    appt = services.appointments.get(request.match_info["appointment_id"])
    return reply(appointment_view(request, appt))


async def _update_appointment(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    data = await read_body(request, AppointmentChange)
    services = services_of(request)
    changes: dict[str, Any] = {}
    if data.doctor is not msgspec.UNSET:
        changes["doctor"] = data.doctor
    if data.start is not msgspec.UNSET:
        changes["start"] = parse_start(data.start, practice_timezone(services))
    if data.duration_minutes is not msgspec.UNSET:
        changes["duration_minutes"] = data.duration_minutes
    appt = services.appointments.edit(actor.username, request.match_info["appointment_id"],
                                      **changes)
    return reply(appointment_view(request, appt))


def _appointment_action(action: str, part: str = "appointments"):  # noqa: ANN202 - a handler
    """A handler running ``action`` of the practice service ``part`` (the book, or the calls)."""
    async def handler(request: web.Request) -> web.Response:
        _, actor = current_staff(request)
        services = services_of(request)
        appt = getattr(getattr(services, part), action)(
            actor.username, request.match_info["appointment_id"]
        )  # the book's state listener tells the dashboards
        if action in _WITHDRAWS_LINKS:
            # a withdrawn link leaves the room at once; after a reissue the same patient may
            # come back with the new link, after a cancellation nobody may
            ban = _WITHDRAWS_LINKS[action]
            _let_go_patient(request, appt.id, ban=ban)
            if ban:
                for guest in services.appointments.guests(appt.id):
                    _let_go(request, appt.id, guest.id, ban=True)
        return reply(appointment_view(request, appt))

    handler.__name__ = f"{action}_appointment"
    return handler


async def _invite_guest(request: web.Request) -> web.Response:
    _, actor = current_staff(request)  # organisational work: any staff member (R2)
    data = await read_body(request, NewGuest)
    services = services_of(request)
    appointment_id = request.match_info["appointment_id"]
    guest = services.appointments.invite_guest(actor.username, appointment_id,
                                               label=data.label)
    request.app[EVENTS].publish({"type": "appointment", "id": appointment_id})
    return reply(guest_view(request, guest), status=201)


async def _list_guests(request: web.Request) -> web.Response:
    current_staff(request)
    services = services_of(request)
    guests = services.appointments.guests(request.match_info["appointment_id"])
    return reply([guest_view(request, guest) for guest in guests])


#: actions that withdraw the patient's link: action → whether the patient stays out of the room
_WITHDRAWS_LINKS: Final = {"reissue": False, "cancel": True, "mark_no_show": True}


def _let_go_patient(request: web.Request, appointment_id: str, *, ban: bool) -> None:
    """End the patient's sockets in the room: their link was withdrawn."""
    if HUB in request.app:
        request.app[HUB].remove_member(appointment_id, "patient", ban=ban)


def _let_go(request: web.Request, appointment_id: str, guest_id: str, *, ban: bool) -> None:
    """End the guest's place in a running call: a withdrawn link stops at once."""
    if HUB in request.app:
        request.app[HUB].remove_member(appointment_id, guest_key(guest_id), ban=ban)


async def _reissue_guest(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    services = services_of(request)
    appointment_id, guest_id = request.match_info["appointment_id"], request.match_info["guest_id"]
    guest = services.appointments.reissue_guest(actor.username, appointment_id, guest_id)
    _let_go(request, appointment_id, guest_id, ban=False)
    request.app[EVENTS].publish({"type": "appointment", "id": appointment_id})
    return reply(guest_view(request, guest))


async def _remove_guest(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    appointment_id, guest_id = request.match_info["appointment_id"], request.match_info["guest_id"]
    services_of(request).appointments.remove_guest(actor.username, appointment_id, guest_id)
    _let_go(request, appointment_id, guest_id, ban=True)
    request.app[EVENTS].publish({"type": "appointment", "id": appointment_id})
    return reply(OK)


async def _events(request: web.Request) -> web.StreamResponse:
    current_staff(request)
    services = services_of(request)

    def render(event: dict[str, Any]) -> Any:
        if event["type"] == "box-lock":
            return box_lock_state(request)
        if event["type"] == "uplinks":
            return uplinks_view(request)
        if event["type"] == "backup":
            return backup_warnings(request)
        appt = None if services.vault.sealed else maybe(services.appointments.get, event["id"])
        if appt is None:
            return {"id": event["id"], "removed": True}
        return appointment_view(request, appt)

    def still_allowed() -> bool:
        try:
            staff_member(request)
        except SprechzimmerError:  # logged out, removed, session expired
            return False
        return True

    return await stream_events(request, request.app[EVENTS], lambda e: True, render,
                               still_allowed)


ENDPOINTS: Final[tuple[Endpoint, ...]] = (
    Endpoint(method="GET", path="/api/appointments", handler=_list_appointments,
             summary="Termine eines Tages (?date=JJJJ-MM-TT, Standard: heute)",
             response=list[AppointmentView]),
    Endpoint(method="POST", path="/api/appointments", handler=_add_appointment,
             body=NewAppointment, summary="Videotermin anlegen: liefert Link und Zugangscode",
             response=AppointmentView, status=201),
    Endpoint(method="GET", path="/api/appointments/{appointment_id}", handler=_get_appointment,
             summary="Ein Termin mit Link und Zugangscode", response=AppointmentView),
    Endpoint(method="PATCH", path="/api/appointments/{appointment_id}",
             handler=_update_appointment, body=AppointmentChange,
             summary="Termin verschieben oder Arzt ändern", response=AppointmentView),
    Endpoint(method="POST", path="/api/appointments/{appointment_id}/cancel",
             handler=_appointment_action("cancel"), summary="Termin absagen",
             response=AppointmentView),
    Endpoint(method="POST", path="/api/appointments/{appointment_id}/reissue",
             handler=_appointment_action("reissue"),
             summary="Neuer Link und Code (der alte gilt sofort nicht mehr)",
             response=AppointmentView),
    Endpoint(method="POST", path="/api/appointments/{appointment_id}/reopen",
             handler=_appointment_action("reopen", part="calls"),
             summary="Beendeten Termin wieder öffnen: zurück ins Wartezimmer (nur die Ärztin "
                     "oder der Arzt des Termins)", response=AppointmentView),
    Endpoint(method="POST", path="/api/appointments/{appointment_id}/no-show",
             handler=_appointment_action("mark_no_show"),
             summary="Patient nicht erschienen", response=AppointmentView),
    Endpoint(method="POST", path="/api/appointments/{appointment_id}/guests",
             handler=_invite_guest, body=NewGuest, status=201, response=GuestView,
             summary="Weitere Person einladen (Angehörige, Dolmetscher, Kollege; höchstens 2): "
                     "eigener Link und Zugangscode"),
    Endpoint(method="GET", path="/api/appointments/{appointment_id}/guests",
             handler=_list_guests, response=list[GuestView],
             summary="Eingeladene weitere Personen mit Link und Zugangscode"),
    Endpoint(method="POST", path="/api/appointments/{appointment_id}/guests/{guest_id}/reissue",
             handler=_reissue_guest, response=GuestView,
             summary="Neuer Link und Code für eine weitere Person (der alte gilt sofort nicht "
                     "mehr)"),
    Endpoint(method="DELETE", path="/api/appointments/{appointment_id}/guests/{guest_id}",
             handler=_remove_guest, response=Ok,
             summary="Weitere Person ausladen: ihr Link gilt sofort nicht mehr, auch im Gespräch"),
    Endpoint(method="GET", path="/api/events", handler=_events,
             summary="Live-Änderungen der Termine, der Sperre der Box und der Internetleitungen "
                     "(Server-Sent Events)",
             content_type="text/event-stream", response=str),
)
