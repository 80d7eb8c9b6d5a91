"""Login throttling: repeated failures lock a name from one source; many lock out unknown PCs (R9).

Two limits, both in memory:

- per (name, source) – 5 failures within 15 minutes lock that name *from that source* for 15
  minutes. A source is a known PC (``device:<id>``, a browser that signed in to this box before
  and carries its device cookie, ``web/devices.py``), else the client address the web layer sees
  (IPv6 by its /64), or ``"cli"``. Someone guessing (or mistyping) at one PC does not lock the
  doctor out at another.
- per name, across the sources the box does not know – 50 failures within 60 minutes lock the
  name for 60 minutes, *for unknown sources only*: the backstop against a guesser spread over
  many addresses, who then gets at most 50 tries per name per hour. Known PCs and the box's own
  command line neither count towards it nor are held by it, so a stranger on the LAN who knows
  a login name can no longer lock that person out of their own PC (issue 8, defect 5); on a known
  PC, guessing stays at 5 tries per 15 minutes per name.
"""

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
MAX_NAME_FAILURES: Final = 50
NAME_WINDOW: Final = timedelta(minutes=60)
NAME_LOCKOUT: Final = timedelta(minutes=60)
#: the source of logins on the box's command line, which has no client address
CLI_SOURCE: Final = "cli"
#: a source the box knows: a browser with a valid device cookie (``web/devices.py``)
DEVICE_SOURCE_PREFIX: Final = "device:"
#: beyond this many tracked keys per limit, keys without a recent failure are forgotten
_MAX_TRACKED: Final = 10_000

#: a name, or a (name, source) pair
_Key = str | tuple[str, str]


@dataclass
class _Record:
    failures: list[datetime] = field(default_factory=list)
    locked_until: datetime | None = None


class _Limit:
    """Failures counted per key in a sliding window; ``max_failures`` of them lock the key."""

    def __init__(self, clock: Clock, max_failures: int, window: timedelta,
                 lockout: timedelta) -> None:
        self._clock = clock
        self._max_failures = max_failures
        self._window = window
        self.lockout = lockout
        self.records: dict[_Key, _Record] = {}

    def remaining(self, key: _Key) -> timedelta | None:
        """How long ``key`` stays locked; ``None`` if it is not (an expired lock is dropped)."""
        record = self.records.get(key)
        if record is None or record.locked_until is None:
            return None
        remaining = record.locked_until - self._clock.now()
        if remaining > timedelta(0):
            return remaining
        del self.records[key]
        return None

    def forget_stale(self, now: datetime) -> None:
        """Drop keys with neither a running lock nor a failure inside the window."""
        self.records = {
            key: record
            for key, record in self.records.items()
            if (record.locked_until is not None and record.locked_until > now)
            or any(now - at < self._window for at in record.failures)
        }

    def full(self, key: _Key) -> bool:
        """Whether a new ``key`` would exceed the memory bound."""
        return key not in self.records and len(self.records) >= _MAX_TRACKED

    def count(self, key: _Key, now: datetime) -> bool:
        """Count a failure for ``key``; ``True`` if this one locked it."""
        record = self.records.setdefault(key, _Record())
        record.failures = [at for at in record.failures if now - at < self._window]
        record.failures.append(now)
        if len(record.failures) >= self._max_failures:
            record.failures.clear()
            record.locked_until = now + self.lockout
            return True
        return False


class LoginThrottle:
    """Counts failed logins per (name, source) and per name; known and unknown names alike."""

    def __init__(
        self,
        clock: Clock,
        *,
        max_failures: int = MAX_FAILURES,
        window: timedelta = WINDOW,
        lockout: timedelta = LOCKOUT,
        max_name_failures: int = MAX_NAME_FAILURES,
        name_window: timedelta = NAME_WINDOW,
        name_lockout: timedelta = NAME_LOCKOUT,
    ) -> None:
        self._clock = clock
        self._per_source = _Limit(clock, max_failures, window, lockout)
        self._per_name = _Limit(clock, max_name_failures, name_window, name_lockout)

    def check(self, name: str, source: str) -> None:
        """Raise ``AccountLocked`` while ``name`` is locked from ``source`` (or, for a source
        the box does not know, by the backstop)."""
        remaining = [
            left for left in (None if known(source) else self._per_name.remaining(name),
                              self._per_source.remaining((name, source)))
            if left is not None
        ]
        if remaining:
            raise AccountLocked(minutes=_minutes(max(remaining)))

    def failed(self, name: str, source: str) -> bool:
        """Count a failure for ``name`` from ``source``; ``True`` if this one locked it."""
        now = self._clock.now()
        # sweep every time: what someone typed as a user name (perhaps a password) must not
        # stay in memory longer than the window needs it
        self._per_source.forget_stale(now)
        self._per_name.forget_stale(now)
        backstop = not known(source)
        if self._per_source.full((name, source)) or (backstop and self._per_name.full(name)):
            raise AccountLocked(minutes=self.lockout_minutes())  # a flood of names: hold all
        locked_here = self._per_source.count((name, source), now)
        locked_for_strangers = backstop and self._per_name.count(name, now)
        return locked_here or locked_for_strangers

    def succeeded(self, name: str, source: str) -> None:
        """Forget the failures of ``name`` from ``source`` after a successful login there.

        The count across sources stays: one right password must not wipe what a guesser
        spread over other addresses has run up.
        """
        self._per_source.records.pop((name, source), None)

    def forget(self, name: str) -> None:
        """Forget everything about ``name`` (its account was removed)."""
        self._per_name.records.pop(name, None)
        self._per_source.records = {
            key: record for key, record in self._per_source.records.items()
            if not (isinstance(key, tuple) and key[0] == name)
        }

    def lockout_minutes(self) -> int:
        """How long a lock from one source lasts, in whole minutes."""
        return _minutes(self._per_source.lockout)

    def tracked(self) -> int:
        """How many keys the throttle holds in memory (for tests of its bound)."""
        return len(self._per_source.records) + len(self._per_name.records)


def known(source: str) -> bool:
    """Whether ``source`` is one the box knows: a PC with a device cookie, or its own CLI."""
    return source == CLI_SOURCE or source.startswith(DEVICE_SOURCE_PREFIX)


def _minutes(delta: timedelta) -> int:
    return max(1, math.ceil(delta.total_seconds() / 60))
