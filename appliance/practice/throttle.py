"""Login throttling: after repeated failures an account name is locked for a while (R9)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from appliance.clock import Clock
from appliance.errors import AccountLocked

MAX_FAILURES: Final = 5
WINDOW: Final = timedelta(minutes=15)
LOCKOUT: Final = timedelta(minutes=15)
#: beyond this many tracked names, names without a recent failure are forgotten
_MAX_TRACKED: Final = 10_000


@dataclass
class _Record:
    failures: list[datetime] = field(default_factory=list)
    locked_until: datetime | None = None


class LoginThrottle:
    """Counts failed logins per name in memory; known and unknown names are treated alike."""

    def __init__(
        self,
        clock: Clock,
        *,
        max_failures: int = MAX_FAILURES,
        window: timedelta = WINDOW,
        lockout: timedelta = LOCKOUT,
    ) -> None:
        self._clock = clock
        self._max_failures = max_failures
        self._window = window
        self._lockout = lockout
        self._records: dict[str, _Record] = {}

    def check(self, name: str) -> None:
        """Raise ``AccountLocked`` while ``name`` is locked."""
        record = self._records.get(name)
        if record is None or record.locked_until is None:
            return
        remaining = record.locked_until - self._clock.now()
        if remaining > timedelta(0):
            raise AccountLocked(minutes=max(1, math.ceil(remaining.total_seconds() / 60)))
        del self._records[name]

    def failed(self, name: str) -> bool:
        """Count a failure for ``name``; ``True`` if this one locked it."""
        now = self._clock.now()
        # sweep every time: what someone typed as a user name (perhaps a password) must not
        # stay in memory longer than the window needs it
        self._forget_stale(now)
        if len(self._records) >= _MAX_TRACKED:
            raise AccountLocked(minutes=self.lockout_minutes())  # a flood of names: hold all
        record = self._records.setdefault(name, _Record())
        record.failures = [at for at in record.failures if now - at < self._window]
        record.failures.append(now)
        if len(record.failures) >= self._max_failures:
            record.failures.clear()
            record.locked_until = now + self._lockout
            return True
        return False

    def succeeded(self, name: str) -> None:
        """Forget the failures of ``name`` after a successful login."""
        self._records.pop(name, None)

    def lockout_minutes(self) -> int:
        """How long a lock lasts, in whole minutes."""
        return math.ceil(self._lockout.total_seconds() / 60)

    def _forget_stale(self, now: datetime) -> None:
        self._records = {
            name: record
            for name, record in self._records.items()
            if (record.locked_until is not None and record.locked_until > now)
            or any(now - at < self._window for at in record.failures)
        }
