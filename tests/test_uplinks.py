"""The uplink monitor (issue 12): the state machine by hand, then real STUN probes on loopback
against a real responder the tests can silence, and the box's wiring (TURN for patients follows
the lines)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from appliance.config import Settings, TurnSettings, TurnUplink, VaultSettings
from appliance.runtime import build_box
from appliance.uplinks import (
    DOWN_AFTER,
    HISTORY_FILE,
    HISTORY_MINUTES,
    UP_AFTER,
    Fault,
    LineState,
    LineStatus,
    LineWatch,
    ProbeResult,
    UplinkMonitor,
    down_within_s,
    read_status,
)
from tests.stun_responder import StunResponder

LINE = TurnUplink(public_host="praxis.example", public_address="127.0.0.1",
                  lan_address="127.0.0.1")
ANSWER = ProbeResult(0.02)
MISS = ProbeResult(None, Fault.NO_ANSWER)
#: short timing for the probes on loopback (the defaults are seconds)
FAST = {"interval_s": 0.1, "timeout_s": 0.1}


def _watch() -> LineWatch:
    return LineWatch(LINE, "DSL", "127.0.0.1:3478")


def _feed(watch: LineWatch, results: list[ProbeResult], start: float = 1_000_000.0,
          step: float = 2.0) -> list[LineState]:
    """Feed ``results`` two seconds apart; the changes they caused."""
    changes = []
    for number, result in enumerate(results):
        changed = watch.record(result, start + number * step)
        if changed is not None:
            changes.append(changed)
    return changes


# --- the state machine ------------------------------------------------------------------------


def test_one_lost_probe_flaps_nothing() -> None:
    """A line that loses one probe now and then stays up (no flapping on one lost packet)."""
    watch = _watch()
    changes = _feed(watch, [ANSWER] * 5 + [MISS] + [ANSWER] * 20 + [MISS, MISS] + [ANSWER] * 5)
    assert changes == [LineState.UP]
    assert watch.state is LineState.UP


def test_misses_in_a_row_take_a_line_down_and_answers_bring_it_back() -> None:
    """DOWN_AFTER misses in a row: down; UP_AFTER answers in a row: up again (one answer alone
    does not)."""
    watch = _watch()
    assert _feed(watch, [ANSWER] * 3 + [MISS] * DOWN_AFTER) == [LineState.UP, LineState.DOWN]
    assert watch.fault is Fault.NO_ANSWER and not watch.status().healthy
    assert _feed(watch, [ANSWER] * (UP_AFTER - 1) + [MISS] + [ANSWER] * (UP_AFTER - 1)) == []
    assert watch.state is LineState.DOWN
    changes = _feed(watch, [ANSWER])
    # back, and the outage's misses no longer count against it
    assert changes == [LineState.UP] and watch.loss == 0.0


def test_a_flapping_line_does_not_flap_the_state() -> None:
    """Every other probe lost for a long time: degraded once, and then no change at all."""
    watch = _watch()
    changes = _feed(watch, [ANSWER, MISS] * 100)
    assert changes == [LineState.UP, LineState.DEGRADED]
    assert watch.state is LineState.DEGRADED
    assert watch.loss == pytest.approx(0.5)


def test_slow_answers_degrade_with_hysteresis() -> None:
    """Round trips of 300 ms: degraded; 150 ms (below the threshold, above half of it): still
    degraded; 50 ms: up."""
    watch = _watch()
    _feed(watch, [ANSWER] * 3)
    assert _feed(watch, [ProbeResult(0.3)] * 5) == [LineState.DEGRADED]
    assert _feed(watch, [ProbeResult(0.15)] * 10) == []
    assert _feed(watch, [ProbeResult(0.05)] * 5) == [LineState.UP]


def test_a_line_never_reached_is_not_called_down() -> None:
    """A line that never answered (e.g. a router without NAT loopback) stays unknown: patients
    keep getting it, and the fault says why."""
    watch = _watch()
    assert _feed(watch, [MISS] * 20) == []
    assert watch.state is LineState.UNKNOWN and watch.status().healthy
    assert watch.fault is Fault.NO_ANSWER


def test_history_is_bounded_to_a_day_of_minutes() -> None:
    """25 hours of probes: 24 h of minutes kept, the oldest dropped; each minute keeps the worst
    state it saw and its probes."""
    watch = _watch()
    start = 1_800_000_000.0 // 60 * 60
    _feed(watch, [ANSWER] * (25 * 60 * 2), start=start, step=30.0)
    assert len(watch.history) == HISTORY_MINUTES
    assert watch.history[0].start == start + 60 * 60
    _feed(watch, [MISS] * 3, start=watch.history[-1].start + 60, step=1.0)
    last = watch.status().history[-1]
    assert (last.sent, last.answered, last.worst) == (3, 0, LineState.DOWN)
    assert last.loss == 1.0 and last.rtt_ms is None
    assert len(watch.history) == HISTORY_MINUTES


# --- real probes on loopback ------------------------------------------------------------------


@contextlib.asynccontextmanager
async def monitoring(monitor: UplinkMonitor) -> AsyncIterator[UplinkMonitor]:
    task = asyncio.create_task(monitor.run())
    try:
        yield monitor
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _until(monitor: UplinkMonitor, line: int, state: LineState, within_s: float
                 ) -> LineStatus:
    deadline = time.monotonic() + within_s
    while (status := monitor.status()[line]).state is not state:
        assert time.monotonic() < deadline, f"line {line} not {state} within {within_s} s: " \
                                            f"{status}"
        await asyncio.sleep(0.02)
    return status


def _line(stun: StunResponder, host: str = "praxis.example", lan: str = "127.0.0.1"
          ) -> TurnUplink:
    return TurnUplink(public_host=host, public_address=lan, lan_address=lan,
                      stun_target=(stun.host, stun.port))


async def test_a_silent_line_goes_down_within_the_stated_time(tmp_path: Path) -> None:
    """A line whose STUN target stops answering is down within ``down_within_s`` (the wait for
    the next probe and the misses in a row); the other line stays up; listeners hear the change
    with the state before; the history file says so, for the status page and the CLI."""
    async with StunResponder() as stun_a, StunResponder() as stun_b:
        lines = [_line(stun_a, "a.example"), _line(stun_b, "b.example", "127.0.0.2")]
        heard: list[tuple[str, LineState, LineState]] = []
        monitor = UplinkMonitor(lines, history_file=tmp_path / HISTORY_FILE, **FAST)
        monitor.add_listener(lambda line, before: heard.append(
            (line.public_host, before, line.state)))
        async with monitoring(monitor):
            await _until(monitor, 0, LineState.UP, 5)
            await _until(monitor, 1, LineState.UP, 5)
            assert monitor.status()[0].rtt_ms is not None
            stun_a.silent = True
            cut = time.monotonic()
            status = await _until(monitor, 0, LineState.DOWN, 5)
            took = time.monotonic() - cut
            assert monitor.status()[1].state is LineState.UP
            assert monitor.healthy_hosts() == ("b.example",)
            assert status.fault is Fault.NO_ANSWER
            print(f"\n[uplinks] silent line down after {took:.2f} s "
                  f"(stated: {down_within_s(0.1, 0.1):.2f} s)")
            assert ("a.example", LineState.UP, LineState.DOWN) in heard
            written = read_status(tmp_path / HISTORY_FILE)
            assert written is not None
            assert [line.state for line in written[1]] == [LineState.DOWN, LineState.UP]
            stun_a.silent = False
            await _until(monitor, 0, LineState.UP, 5)
        assert monitor.healthy_hosts() == ("a.example", "b.example")
    # a new monitor takes the history up again
    again = UplinkMonitor(lines, history_file=tmp_path / HISTORY_FILE, **FAST)
    assert again.status()[0].history and again.status()[0].state is LineState.UNKNOWN


async def test_an_answer_through_the_other_line_does_not_count() -> None:
    """An external target's answer naming another public address came back through another
    line: the line is not up, and the fault says why."""
    async with StunResponder(mapped="198.51.100.7") as stun:
        monitor = UplinkMonitor([_line(stun)], **FAST)
        async with monitoring(monitor):
            await asyncio.sleep(0.5)
            status = monitor.status()[0]
    assert stun.requests >= 2
    assert status.state is LineState.UNKNOWN and status.fault is Fault.OTHER_LINE


async def test_a_lan_address_the_box_lacks_is_named() -> None:
    """Settings that do not fit the box (no such LAN address): the fault says so, nothing
    crashes."""
    async with StunResponder() as stun:
        line = TurnUplink(public_host="x.example", public_address="192.0.2.77",
                          lan_address="192.0.2.77", stun_target=(stun.host, stun.port))
        monitor = UplinkMonitor([line], **FAST)
        async with monitoring(monitor):
            await asyncio.sleep(0.3)
            assert monitor.status()[0].fault is Fault.NO_ADDRESS
    assert stun.requests == 0


def test_a_torn_history_file_is_no_history(tmp_path: Path) -> None:
    """Half a file (a crash while writing is impossible with the rename, a disk error is not):
    read as no history, the monitor starts afresh."""
    path = tmp_path / HISTORY_FILE
    path.write_text('{"format": 1, "written_at": 1, "lines": [{"name"', "utf-8")
    assert read_status(path) is None
    assert UplinkMonitor([LINE], history_file=path).status()[0].history == ()


# --- the box follows the lines ----------------------------------------------------------------


async def test_patients_get_turn_only_on_healthy_lines(tmp_path: Path) -> None:
    """R6 (the call keeps working) / issue 12: a patient admitted while line A is down gets TURN
    through line B only; once A is back, through both."""
    async with StunResponder() as stun_a, StunResponder() as stun_b:
        lines = (_line(stun_a, "a.example"), _line(stun_b, "b.example", "127.0.0.2"))
        settings = Settings(
            vault=VaultSettings(path=tmp_path / "vault"),
            turn=TurnSettings(enabled=True, secret="s" * 32, lan_address="127.0.0.1",
                              uplinks=lines, probe_interval_s=0.1, probe_timeout_s=0.1))
        box = build_box(settings)
        stun_a.silent = True
        async with monitoring(box.uplinks) as monitor:
            await _until(monitor, 1, LineState.UP, 5)
            await _until(monitor, 0, LineState.UNKNOWN, 5)
            assert _hosts(box.relay.ice_servers_for("patient", ("a", "p"))) == {
                "a.example", "b.example"}  # never reached: not known to be dead
            stun_a.silent = False
            await _until(monitor, 0, LineState.UP, 5)
            stun_a.silent = True
            await _until(monitor, 0, LineState.DOWN, 5)
            assert _hosts(box.relay.ice_servers_for("patient", ("a", "p"))) == {"b.example"}
            assert _hosts(box.relay.ice_servers_for("doctor", ("a", "d"))) == {"127.0.0.1"}
            stun_a.silent = False
            await _until(monitor, 0, LineState.UP, 5)
            assert _hosts(box.relay.ice_servers_for("patient", ("a", "p"))) == {
                "a.example", "b.example"}


def _hosts(servers: list[dict[str, object]]) -> set[str]:
    urls = servers[0]["urls"]
    assert isinstance(urls, list)
    return {str(url).split(":")[1] for url in urls}
