"""All practice services of one box, wired by the composition root and used by the sites and CLI."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Final

from appliance.clock import Clock
from appliance.practice.appointments import AppointmentBook
from appliance.practice.audit import AuditLog
from appliance.practice.calls import Calls
from appliance.practice.patients import PatientRegistry
from appliance.practice.profile import PracticeOffice
from appliance.practice.reception import Reception
from appliance.practice.retention import RetentionPolicy
from appliance.practice.staff import StaffDirectory
from appliance.vault import Vault

_LOGGER = logging.getLogger(__name__)
RETENTION_INTERVAL_S: Final = 3600.0


@dataclass(kw_only=True)
class PracticeServices:
    """The vault and every service on top of it."""

    clock: Clock
    vault: Vault
    audit: AuditLog
    office: PracticeOffice
    staff: StaffDirectory
    patients: PatientRegistry
    appointments: AppointmentBook
    #: the way in by link and code: patients and guests
    reception: Reception
    #: who is in the call: admitting, removing, ending
    calls: Calls
    retention: RetentionPolicy
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def purge_expired(self) -> None:
        """Apply the retention rule now (R8) if the vault is open."""
        if self.vault.sealed:
            return
        report = self.retention.purge()
        _LOGGER.info("retention purge: %s", report)

    async def async_run_retention(self, interval: float = RETENTION_INTERVAL_S) -> None:
        """Purge expired metadata every ``interval`` seconds while the box runs."""
        while True:
            try:
                self.purge_expired()
            except Exception:  # a failing purge must not stop the box; it is retried
                _LOGGER.exception("retention purge failed")
            await asyncio.sleep(interval)

    async def async_start(self) -> None:
        """Start the background work."""
        self._tasks.append(asyncio.create_task(self.async_run_retention()))

    async def async_stop(self) -> None:
        """Stop background work and close the vault (reverse order of start)."""
        for task in reversed(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self.vault.close()
