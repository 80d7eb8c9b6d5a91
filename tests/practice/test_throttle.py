"""The login throttle on its own: counting, window, lock, unlock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from appliance.clock import ManualClock
from appliance.errors import AccountLocked
from appliance.practice.throttle import LoginThrottle


def test_fifth_failure_locks_for_fifteen_minutes() -> None:
    """R9: five failures within 15 minutes lock the name for 15 minutes."""
    clock = ManualClock()
    throttle = LoginThrottle(clock)
    assert [throttle.failed("anna") for _ in range(5)] == [False] * 4 + [True]
    with pytest.raises(AccountLocked) as raised:
        throttle.check("anna")
    assert raised.value.params == {"minutes": 15}
    clock.advance(timedelta(minutes=14, seconds=1))
    with pytest.raises(AccountLocked) as raised:
        throttle.check("anna")
    assert raised.value.params == {"minutes": 1}
    clock.advance(timedelta(minutes=1))
    throttle.check("anna")
    assert throttle.failed("anna") is False


def test_failures_outside_the_window_do_not_count() -> None:
    """Four failures, a pause longer than the window, four more: no lock."""
    clock = ManualClock()
    throttle = LoginThrottle(clock)
    for _ in range(4):
        throttle.failed("anna")
    clock.advance(timedelta(minutes=16))
    assert [throttle.failed("anna") for _ in range(4)] == [False] * 4
    throttle.check("anna")


def test_success_resets_and_names_are_separate() -> None:
    """A successful login forgets the failures; another name is not affected."""
    clock = ManualClock()
    throttle = LoginThrottle(clock)
    for _ in range(4):
        throttle.failed("anna")
    throttle.succeeded("anna")
    assert throttle.failed("anna") is False
    for _ in range(5):
        throttle.failed("ben")
    throttle.check("anna")
    with pytest.raises(AccountLocked):
        throttle.check("ben")
