"""Serving both sites on their addresses until told to stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web

from appliance.web.app import build_public_app, build_staff_app
from appliance.web.context import Box

_LOGGER = logging.getLogger(__name__)


async def async_run_sites(
    box: Box, *, stop: asyncio.Event, ready: Callable[[], None] | None = None,
) -> None:
    """Listen with the staff and the public site until ``stop`` is set, then close both."""
    settings = box.settings
    staff_app = build_staff_app(box)
    public_app = build_public_app(box)
    runners: list[web.AppRunner] = []
    try:
        for app, hosts, port in (
            (staff_app, settings.web.staff_host, settings.web.staff_port),
            (public_app, settings.web.public_host, settings.web.public_port),
        ):
            # no access log: patient links carry their token in the path
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
            await runner.setup()
            runners.append(runner)
            for host in hosts:
                await web.TCPSite(runner, host, port).start()
        _LOGGER.info(
            "staff site on %s port %d, public site on %s port %d",
            ",".join(settings.web.staff_host), settings.web.staff_port,
            ",".join(settings.web.public_host), settings.web.public_port,
        )
        if ready:
            ready()
        await stop.wait()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
