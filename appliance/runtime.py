"""The one composition root: builds the box's services and sites, starts and stops them."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from aiohttp import web

from appliance.clock import Clock
from appliance.config import Settings
from appliance.practice.appointments import AppointmentBook
from appliance.practice.audit import AuditLog
from appliance.practice.patients import PatientRegistry
from appliance.practice.profile import PracticeOffice
from appliance.practice.retention import RetentionPolicy
from appliance.practice.services import PracticeServices
from appliance.practice.staff import StaffDirectory
from appliance.vault import KdfParams, Vault
from appliance.web.app import build_public_app, build_staff_app

_LOGGER = logging.getLogger(__name__)


def build_services(
    settings: Settings, *, clock: Clock | None = None, kdf: KdfParams | None = None
) -> PracticeServices:
    """Wire the practice services of the box from its settings."""
    clock = clock or Clock()
    vault = Vault(settings.vault.path, kdf=kdf or KdfParams())
    audit = AuditLog(vault, clock)
    office = PracticeOffice(vault, audit)
    staff = StaffDirectory(vault, audit, clock)
    patients = PatientRegistry(vault, audit, clock)
    appointments = AppointmentBook(
        vault, audit, clock, staff, patients, office,
        default_public_url=settings.web.public_urls[0],
    )
    retention = RetentionPolicy(vault, audit, clock, days=settings.practice.retention_days)
    services = PracticeServices(
        clock=clock, vault=vault, audit=audit, office=office, staff=staff,
        patients=patients, appointments=appointments, retention=retention,
    )
    vault.add_unseal_listener(services.purge_expired)
    return services


async def async_serve(
    settings: Settings, services: PracticeServices, *, ready: Callable[[], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run both sites until ``stop`` is set (or SIGTERM/SIGINT), then shut down in reverse order."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    await services.async_start()
    staff_app = build_staff_app(settings, services)
    public_app = build_public_app(settings, services, staff_app)
    runners: list[web.AppRunner] = []
    try:
        for app, hosts, port in (
            (staff_app, settings.web.staff_host, settings.web.staff_port),
            (public_app, settings.web.public_host, settings.web.public_port),
        ):
            runner = web.AppRunner(app, access_log=None)
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
        await services.async_stop()
