"""Time as the box sees it: one clock object, so tests can move it (retention, code expiry)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    """The real wall clock, always timezone-aware UTC."""

    def now(self) -> datetime:
        """The current time in UTC."""
        return datetime.now(UTC)


class ManualClock(Clock):
    """A clock that stands still until moved: for tests and for replaying a day."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 8, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward by ``delta``."""
        self._now += delta

    def set(self, moment: datetime) -> None:
        """Put the clock at ``moment`` (timezone-aware)."""
        self._now = moment
