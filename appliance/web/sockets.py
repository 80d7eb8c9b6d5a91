"""The WebSocket ↔ signaling hub adapter on both sites (docs/signaling.md).

The doctor's socket is ``GET /api/appointments/{appointment_id}/signal`` on the staff site (listed
in ``staff.ENDPOINTS`` through :func:`staff_endpoint`), the patient's is ``GET /v/{token}/signal``
on the public site, for the patient's link and each guest's (member ``guest:<id>``). Both
authenticate before the upgrade (an assistant gets 403, R2) and hand the hub a ``send`` that
queues frames for one writer task per socket, so the hub never waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
from collections import deque
from typing import Annotated, Final

import msgspec
from aiohttp import WSCloseCode, WSMsgType, web

from appliance.errors import (
    AppointmentClosed,
    Conflict,
    CsrfFailed,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from appliance.practice.appointments import STATE_WORDS, Visitor
from appliance.practice.models import Appointment, AppointmentState, StaffMember
from appliance.practice.services import PracticeServices
from appliance.rtc.messages import MAX_FRAME_BYTES
from appliance.rtc.signaling import Member, SignalingHub
from appliance.web.api import WEBSOCKET, Endpoint
from appliance.web.auth import current_staff
from appliance.web.auth import visitor as verified_visitor
from appliance.web.context import HUB, PUBLIC_LIMIT, SERVICES
from appliance.web.public import public_origins
from appliance.web.security import check_same_origin, client_address

_LOGGER = logging.getLogger(__name__)

STAFF_PATH: Final = "/api/appointments/{appointment_id}/signal"
PUBLIC_PATH: Final = "/v/{token}/signal"
#: how often the hub checks heartbeats, grace periods and due acks
TICK_S: Final = 0.25
#: frames waiting for one socket before it counts as stuck (the hub then drops it)
SEND_QUEUE_LIMIT: Final = 512
#: a socket that cannot even flush its close within this time is cut off
CLOSE_TIMEOUT_S: Final = 1.0
#: a patient signals while waiting and during the call, not before check-in or afterwards
PATIENT_STATES: Final = frozenset({AppointmentState.WAITING, AppointmentState.IN_CALL})
#: the subprotocol a page asks for; a patient's page offers its ticket as a second one
PROTOCOL: Final = "sz.v1"
TICKET_PROTOCOL: Final = "sz.ticket."
TICKET_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{43}")
CLOSED_FOR_DOCTOR: Final = frozenset({AppointmentState.CANCELLED, AppointmentState.NO_SHOW})
_OPEN: Final = web.AppKey("signaling_sockets", set)
#: Linux's option to send a batch of small writes in as few packets as possible
_TCP_CORK: Final[int | None] = getattr(socket, "TCP_CORK", None)


class _Connection:
    """One WebSocket's outgoing side: frames are queued and written in order by one task."""

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.BaseTransport | None) -> None:
        self._ws = ws
        self._transport = transport
        self._queue: deque[str] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._close_code = WSCloseCode.OK
        self._cork_socket = (transport.get_extra_info("socket")
                             if transport is not None and _TCP_CORK is not None else None)
        self._task = asyncio.get_running_loop().create_task(self._write_all())

    def send(self, frame: str) -> None:
        """Queue ``frame``; raises when the socket is stuck, so that the hub drops it."""
        if self._closing:
            return
        if len(self._queue) >= SEND_QUEUE_LIMIT:
            raise ConnectionError("signaling socket does not keep up")
        self._queue.append(frame)
        self._wake.set()

    def close(self, code: WSCloseCode = WSCloseCode.OK) -> None:
        """Close after the queued frames; cut the connection if that does not finish soon."""
        if self._closing:
            return
        self._closing = True
        self._close_code = code
        self._wake.set()
        asyncio.get_running_loop().call_later(CLOSE_TIMEOUT_S, self._cut)

    def _cut(self) -> None:
        if self._task.done():
            return
        self._task.cancel()
        if self._transport is not None:
            self._transport.abort()  # e.g. a dead path whose send buffer is full

    def _cork(self, on: bool) -> bool:
        """Hold back (or push out) partial TCP segments; whether that worked.

        Frames come in batches (the hub relays every frame of one read of the sender at once):
        corked, a batch leaves in one or few packets instead of one packet per frame, which on
        loopback or a LAN is most of a frame's cost. Only where the system has ``TCP_CORK``
        (Linux) and the socket is TCP; the first failure turns it off for this socket.
        """
        if self._cork_socket is None or _TCP_CORK is None:
            return False
        try:
            self._cork_socket.setsockopt(socket.IPPROTO_TCP, _TCP_CORK, int(on))
        except OSError:
            self._cork_socket = None
            return False
        return True

    async def _write_all(self) -> None:
        ws = self._ws
        queue = self._queue
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                # uncorked in any case before the next wait: nothing is held back for long
                corked = len(queue) > 1 and self._cork(True)
                try:
                    while queue:
                        await ws.send_str(queue.popleft())
                finally:
                    if corked:
                        self._cork(False)
                if self._closing:
                    break
        except (ConnectionError, RuntimeError):
            pass  # the peer went away; the reader side reports it to the hub
        finally:
            self._closing = True
            self._queue.clear()
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.close(code=self._close_code, drain=False)

    async def async_finish(self) -> None:
        """Close (if not yet) and wait for the writer to end."""
        self.close()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def serve_socket(request: web.Request, appointment: Appointment,
                       member: Member) -> web.WebSocketResponse:
    """Upgrade ``request`` and connect it to the hub as ``member`` of the call till it ends."""
    hub = request.app[HUB]
    room_id = appointment.id
    in_call = appointment.state is AppointmentState.IN_CALL
    hub.keep_places(room_id, _members_of_call(request.app[SERVICES], appointment),
                    removed=appointment.removed_from_call if in_call else ())
    # no permessage-deflate, though browsers offer it: its zlib state costs ~100 KiB per socket
    # (2,000 waiting patients: ~200 MiB) and CPU per frame, for small JSON frames
    ws = web.WebSocketResponse(heartbeat=None, max_msg_size=MAX_FRAME_BYTES,
                               protocols=(PROTOCOL,), compress=False)
    await ws.prepare(request)
    connection = _Connection(ws, request.transport)
    opened: set[_Connection] = request.app[_OPEN]
    opened.add(connection)
    sock = hub.open(room_id, member, connection.send, connection.close)
    try:
        async for message in ws:
            if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                hub.receive(sock, message.data)
            else:  # an error (e.g. a frame above the size limit): aiohttp has closed it
                break
    finally:
        hub.closed(sock)
        opened.discard(connection)
        await connection.async_finish()
    return ws


# --- the two routes -----------------------------------------------------------------------------


async def _appointment_signal(request: web.Request) -> web.StreamResponse:
    _, staff_member = current_staff(request)  # the table's access: doctors only (R2)
    appointment = request.app[SERVICES].appointments.get(request.match_info["appointment_id"])
    if appointment.doctor != staff_member.username:  # O3, R1: only this doctor
        raise PermissionDenied()
    if appointment.state in CLOSED_FOR_DOCTOR:
        raise AppointmentClosed()
    return await serve_socket(request, appointment, _doctor(staff_member))


#: the doctor's signaling socket (listed in ``staff.ENDPOINTS``)
STAFF_ENDPOINT: Final = Endpoint(
    method="GET", path=STAFF_PATH, handler=_appointment_signal, access="doctor", status=101,
    content_type=WEBSOCKET,
    response=Annotated[str, msgspec.Meta(
        description="JSON-Textframes, Protokoll v1 (docs/signaling.md)")],
    summary="Signalisierung des Gesprächs (WebSocket): nur die Ärztin oder der Arzt des Termins; "
            "Zulassen, Beenden, Neuaufbau, SDP/ICE-Relais")


async def _patient_signal(request: web.Request) -> web.StreamResponse:
    request.app[PUBLIC_LIMIT].hit(client_address(request))
    if not (check_same_origin(request)  # no cross-site WebSocket hijacking: the patient's
            or request.headers.get("Origin") in public_origins(request.app[SERVICES])):
        raise CsrfFailed()  # page may live on any of the practice's public hosts
    # the verified session of this very link (R1): by cookie, or by ticket on another host
    _, visitor = verified_visitor(request, ticket=_ticket(request))
    state = visitor.state  # a guest's: waiting once checked in, while the appointment is open
    if state not in PATIENT_STATES:
        if state is AppointmentState.SCHEDULED:
            raise Conflict(detail=f"der Termin ist {STATE_WORDS[state]}")
        raise AppointmentClosed()
    return await serve_socket(request, visitor.appointment, _visitor(visitor))


def _ticket(request: web.Request) -> str | None:
    """The session ticket a page offers as a WebSocket subprotocol (``sz.ticket.<ticket>``):
    in a header, so that it appears in no URL and no log (hence refused before the upgrade
    unless ``sz.v1`` is offered too: aiohttp would log protocols it cannot choose from)."""
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    tickets = [p.removeprefix(TICKET_PROTOCOL) for p in offered if p.startswith(TICKET_PROTOCOL)]
    if not tickets:
        return None
    if PROTOCOL not in offered or len(tickets) > 1 or not TICKET_PATTERN.fullmatch(tickets[0]):
        raise InvalidInput(field="Sec-WebSocket-Protocol", detail="kein gültiges Ticket")
    return tickets[0]


# --- who is who in the hub ----------------------------------------------------------------------


def _doctor(staff_member: StaffMember) -> Member:
    return Member(key=f"doctor:{staff_member.username}", role="doctor",
                  name=staff_member.display_name, username=staff_member.username, admitted=True)


def _visitor(visitor: Visitor) -> Member:
    """The patient or a guest; the name is shown to everyone in the call (O2). Someone the doctor
    let into the running call is in at once (a reload, a return after the grace period or a
    restart of the box)."""
    return Member(key=visitor.key, role="patient" if visitor.guest is None else "guest",
                  name=visitor.name or "", admitted=visitor.in_call)


def _members_of_call(services: PracticeServices, appointment: Appointment) -> list[Member]:
    """Everyone the doctor let into ``appointment``'s running call (none if it is not running)."""
    if appointment.state is not AppointmentState.IN_CALL:
        return []
    try:
        doctor = services.staff.get(appointment.doctor)
    except NotFound:
        return []
    visitors = [Visitor(appointment=appointment),
                *(Visitor(appointment=appointment, guest=g) for g in appointment.guests)]
    return [_doctor(doctor), *(_visitor(v) for v in visitors if v.in_call)]


# --- wiring -------------------------------------------------------------------------------------


def setup_staff_signaling(app: web.Application, hub: SignalingHub) -> None:
    """Give the staff site the hub; the doctor's route comes with ``staff.ENDPOINTS`` (see
    :func:`staff_endpoint`)."""
    app[HUB] = hub
    app[_OPEN] = set()
    app.on_shutdown.append(_close_sockets)


def setup_public_signaling(app: web.Application, hub: SignalingHub) -> None:
    """Give the public site the hub and the patient's route."""
    app[HUB] = hub
    app[_OPEN] = set()
    app.router.add_get(PUBLIC_PATH, _patient_signal, allow_head=False)
    app.on_shutdown.append(_close_sockets)


async def async_tick(hub: SignalingHub) -> None:
    """Run the hub's heartbeats, grace periods and due acks every ``TICK_S`` until cancelled."""
    while True:
        await asyncio.sleep(TICK_S)
        try:
            await hub.async_tick()
        except Exception:  # a failing tick must not stop heartbeats for good
            _LOGGER.exception("signaling tick failed")


async def _close_sockets(app: web.Application) -> None:
    """Close the site's sockets before the server waits for its handlers (shutdown)."""
    connections = list(app[_OPEN])
    for connection in connections:
        connection.close(WSCloseCode.GOING_AWAY)
    await asyncio.gather(*(c.async_finish() for c in connections), return_exceptions=True)
