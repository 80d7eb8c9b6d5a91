"""Serving both sites on their addresses until told to stop."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable

from aiohttp import web

from appliance.interfaces import is_loopback
from appliance.web.app import build_public_app, build_staff_app
from appliance.web.context import Box
from appliance.web.plain_http import build_http_app

_LOGGER = logging.getLogger(__name__)

#: the TLS context of a site on one of its addresses (None: plain HTTP)
TlsFor = Callable[[str], ssl.SSLContext | None]


def _plain_http_hosts(box: Box) -> tuple[str, ...]:
    """Where the plain-HTTP site listens: the addresses of the sites that serve HTTPS."""
    settings, tls = box.settings, box.tls
    if not settings.tls.http_port:
        return ()
    hosts = [*(settings.web.staff_host if tls.staff_https else ()),
             *(settings.web.public_host if tls.public_https else ())]
    return tuple(dict.fromkeys(host for host in hosts if not is_loopback(host)))


def _plain_http_app(box: Box) -> web.Application:
    lan = box.tls.lan
    return build_http_app(
        ca_pem=lambda: lan.ca.pem if lan else None,
        ca_der=lambda: lan.ca.der if lan else None,
        ca_fingerprint=lambda: lan.ca.fingerprint if lan else None,
        staff_port=box.settings.web.staff_port, public_urls=box.settings.web.public_urls,
        challenge=box.tls.challenge_answer)


async def async_run_sites(
    box: Box, *, stop: asyncio.Event, ready: Callable[[], None] | None = None,
) -> None:
    """Listen with the staff and the public site (HTTPS where ``box.tls`` says so) and the
    plain-HTTP site until ``stop`` is set, then close them."""
    settings, tls = box.settings, box.tls
    sites: list[tuple[web.Application, tuple[str, ...], int, TlsFor]] = [
        (build_staff_app(box), settings.web.staff_host, settings.web.staff_port,
         tls.staff_context),
        (build_public_app(box), settings.web.public_host, settings.web.public_port,
         tls.public_context),
    ]
    plain_hosts = _plain_http_hosts(box)
    if plain_hosts:
        sites.append((_plain_http_app(box), plain_hosts, settings.tls.http_port,
                      lambda host: None))
    runners: list[web.AppRunner] = []
    try:
        for app, hosts, port, context_for in sites:
            # no access log: patient links carry their token in the path
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
            await runner.setup()
            runners.append(runner)
            for host in hosts:
                await web.TCPSite(runner, host, port, ssl_context=context_for(host)).start()
        _LOGGER.info(
            "staff site on %s port %d (%s), public site on %s port %d (%s)",
            ",".join(settings.web.staff_host), settings.web.staff_port,
            "HTTPS" if tls.staff_https else "HTTP",
            ",".join(settings.web.public_host), settings.web.public_port,
            "HTTPS" if tls.public_https else "HTTP",
        )
        if tls.lan is not None:
            _LOGGER.info("practice CA SHA-256 %s", tls.lan.ca.fingerprint)
        if ready:
            ready()
        await stop.wait()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
