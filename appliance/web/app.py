"""Both aiohttp applications: the staff site (LAN) and the public site (patients)."""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import date, tzinfo
from importlib import resources
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

from aiohttp import web
from yarl import URL

from appliance.discovery import Announcer
from appliance.errors import VaultSealed
from appliance.i18n import LANGUAGES, catalog, patient_catalog
from appliance.practice.profile import DEFAULT_TIMEZONE
from appliance.web import public, staff
from appliance.web.api import Handler, add_endpoints, openapi_document
from appliance.web.assets import Body, StaticAssets, json_body
from appliance.web.auth import access_middleware
from appliance.web.context import (
    BACKUP,
    BOX_LOCK,
    CODE_LIMIT,
    EVENTS,
    KNOWN_DEVICES,
    LOGIN_LIMIT,
    PATIENT_SESSIONS,
    PROPOSED_PUBLIC_URLS,
    PUBLIC_LIMIT,
    SERVICES,
    SESSION_KEEPER,
    STAFF_SESSIONS,
    TLS,
    UPLINKS,
    Box,
)
from appliance.web.device_check import setup_device_check
from appliance.web.public import public_origins
from appliance.web.security import (
    RateLimiter,
    content_security_policy,
    setup_security,
    staff_host_middleware,
)
from appliance.web.sockets import async_tick, setup_public_signaling, setup_staff_signaling

_LOGGER = logging.getLogger(__name__)
STATIC: Final = Path(str(resources.files("appliance.web").joinpath("static")))
PUBLIC_STATIC_DIRS: Final = ("common", "patient", "call")
#: requests per minute and burst, per client address
LOGIN_RATE: Final = (10, 10)
PUBLIC_RATE: Final = (120, 60)
CODE_RATE: Final = (10, 10)


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


def build_staff_app(box: Box) -> web.Application:
    """The staff site: UI shell, JSON API, OpenAPI document, live events. It runs the box's
    background work while it runs (the hub's ticks, the lock's checks)."""
    services = box.services
    app = web.Application(client_max_size=256 * 1024)
    setup_security(app)
    app.middlewares.append(access_middleware)  # inside the error middleware: refusals as JSON
    app.middlewares.insert(0, staff_host_middleware)
    _share(app, box)
    app[STAFF_SESSIONS] = box.staff_sessions
    app[SESSION_KEEPER] = box.session_keeper
    app[BOX_LOCK] = box.lock
    app[TLS] = box.tls
    app[BACKUP] = box.backup
    app[UPLINKS] = box.uplinks
    app[LOGIN_LIMIT] = RateLimiter(*LOGIN_RATE)
    app[KNOWN_DEVICES] = box.known_devices
    app[PROPOSED_PUBLIC_URLS] = box.settings.web.public_urls
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
    setup_staff_signaling(app, box.hub)
    setup_device_check(app, box.echo, page_ice_servers=box.page_ice_servers)
    assets.setup(app)
    app.cleanup_ctx.append(_background_work(box))
    app.on_shutdown.append(_close_events)
    return app


def build_public_app(box: Box) -> web.Application:
    """The public site: the patient link, its assets, terms and privacy; 404 for all else."""
    app = web.Application(client_max_size=16 * 1024)
    setup_security(app)
    app.middlewares.append(access_middleware)
    _share(app, box)
    app[PATIENT_SESSIONS] = box.patient_sessions
    app[PUBLIC_LIMIT] = RateLimiter(*PUBLIC_RATE)
    app[CODE_LIMIT] = RateLimiter(*CODE_RATE)

    assets = StaticAssets(STATIC, PUBLIC_STATIC_DIRS)
    pages = _pages(assets, "patient.html", "nutzungsbedingungen.html", "datenschutz.html")
    app.router.add_get(public.LINK_PATH, _serve_page(pages, "patient.html"))
    app.router.add_get("/nutzungsbedingungen", _serve_page(pages, "nutzungsbedingungen.html"))
    app.router.add_get("/datenschutz", _serve_page(pages, "datenschutz.html"))
    # the patient's texts only: a patient on a weak line does not load the staff's
    app.router.add_get("/locales/{lang}.json", _serve_locales(patient_catalog))
    add_endpoints(app, public.ENDPOINTS)
    setup_public_signaling(app, box.hub)  # one hub: a call spans both sites
    setup_device_check(app, box.echo, patient_route=True,  # one cap for the box
                       page_ice_servers=box.page_ice_servers)
    assets.setup(app)
    app.on_response_prepare.append(_allow_sockets_to_other_hosts)
    app.on_shutdown.append(_close_events)
    return app


def _share(app: web.Application, box: Box) -> None:
    """What every site of the box finds on its application."""
    app[SERVICES] = box.services
    app[EVENTS] = box.events  # one hub: the dashboard sees what patients do


async def _announce(box: Box, announcer: Announcer) -> None:
    """Announce the box on the LAN until cancelled; the practice name follows the vault."""
    loop = asyncio.get_running_loop()
    box.services.vault.add_unseal_listener(
        lambda: loop.call_soon_threadsafe(lambda: loop.create_task(announcer.update())))
    try:
        try:
            await announcer.start()
        except Exception:  # no mDNS (port taken, no free name): PCs use the address instead
            _LOGGER.exception("the box could not announce itself on the LAN")
        await asyncio.Event().wait()
    finally:
        await asyncio.shield(announcer.close())


def _background_work(box: Box) -> Callable[[web.Application], AsyncIterator[None]]:
    """The hub's ticks, the lock's checks, the certificates' renewal, the lines' probes and the
    backups' schedule, while the staff site runs."""

    async def run(app: web.Application) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(async_tick(box.hub)),
                 asyncio.create_task(box.lock.async_run()),
                 asyncio.create_task(box.tls.keep_fresh()),
                 asyncio.create_task(box.uplinks.run()),
                 asyncio.create_task(box.backup.run_schedule(timezone=_practice_zone(box)))]
        if box.discovery is not None:
            tasks.append(asyncio.create_task(_announce(box, box.discovery)))
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        box.hub.close_all()

    return run


def _practice_zone(box: Box) -> Callable[[], tzinfo]:
    """The practice's time zone, the last one known while the vault is sealed."""
    known: list[tzinfo] = [ZoneInfo(DEFAULT_TIMEZONE)]

    def zone() -> tzinfo:
        with contextlib.suppress(VaultSealed):
            known[0] = box.services.office.timezone()
        return known[0]

    return zone


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
