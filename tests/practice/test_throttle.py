"""The login throttle on its own: counting, window, lock, unlock, per source and per name."""

from __future__ import annotations

from datetime import timedelta

import pytest

from appliance.clock import ManualClock
from appliance.errors import AccountLocked
from appliance.practice.throttle import LoginThrottle

PC = "192.0.2.10"
OTHER_PC = "192.0.2.11"


def test_fifth_failure_locks_for_fifteen_minutes() -> None:
    """R9: five failures within 15 minutes lock the name for 15 minutes."""
    clock = ManualClock()
    throttle = LoginThrottle(clock)
    assert [throttle.failed("anna", PC) for _ in range(5)] == [False] * 4 + [True]
    with pytest.raises(AccountLocked) as raised:
        throttle.check("anna", PC)
    assert raised.value.params == {"minutes": 15}
    clock.advance(timedelta(minutes=14, seconds=1))
    with pytest.raises(AccountLocked) as raised:
        throttle.check("anna", PC)
    assert raised.value.params == {"minutes": 1}
    clock.advance(timedelta(minutes=1))
    throttle.check("anna", PC)
    assert throttle.failed("anna", PC) is False


def test_failures_outside_the_window_do_not_count() -> None:
    """Four failures, a pause longer than the window, four more: no lock."""
    clock = ManualClock()
    throttle = LoginThrottle(clock)
    for _ in range(4):
        throttle.failed("anna", PC)
    clock.advance(timedelta(minutes=16))
    assert [throttle.failed("anna", PC) for _ in range(4)] == [False] * 4
    throttle.check("anna", PC)


def test_success_resets_and_names_are_separate() -> None:
    """A successful login forgets the failures; another name is not affected."""
    clock = ManualClock()
    throttle = LoginThrottle(clock)
    for _ in range(4):
        throttle.failed("anna", PC)
    throttle.succeeded("anna", PC)
    assert throttle.failed("anna", PC) is False
    for _ in range(5):
        throttle.failed("ben", PC)
    throttle.check("anna", PC)
    with pytest.raises(AccountLocked):
        throttle.check("ben", PC)


def test_a_lock_holds_only_for_the_source_that_caused_it() -> None:
    """Security (R9): five failures from one PC lock the name there, not on another PC."""
    throttle = LoginThrottle(ManualClock())
    assert [throttle.failed("anna", PC) for _ in range(5)] == [False] * 4 + [True]
    with pytest.raises(AccountLocked):
        throttle.check("anna", PC)
    throttle.check("anna", OTHER_PC)
    assert throttle.failed("anna", OTHER_PC) is False  # its own count starts at one


def test_many_sources_lock_the_name_for_unknown_sources() -> None:
    """Security (R9): a guesser spread over addresses is stopped by the per-name limit.

    Twelve addresses with four failures each stay under every per-source lock; the 50th
    failure on the name locks it for an hour, from every address, a fresh one too — but not
    from a known PC or the command line, which never counted towards it (issue 8, defect 5).
    """
    clock = ManualClock()
    throttle = LoginThrottle(clock)
    sources = [f"198.51.100.{n}" for n in range(1, 13)]
    locked = [throttle.failed("anna", source) for source in sources for _ in range(4)]
    assert locked == [False] * 48
    assert throttle.failed("anna", sources[0]) is True  # 5th there, 49th on the name
    assert throttle.failed("anna", sources[11]) is True  # 5th there, 50th on the name
    for source in [*sources, "203.0.113.7"]:
        with pytest.raises(AccountLocked) as raised:
            throttle.check("anna", source)
    assert raised.value.params == {"minutes": 60}
    throttle.check("anna", "cli")
    throttle.check("anna", "device:0123456789abcdef0123456789abcdef")
    assert throttle.failed("anna", "device:0123456789abcdef0123456789abcdef") is False
    throttle.check("ben", "203.0.113.7")
    clock.advance(timedelta(minutes=60))
    throttle.check("anna", "203.0.113.7")


def test_success_from_one_source_keeps_the_count_across_sources() -> None:
    """Security (R9): a right password at one PC does not wipe what others ran up."""
    throttle = LoginThrottle(ManualClock(), max_failures=5, max_name_failures=6)
    for _ in range(4):
        throttle.failed("anna", PC)
    throttle.succeeded("anna", PC)
    assert throttle.failed("anna", OTHER_PC) is False  # 5 on the name
    assert throttle.failed("anna", OTHER_PC) is True  # 6 on the name: locked everywhere
    with pytest.raises(AccountLocked):
        throttle.check("anna", PC)


def test_idle_entries_are_forgotten() -> None:
    """Security (R9): memory stays bounded; names and sources leave after their window."""
    clock = ManualClock()
    throttle = LoginThrottle(clock)
    for n in range(100):
        throttle.failed(f"tippfehler-{n}", f"198.51.100.{n}")
    assert throttle.tracked() == 200  # each (name, source) and each name
    clock.advance(timedelta(minutes=61))
    throttle.failed("anna", PC)
    assert throttle.tracked() == 2


def test_forget_drops_every_trace_of_a_name() -> None:
    """A removed account leaves no lock behind for someone who gets the name later."""
    throttle = LoginThrottle(ManualClock())
    for _ in range(5):
        throttle.failed("anna", PC)
    throttle.failed("ben", PC)
    throttle.forget("anna")
    throttle.check("anna", PC)
    assert throttle.tracked() == 2
