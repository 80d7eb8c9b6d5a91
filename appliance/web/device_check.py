"""Device-check routes of both sites (R13): the page's WebRTC offer in, the echo peer's answer out.

Patients call ``POST /v/{token}/device-check`` (the verified session of that very link, rate-limited
per address); practice PCs call ``POST /api/device-check`` (any logged-in staff member). Both share
one :class:`EchoService`, so its cap holds for the whole box. The answer carries the verdict
thresholds, so the page judges its figures by the same numbers as ``rtc/connection_verdict.py``.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec
from aiohttp import web

from appliance.rtc.connection_verdict import THRESHOLDS
from appliance.rtc.echo_peer import EchoBusy, EchoService
from appliance.web.api import Endpoint, add_endpoints, read_body, reply
from appliance.web.auth import current_staff, visitor
from appliance.web.context import PageIceServers
from appliance.web.schema import NOT_BLANK, Form, View, json_schema
from appliance.web.security import (
    RateLimiter,
    client_address,
    error_response,
    request_language,
)

ECHO: Final = web.AppKey("device_check_echo", EchoService)
#: the TURN servers a page of the given role ("patient", "doctor") uses for its side of the check
PAGE_ICE: Final = web.AppKey("device_check_page_ice", PageIceServers)
DEVICE_CHECK_LIMIT: Final = web.AppKey("device_check_limit", RateLimiter)
#: offers per minute and burst, per client address: enough for a page that waits for a slot
#: and asks again every few seconds, too few to start peers in a loop
DEVICE_CHECK_RATE: Final = (20, 6)
#: a browser's offer with candidates is 4–10 KB; leave room, stay under the body limit
MAX_SDP_CHARS: Final = 60_000



class IceServers(View, frozen=True, kw_only=True):
    """The TURN servers (RTCIceServer dictionaries) for the page's side of the check."""

    ice_servers: list[dict[str, Any]]


class Offer(Form, frozen=True, kw_only=True):
    """The page's WebRTC offer."""

    sdp: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_SDP_CHARS, pattern=NOT_BLANK)]
    type: Literal["offer"]


class Limit(View, frozen=True, kw_only=True):
    """Where a figure turns from good to ok to poor, and which way is better."""

    good: float
    ok: float
    better: Literal["higher", "lower"]


class Thresholds(View, frozen=True, kw_only=True):
    """The verdict's thresholds (``rtc/connection_verdict.py``), for the page to judge by."""

    download_kbps: Limit
    upload_kbps: Limit
    rtt_ms: Limit
    loss_percent: Limit
    tcp_relay_level: Literal["good", "ok", "poor"]
    tcp_relays: list[str]


class Answer(View, frozen=True, kw_only=True):
    """The echo peer's answer, the thresholds, and how long the check may run."""

    sdp: Annotated[str, msgspec.Meta(max_length=MAX_SDP_CHARS)]
    type: Literal["answer"]
    thresholds: Thresholds
    max_seconds: float


class Busy(View, frozen=True, kw_only=True):
    """503: every echo peer is in use; the page's place in the queue and when to ask again."""

    error: Literal["device_check_busy"]
    message: str
    position: Annotated[int, msgspec.Meta(ge=1)]
    retry_after_s: Annotated[int, msgspec.Meta(ge=1)]


BUSY: Final = json_schema(Busy)
PAGE_THRESHOLDS: Final = msgspec.convert(THRESHOLDS.as_json(), Thresholds)


async def answer_offer(request: web.Request, *, waiter: str) -> web.Response:
    """Answer the offer in the body with an echo peer, or 503 ``device_check_busy``."""
    data = await read_body(request, Offer)
    echo = request.app[ECHO]
    try:
        answer = await echo.accept(data.sdp, data.type, waiter=waiter)
    except EchoBusy as busy:
        response = error_response(
            request, busy.status, busy.code, busy.message(request_language(request)),
            position=busy.position, retry_after_s=busy.retry_after_s,
        )
        response.headers["Retry-After"] = str(busy.retry_after_s)
        return response
    return reply(Answer(sdp=answer.sdp, type=answer.type, thresholds=PAGE_THRESHOLDS,
                        max_seconds=echo.max_seconds))


async def _patient_device_check(request: web.Request) -> web.Response:
    request.app[DEVICE_CHECK_LIMIT].hit(client_address(request))
    _, who = visitor(request)
    return await answer_offer(request, waiter=f"{who.key}:{who.appointment.id}")


async def _patient_ice_servers(request: web.Request) -> web.Response:
    request.app[DEVICE_CHECK_LIMIT].hit(client_address(request))
    _, who = visitor(request)
    servers = request.app[PAGE_ICE]("patient", f"check-{who.appointment.id}")
    return reply(IceServers(ice_servers=servers))


PUBLIC_ENDPOINTS: Final[tuple[Endpoint, ...]] = (
    Endpoint(method="GET", path="/v/{token}/device-check", handler=_patient_ice_servers,
             access="public", response=IceServers,
             summary="TURN-Server für die eigene Seite des Verbindungstests (vor dem Angebot)"),
    Endpoint(method="POST", path="/v/{token}/device-check", handler=_patient_device_check,
             access="public", body=Offer, response=Answer,
             summary="Verbindungstest vor dem Termin (R13): Echo-Gegenstelle auf der Box"),
)


async def _device_check(request: web.Request) -> web.Response:
    session, _ = current_staff(request)
    return await answer_offer(request, waiter=f"staff:{session.username}")


async def _device_check_ice_servers(request: web.Request) -> web.Response:
    """The practice PC's TURN servers for its side of the check (the box's LAN address)."""
    session, _ = current_staff(request)
    servers = request.app[PAGE_ICE]("doctor", f"check-{session.username}")
    return reply(IceServers(ice_servers=servers))


#: the staff site's device check (listed in ``staff.ENDPOINTS``)
STAFF_ENDPOINT: Final = Endpoint(
    method="POST", path="/api/device-check", handler=_device_check, body=Offer, response=Answer,
    summary="Verbindungstest des Praxis-PCs (R13): Echo-Gegenstelle auf der Box; "
            "503 device_check_busy mit retry_after_s, wenn belegt")
STAFF_ICE_ENDPOINT: Final = Endpoint(
    method="GET", path="/api/device-check", handler=_device_check_ice_servers, response=IceServers,
    summary="TURN-Server für die eigene Seite des Verbindungstests")


def setup_device_check(
    app: web.Application, echo: EchoService, *, patient_route: bool = False,
    page_ice_servers: PageIceServers = lambda role, bound_to: [],
) -> None:
    """Give ``app`` the shared ``echo`` service (hung up on shutdown), and the patient routes.

    The staff routes come with ``staff.ENDPOINTS`` (see :func:`staff_endpoint`).
    """
    app[ECHO] = echo
    app[PAGE_ICE] = page_ice_servers
    if patient_route:
        app[DEVICE_CHECK_LIMIT] = RateLimiter(*DEVICE_CHECK_RATE)
        add_endpoints(app, PUBLIC_ENDPOINTS)
    app.on_shutdown.append(_hang_up)


async def _hang_up(app: web.Application) -> None:
    await app[ECHO].close_all()
