"""Who is asking, and whether they may: the staff member behind a session, the patient or guest
behind a link, and the one check of every endpoint's declared access.

Each endpoint declares its access in its table (``Endpoint.access``): ``public``, ``staff`` (any
logged-in member) or a role. :func:`access_middleware` enforces it before the handler runs, and
with it the same-origin rule for every change and every WebSocket (browsers open those across
sites): a handler cannot forget either. Handlers read who is asking with :func:`current_staff`.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from aiohttp import web

from appliance.errors import CsrfFailed, NotFound, NotLoggedIn, PermissionDenied, PracticeOffline
from appliance.practice.appointments import Visitor
from appliance.practice.models import Role, StaffMember
from appliance.web.api import WEBSOCKET, Endpoint, endpoint_of
from appliance.web.context import PATIENT_SESSIONS, SERVICES, STAFF_SESSIONS
from appliance.web.security import UNSAFE_METHODS, check_same_origin
from appliance.web.sessions import PatientSession, StaffSession

#: where password checks derive their keys (Argon2id releases the GIL: the loop goes on)
PASSWORD_WORK: Final = ThreadPoolExecutor(max_workers=2, thread_name_prefix="password-check")
_STAFF: Final = web.RequestKey("staff", tuple)


def staff_member(request: web.Request, *roles: Role) -> tuple[StaffSession, StaffMember]:
    """The session and member of a staff request; checks role and CSRF for changes."""
    session = request.app[STAFF_SESSIONS].get(request)
    services = request.app[SERVICES]
    if session is None or services.vault.sealed:
        raise NotLoggedIn()
    try:
        member = services.staff.get(session.username)
    except NotFound:
        raise NotLoggedIn() from None
    if request.method in UNSAFE_METHODS and (
        not check_same_origin(request)
        or not hmac.compare_digest(request.headers.get("X-CSRF-Token", "").encode(),
                                   session.csrf.encode())
    ):
        raise CsrfFailed()
    if roles and not member.roles & set(roles):
        raise PermissionDenied()
    return session, member


def current_staff(request: web.Request) -> tuple[StaffSession, StaffMember]:
    """Who asks: as :func:`access_middleware` found them for this endpoint."""
    found = request.get(_STAFF)
    return found if found is not None else staff_member(request)


def visitor(request: web.Request, *, ticket: str | None = None,
            ) -> tuple[PatientSession, Visitor]:
    """The session for this very link, and whose link it is (patient or guest, still valid).

    The session is the cookie's; on another public host (no cookie there) the signaling socket
    shows its session's ``ticket`` instead.
    """
    token = request.match_info["token"]
    sessions = request.app[PATIENT_SESSIONS]
    session = sessions.get(request)
    if session is None and ticket:
        session = sessions.find(lambda s: s.token == token and hmac.compare_digest(
            s.ticket.encode(), ticket.encode()))
    services = request.app[SERVICES]
    if services.vault.sealed:
        raise PracticeOffline()
    if session is None or session.token != token:
        raise NotLoggedIn()
    found = services.appointments.find_visitor(token)
    guest_id = None if found is None or found.guest is None else found.guest.id
    if found is None or found.appointment.id != session.appointment_id or (
            guest_id != session.guest_id):
        raise NotFound()
    return session, found


def check_access(request: web.Request, endpoint: Endpoint) -> None:
    """Refuse ``request`` unless ``endpoint``'s access lets it in (raises the API's errors)."""
    if (endpoint.content_type == WEBSOCKET or request.method in UNSAFE_METHODS) and (
            not check_same_origin(request)):
        raise CsrfFailed()  # a change, or a cross-site WebSocket hijacking
    if endpoint.access == "public":
        return
    roles = () if endpoint.access == "staff" else (Role(endpoint.access),)
    request[_STAFF] = staff_member(request, *roles)


@web.middleware
async def access_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    """Enforce the access each endpoint of the table declares, before its handler runs."""
    endpoint = endpoint_of(request)
    if endpoint is not None:
        check_access(request, endpoint)
    return await handler(request)
