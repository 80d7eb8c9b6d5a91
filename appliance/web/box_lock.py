"""Locking the box: the vault sealed while nobody of the staff works (docs/vault.md).

A running box holds the vault's data key in memory; whoever carries the running box away at
night could try to read it from there. So the box locks itself when nobody needs it open: on an
admin's word, or by the clock — during the practice's night hours once no staff session is left,
and after some hours without any staff session. Locking ends every session of both sites,
removes the resume file (no cookie reopens the vault after a restart) and seals the vault; the
next staff login unseals it again, as after a boot.

It never locks while a patient or a guest is in a room that has not ended — waiting, in a call,
or away for a moment within their grace: it waits until they are gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Final

from appliance.practice.services import PracticeServices

_LOGGER = logging.getLogger(__name__)

CHECK_EVERY_S: Final = 30.0
#: the clock's rules wait this long after the last staff session (a logout by mistake, a login
#: that is just unsealing)
QUIET: Final = timedelta(minutes=5)
#: the audit log's actor when the clock locks the box
BOX_ACTOR: Final = "box"


class LockReason(StrEnum):
    """Why the box locked itself."""

    ADMIN = "admin"
    NIGHT = "night"
    IDLE = "idle"


@dataclass(frozen=True, kw_only=True)
class Locked:
    """When and why the box locked (until the next unseal)."""

    at: datetime
    reason: LockReason


def in_span(moment: time, span: tuple[time, time]) -> bool:
    """Whether ``moment`` lies in ``span`` = (start, end), which may pass midnight."""
    start, end = span
    if start < end:
        return start <= moment < end
    return moment >= start or moment < end


class BoxLock:
    """Seals the vault when asked or when the clock says so, never while a visitor is in."""

    def __init__(
        self, services: PracticeServices, *, hours: tuple[time, time] | None, idle_hours: int,
        staff_present: Callable[[], bool], visitors_present: Callable[[], bool],
        end_sessions: Callable[[], None], changed: Callable[[], None],
    ) -> None:
        """``staff_present``: whether a staff session is good; ``visitors_present``: whether a
        patient or guest is in a running room; ``end_sessions``: end every session and
        connection of the staff and the visitors; ``changed``: a lock was asked for, called off
        or done (the pages are told)."""
        self._services = services
        self.hours = hours
        self.idle_hours = idle_hours
        self._staff_present = staff_present
        self._visitors_present = visitors_present
        self._end_sessions = end_sessions
        self._changed = changed
        self._requested_by: str | None = None
        self.locked: Locked | None = None
        self._staff_seen_at = services.clock.now()
        services.vault.add_unseal_listener(self._unsealed)

    @property
    def pending(self) -> bool:
        """Whether an admin asked to lock and the box waits for a visitor to leave."""
        return self._requested_by is not None

    def request(self, actor: str) -> bool:
        """Lock now, or as soon as no visitor is in; whether the box is locked now."""
        self._services.audit.record(actor, "box.lock.request")
        self._requested_by = actor
        if self.check():
            return True
        _LOGGER.info("box lock asked for; waiting for the running call or waiting patient")
        self._changed()
        return False

    def cancel(self, actor: str) -> bool:
        """Call off a waiting lock; whether one was waiting."""
        if self._requested_by is None:
            return False
        self._requested_by = None
        self._services.audit.record(actor, "box.lock.cancel")
        self._changed()
        return True

    def check(self) -> bool:
        """Lock if it is due and nobody is in; whether it locked. Runs every ``CHECK_EVERY_S``."""
        if self._services.vault.sealed:
            self._requested_by = None
            return False
        now = self._services.clock.now()
        if self._staff_present():
            self._staff_seen_at = now
        reason = LockReason.ADMIN if self._requested_by is not None else self._due(now)
        if reason is None or self._visitors_present():
            return False
        self._lock(reason, now)
        return True

    async def async_run(self) -> None:
        """Check every ``CHECK_EVERY_S`` until cancelled."""
        while True:
            await asyncio.sleep(CHECK_EVERY_S)
            try:
                self.check()
            except Exception:  # a failing check must not end the checking for good
                _LOGGER.exception("box lock check failed")

    def _due(self, now: datetime) -> LockReason | None:
        quiet = now - self._staff_seen_at
        if quiet < QUIET:
            return None
        if self.hours is not None and in_span(
                now.astimezone(self._services.office.timezone()).time(), self.hours):
            return LockReason.NIGHT
        if self.idle_hours and quiet >= timedelta(hours=self.idle_hours):
            return LockReason.IDLE
        return None

    def _lock(self, reason: LockReason, now: datetime) -> None:
        self._services.audit.record(self._requested_by or BOX_ACTOR, "box.lock", reason.value)
        self._end_sessions()
        self._services.vault.seal()
        self._requested_by = None
        self.locked = Locked(at=now, reason=reason)
        _LOGGER.warning("box locked (%s): vault sealed, every session ended", reason.value)
        self._changed()

    def _unsealed(self) -> None:
        self.locked = None
        self._requested_by = None
        self._staff_seen_at = self._services.clock.now()
