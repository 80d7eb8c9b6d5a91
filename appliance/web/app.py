"""Both aiohttp applications: the staff site (LAN) and the public site (patients)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import html
import json
import os
from collections.abc import AsyncIterator, Callable
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Final

from aiohttp import web
from yarl import URL

from appliance.config import Settings
from appliance.i18n import LANGUAGES, catalog, patient_catalog
from appliance.practice.services import PracticeServices
from appliance.rtc.echo_peer import EchoService
from appliance.rtc.turn import TurnRelay
from appliance.vault.resume import ResumeFile
from appliance.web import public, staff
from appliance.web.api import Handler, add_endpoints, openapi_document
from appliance.web.assets import Body, StaticAssets, json_body
from appliance.web.box_lock import BoxLock
from appliance.web.context import (
    BOX_LOCK,
    CODE_LIMIT,
    EVENTS,
    HUB,
    KNOWN_DEVICES,
    LOGIN_LIMIT,
    PATIENT_SESSIONS,
    PROPOSED_PUBLIC_URLS,
    PUBLIC_LIMIT,
    SERVICES,
    SESSION_KEEPER,
    STAFF_SESSIONS,
)
from appliance.web.device_check import ECHO, PAGE_ICE, setup_device_check
from appliance.web.devices import DEVICE_KEY_FILE, KnownDevices
from appliance.web.events import EventHub
from appliance.web.public import public_origins
from appliance.web.security import (
    RateLimiter,
    content_security_policy,
    setup_security,
    staff_host_middleware,
)
from appliance.web.sessions import (
    PATIENT_COOKIE,
    STAFF_COOKIE,
    PatientSession,
    SessionKeeper,
    SessionStore,
    StaffSession,
)
from appliance.web.sockets import setup_public_signaling, setup_staff_signaling

STATIC: Final = Path(str(resources.files("appliance.web").joinpath("static")))
PUBLIC_STATIC_DIRS: Final = ("common", "patient", "call")
#: keys the participants' ids in TURN usernames (per process: they only need to be opaque)
_CREDENTIAL_KEY: Final = os.urandom(32)
#: a staff session lasts a working day; idle after 2 h
STAFF_IDLE_S: Final = 2 * 3600.0
STAFF_MAX_S: Final = 12 * 3600.0
PATIENT_IDLE_S: Final = 2 * 3600.0
PATIENT_MAX_S: Final = 6 * 3600.0
#: requests per minute and burst, per client address
LOGIN_RATE: Final = (10, 10)
PUBLIC_RATE: Final = (120, 60)
CODE_RATE: Final = (10, 10)


def _credential_id(member_key: str) -> str:
    """A participant's opaque id in a TURN username: coturn logs usernames, and a login name
    (often a surname) must not appear there; any login name works, dots included."""
    digest = hashlib.blake2b(member_key.encode("utf-8"), key=_CREDENTIAL_KEY,
                             digest_size=12).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")


def _pages(assets: StaticAssets, *names: str) -> dict[str, Body]:
    """The site's HTML pages, their asset URLs versioned (made once, at start)."""
    return {name: assets.page(STATIC / name) for name in names}


def _serve_page(pages: dict[str, Body], name: str) -> Handler:
    async def serve(request: web.Request) -> web.StreamResponse:
        return pages[name].response(request, cache_control="no-store")
    return serve


def _serve_locales(texts: Callable[[str], dict[str, str]]) -> Handler:
    """``/locales/{lang}.json``: the texts a site's pages need, compressed, revalidated."""
    bodies = {lang: json_body(json.dumps(texts(lang), ensure_ascii=False, sort_keys=True))
              for lang in LANGUAGES}

    async def serve(request: web.Request) -> web.StreamResponse:
        body = bodies.get(request.match_info["lang"])
        if body is None:
            raise web.HTTPNotFound()
        return body.response(request, cache_control="no-cache")
    return serve


def build_staff_app(settings: Settings, services: PracticeServices) -> web.Application:
    """The staff site: UI shell, JSON API, OpenAPI document, live events."""
    app = web.Application(client_max_size=256 * 1024)
    setup_security(app)
    app.middlewares.insert(0, staff_host_middleware)
    app[SERVICES] = services
    app[EVENTS] = EventHub()
    app[STAFF_SESSIONS] = SessionStore[StaffSession](
        STAFF_COOKIE, idle_s=STAFF_IDLE_S, max_s=STAFF_MAX_S, persistent=False
    )
    app[SESSION_KEEPER] = SessionKeeper(
        ResumeFile(settings.vault.resume_dir, services.vault), services.vault)
    app[SESSION_KEEPER].keep(  # a removed member's sessions never come back
        "staff", app[STAFF_SESSIONS], StaffSession, reopens=True,
        belongs=lambda session: session.username in services.vault.members())
    app[LOGIN_LIMIT] = RateLimiter(*LOGIN_RATE)
    app[KNOWN_DEVICES] = KnownDevices(settings.vault.path.parent / DEVICE_KEY_FILE)
    app[PROPOSED_PUBLIC_URLS] = settings.web.public_urls
    services.appointments.add_state_listener(
        lambda appt: app[EVENTS].publish({"type": "appointment", "id": appt.id})
    )
    document = openapi_document(staff.ENDPOINTS, title="Sprechzimmer – Praxis-API")

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(document)

    async def recovery_sheet(request: web.Request) -> web.Response:
        session = request.app[STAFF_SESSIONS].get(request)
        if session is None or session.pending_recovery_key is None:
            raise web.HTTPNotFound()
        profile = services.office.profile()
        return web.Response(
            text=_recovery_sheet(profile.name if profile else "", session.pending_recovery_key,
                                 services.clock.now().date()),
            content_type="text/html", charset="utf-8", headers={"Cache-Control": "no-store"},
        )

    assets = StaticAssets(STATIC)
    pages = _pages(assets, "staff.html")
    app.router.add_get("/", _serve_page(pages, "staff.html"))
    app.router.add_get("/notfallblatt", recovery_sheet)
    app.router.add_get("/api/openapi.json", openapi)
    app.router.add_get("/locales/{lang}.json", _serve_locales(catalog))
    add_endpoints(app, staff.ENDPOINTS)
    relay = TurnRelay(settings.turn)
    setup_staff_signaling(app, ice_servers=lambda room_id, member: relay.ice_servers_for(
        member.role, (room_id, _credential_id(member.key))),
        ice_policy=lambda member: relay.ice_policy_for(member.role))
    setup_device_check(app, EchoService(
        ice_servers=lambda: relay.ice_servers_for("box", ("device-check", "echo"))),
        page_ice_servers=lambda role, bound_to: relay.ice_servers_for(
            role, ("device-check", _credential_id(bound_to))))
    _setup_box_lock(app, settings, services)
    assets.setup(app)
    app.on_shutdown.append(_close_events)
    return app


def _setup_box_lock(app: web.Application, settings: Settings,
                    services: PracticeServices) -> None:
    """The box locks itself as ``[vault] lock_hours`` and ``lock_idle_hours`` say (checked
    while the site runs), or when an admin asks."""
    hub = app[HUB]

    def end_sessions() -> None:
        app[SESSION_KEEPER].end_all()
        hub.close_all()  # the doctors' sockets; no visitor is in when the box locks

    app[BOX_LOCK] = BoxLock(
        services, hours=settings.vault.lock_hours, idle_hours=settings.vault.lock_idle_hours,
        staff_present=lambda: len(app[STAFF_SESSIONS]) > 0, visitors_present=hub.has_visitors,
        end_sessions=end_sessions, changed=lambda: app[EVENTS].publish({"type": "box-lock"}))

    async def run(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(app[BOX_LOCK].async_run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(run)


def build_public_app(
    settings: Settings, services: PracticeServices, staff_app: web.Application
) -> web.Application:
    """The public site: the patient link, its assets, terms and privacy; 404 for all else."""
    app = web.Application(client_max_size=16 * 1024)
    setup_security(app)
    app[SERVICES] = services
    app[EVENTS] = staff_app[EVENTS]  # one hub: the dashboard sees what patients do
    app[PATIENT_SESSIONS] = SessionStore[PatientSession](
        PATIENT_COOKIE, idle_s=PATIENT_IDLE_S, max_s=PATIENT_MAX_S
    )
    staff_app[SESSION_KEEPER].keep("patient", app[PATIENT_SESSIONS], PatientSession,
                                   reopens=False)
    app[PUBLIC_LIMIT] = RateLimiter(*PUBLIC_RATE)
    app[CODE_LIMIT] = RateLimiter(*CODE_RATE)

    assets = StaticAssets(STATIC, PUBLIC_STATIC_DIRS)
    pages = _pages(assets, "patient.html", "nutzungsbedingungen.html", "datenschutz.html")
    app.router.add_get("/v/{token}", _serve_page(pages, "patient.html"))
    app.router.add_get("/nutzungsbedingungen", _serve_page(pages, "nutzungsbedingungen.html"))
    app.router.add_get("/datenschutz", _serve_page(pages, "datenschutz.html"))
    # the patient's texts only: a patient on a weak line does not load the staff's
    app.router.add_get("/locales/{lang}.json", _serve_locales(patient_catalog))
    add_endpoints(app, public.ENDPOINTS)
    setup_public_signaling(app, staff_app)  # one hub: a call spans both sites
    setup_device_check(app, staff_app[ECHO], patient_route=True,  # one cap for the box
                       page_ice_servers=staff_app[PAGE_ICE])
    assets.setup(app)
    app.on_response_prepare.append(_allow_sockets_to_other_hosts)
    app.on_shutdown.append(_close_events)
    return app


async def _allow_sockets_to_other_hosts(request: web.Request,
                                        response: web.StreamResponse) -> None:
    """The patient's page keeps a signaling socket to every public host of the practice (one
    per uplink): its CSP allows exactly those, nothing else of another origin."""
    here = f"{request.scheme}://{request.host}"
    others = [origin for origin in public_origins(request.app[SERVICES]) if origin != here]
    if others:
        sockets = tuple(str(URL(origin).with_scheme(
            "wss" if origin.startswith("https:") else "ws")) for origin in others)
        response.headers["Content-Security-Policy"] = content_security_policy(sockets)


async def _close_events(app: web.Application) -> None:
    app[EVENTS].close()


def _recovery_sheet(practice_name: str, key: str, today: date) -> str:
    """The printable emergency sheet with the recovery key (HTML print view)."""
    groups = key.split("-")
    lines = ["-".join(groups[i:i + 4]) for i in range(0, len(groups), 4)]
    key_html = "<br>".join(html.escape(line) for line in lines)
    return _SHEET.format(practice=html.escape(practice_name), key=key_html,
                         date=today.strftime("%d.%m.%Y"))


_SHEET: Final = """<!doctype html>
<html lang="de"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Notfallblatt – Wiederherstellungsschlüssel</title>
<link rel="stylesheet" href="/static/common/base.css">
<link rel="stylesheet" href="/static/staff/sheet.css"></head>
<body class="sheet"><main>
<h1>Notfallblatt</h1>
<p class="sheet-practice">{practice}</p>
<p>Erstellt am {date}. Dieser Wiederherstellungsschlüssel öffnet alle Daten der Sprechzimmer-Box,
auch auf einer neuen Box, wenn alle Passwörter verloren sind.</p>
<p class="recovery-key" id="recovery-key">{key}</p>
<ul>
<li>Bewahren Sie dieses Blatt verschlossen auf (z.&nbsp;B. im Praxistresor), nicht am Computer.</li>
<li>Wer diesen Schlüssel hat, kann alle Termindaten lesen. Machen Sie keine Fotos und keine Kopien
auf dem Computer.</li>
<li>Der Schlüssel wird nur dieses eine Mal angezeigt. Die Box kann ihn nicht erneut erzeugen.</li>
</ul>
<p class="no-print"><button type="button" id="print">Drucken</button></p>
</main><script type="module" src="/static/staff/sheet.js"></script></body></html>
"""
