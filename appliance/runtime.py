"""The one composition root: builds the box's services and sites, starts and stops them."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

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
from appliance.web.server import async_run_sites

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
    retention = RetentionPolicy(
        vault, audit, clock, days=settings.practice.retention_days, book=appointments
    )
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
    """Run the box until ``stop`` is set (or SIGTERM/SIGINT); shut down in reverse order."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    await services.async_start()
    try:
        await async_run_sites(settings, services, ready=ready, stop=stop)
    finally:
        await services.async_stop()
