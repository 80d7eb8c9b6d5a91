"""The practice's internet lines: each line's state for every member of the staff, the last
24 hours as an image for admins (docs/uplinks.md)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Final

from aiohttp import web

from appliance.uplinks import Fault, LineState, LineStatus
from appliance.web.api import Endpoint, reply
from appliance.web.context import UPLINKS
from appliance.web.schema import View
from appliance.web.security import request_language
from appliance.web.staff.common import practice_timezone, services_of
from appliance.web.uplink_timeline import render_timeline

SVG: Final = "image/svg+xml"


class LineView(View, frozen=True, kw_only=True):
    """One internet line now: how it stands, since when, how well it answers, what is probed."""

    #: what the staff calls the line ("DSL"; else "Leitung 1", …)
    name: str
    public_host: str
    public_address: str
    #: the box's LAN address whose traffic the line's router carries
    lan_address: str
    #: what the box probes ("host:port")
    target: str
    #: probed by its own public address (no ``stun_target``): the router's NAT loopback
    by_loopback: bool
    state: LineState
    #: since when the line is in ``state`` (null: since the box started)
    since: datetime | None
    #: the median round trip of the last answers, in milliseconds (null: no answer yet)
    rtt_ms: float | None
    #: the share of the last probes lost (0 to 1)
    loss: float
    #: why the last probe got no usable answer ("": it got one)
    fault: Fault
    #: when the line last answered (null: never)
    last_answer: datetime | None


class UplinksView(View, frozen=True, kw_only=True):
    """Every line of the practice, in the order of the settings (empty: none configured)."""

    lines: list[LineView]


def line_view(line: LineStatus, request: web.Request) -> LineView:
    """``line`` as the API shows it, its times in the practice's time zone."""
    tz = practice_timezone(services_of(request))

    def local(moment: float | None) -> datetime | None:
        return None if moment is None else datetime.fromtimestamp(moment, tz)

    return LineView(
        name=line.name, public_host=line.public_host, public_address=line.public_address,
        lan_address=line.lan_address, target=line.target, by_loopback=line.by_loopback,
        state=line.state, since=local(line.since),
        rtt_ms=None if line.rtt_ms is None else round(line.rtt_ms, 1),
        loss=round(line.loss, 3), fault=line.fault, last_answer=local(line.last_answer))


def uplinks_view(request: web.Request) -> UplinksView:
    """Every line now (also what the live event ``uplinks`` carries)."""
    return UplinksView(lines=[line_view(line, request)
                              for line in request.app[UPLINKS].status()])


async def _get_uplinks(request: web.Request) -> web.Response:
    return reply(uplinks_view(request))


async def _uplink_timeline(request: web.Request) -> web.Response:
    svg = render_timeline(request.app[UPLINKS].status(), now=time.time(),
                          tz=practice_timezone(services_of(request)),
                          lang=request_language(request))
    return web.Response(text=svg, content_type=SVG, charset="utf-8",
                        headers={"Cache-Control": "no-store"})


ENDPOINTS: Final[tuple[Endpoint, ...]] = (
    Endpoint(method="GET", path="/api/uplinks", handler=_get_uplinks,
             summary="Die Internetleitungen der Praxis: Zustand jeder Leitung jetzt, seit wann, "
                     "Umlaufzeit, Verlust, was die Box prüft und warum eine Prüfung scheiterte",
             response=UplinksView),
    Endpoint(method="GET", path="/api/uplinks/timeline.svg", handler=_uplink_timeline,
             access="admin", content_type=SVG, response=str,
             summary="Die letzten 24 Stunden jeder Leitung als Bild (SVG): Zustand je Minute, "
                     "Umlaufzeit, Stunden in der Zeitzone der Praxis"),
)
