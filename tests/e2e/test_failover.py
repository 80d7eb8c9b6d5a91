"""A call while one of the practice's two internet lines dies, in real Chromium (issue 12).

The lab of ``netlab.call_lab(lines=2)``: the box with coturn per relay address and its uplink
monitor probing both lines against a STUN server on the internet, the doctor's Chromium on the
LAN, the patient's Chromium on the internet. Line A (DSL) dies as a dead DSL line does (every
packet on its router's WAN silently dropped, the LAN PCs' default route moved to router B by the
practice's failover router: ``CallLab.cut_line``). Once with the patient on a direct path, once
relay-only. In the same run, "Chromium alone" (two bare pages, no watchdog, no box) is measured
in the same lab as the baseline. The recovery times (cut → video decoded again on both sides)
are printed, never asserted; ``bench/failover_bench.py`` takes medians of several cuts.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from appliance.uplinks import LineState

from .failover import (
    PAGE_EVENTS,
    SAMPLES,
    SELECTED_PATHS,
    STABLE_S,
    bare_call_on_line_a,
    both,
    describe,
    on_line_a,
    paths,
    recovered,
    recovery_s,
    shown,
    start_sampling,
    until,
    until_line,
    until_more_frames,
)
from .netlab import LINE_NAMES, CallLab, call_lab, missing_tools
from .test_call import CONNECTION_IDS
from .test_call_namespaces import _browsers, _into_call, expect

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(missing_tools() is not None, reason=missing_tools() or ""),
]
async_api = pytest.importorskip("playwright.async_api")

#: how long a page may take to decode video again after the cut (generous: a deadline, no
#: timing assertion), and how long "Chromium alone" is given before it counts as "never"
RECOVERY_DEADLINE_S = 30.0
ALONE_DEADLINE_S = 20.0
DSL, LTE = LINE_NAMES["a"], LINE_NAMES["b"]

#: the hosts the patient's page has a working signaling socket to
SIGNALING_HOSTS = """() => window.__sz.signaling.links
  .filter((link) => link.socket && link.ready).map((link) => new URL(link.url).hostname).sort()"""


@pytest.fixture(params=["direct", "relay"])
def two_lines(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CallLab]:
    """The two-line lab, the patient unrestricted (direct path through the practice's NAT) or
    behind a firewall that lets only the web page and TURN of both lines out (relay only)."""
    with call_lab(tmp_path, restrict_patient=request.param == "relay", lines=2) as lab:
        yield lab


@pytest.fixture
async def playwright() -> AsyncIterator[Any]:
    async with async_api.async_playwright() as running:
        running.selectors.set_test_id_attribute("data-test")
        yield running


async def test_call_moves_to_the_other_line(
    two_lines: CallLab, playwright: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """R6 (reconnect on failure), R4 (media browser ↔ browser again, the box's relay only as
    the fallback). Issue 12: a call over line A goes on over line B when A dies.

    The call runs over line A (relay-only: the patient's relay is A's public address) with video
    decoded on both sides; A dies; both sides decode video again (the doctor's media watchdog
    builds a new connection, the patient's page signals over its socket on line B; the box's
    uplink monitor declares A down and pushes the healthy line's TURN), and the patient's media
    no longer goes to A's public address. The box's status says A is down. A comes back (the
    LAN's default route too, which moves a direct path once more): the call keeps decoding and
    the status says A is up again. Then "Chromium alone" in the same lab: two bare pages, A
    dies, whether and when Chromium decodes again by itself (measured, not asserted).
    """
    lab = two_lines
    variant = "relay" if lab.patient_restricted else "direct"
    errors: list[str] = []
    doctor_browser, patient_browser = await _browsers(playwright, lab)
    try:
        doctor, visit = await _into_call(lab, doctor_browser, patient_browser, errors)
        await until_line(doctor, lab, DSL, healthy=True)
        await until_line(doctor, lab, LTE, healthy=True)
        before = await on_line_a(doctor, visit)
        if lab.patient_restricted:
            assert before[-1]["local"] == "relay", before  # the patient really relays
        old_ids = {cid for cid, _ in await doctor.evaluate(CONNECTION_IDS)}
        # the patient's page signals over both lines (public_urls lists both hosts)
        assert await visit.evaluate(SIGNALING_HOSTS) == sorted(
            urlsplit(url).hostname for url in lab.public_urls), "one signaling socket per line"

        await start_sampling(doctor, visit)
        await doctor.wait_for_timeout(STABLE_S * 1000)
        cut_at = time.time()
        lab.cut_line("a")
        times = await recovered((doctor, visit), cut_at, RECOVERY_DEADLINE_S)
        assert None not in times, f"no video again within {RECOVERY_DEADLINE_S} s: {times}"
        for page in (doctor, visit):  # and it goes on
            await until_more_frames(page, 20, timeout_s=10)
        line, after = await paths(doctor, visit)
        assert line == "b", describe(after)  # no longer through 203.0.113.1
        state, down_since = await until_line(doctor, lab, DSL, healthy=False)
        assert state is LineState.DOWN
        # the box tells both pages (the patient's over its socket on line B)
        pushed = f"() => (window.__sz.call.lineFailoverAt || 0) > {cut_at * 1000}"
        for page in (doctor, visit):
            await until(page, pushed, timeout_s=10)
            # and each page says what happened, in plain words
            await expect(page.get_by_test_id("call-status")).to_contain_text(
                "über die andere Internetleitung der Praxis")
        events = [await page.evaluate(PAGE_EVENTS) for page in (doctor, visit)]
        assert max(cid for cid, _ in await doctor.evaluate(CONNECTION_IDS)) > max(old_ids)

        lab.restore_line("a")
        restored_at = time.time()
        state, _ = await until_line(doctor, lab, DSL, healthy=True)
        back_in_status_s = time.time() - restored_at
        # a direct path moves once more (the LAN's route goes back to line A): give it the same
        # deadline, then video must go on on both sides
        for page in (doctor, visit):
            await until_more_frames(page, 20, timeout_s=RECOVERY_DEADLINE_S)
        _, back = await paths(doctor, visit)
        # an interruption around the restore (None: video never stalled on that side; a direct
        # path breaks one way only: the doctor's packets leave by line A again, the patient's
        # still come in by line B)
        again = [recovery_s(await page.evaluate(SAMPLES), restored_at) for page in (doctor, visit)]
        assert not errors, errors
        for context in (*doctor.context.browser.contexts, *visit.context.browser.contexts):
            await context.close()

        # --- Chromium alone, same lab, same run ---
        bare_doctor, bare_patient, bare_before = await bare_call_on_line_a(
            lab, doctor_browser, patient_browser)
        await start_sampling(bare_doctor, bare_patient)
        await bare_doctor.wait_for_timeout(STABLE_S * 1000)
        bare_cut_at = time.time()
        lab.cut_line("a")
        try:
            alone = await recovered((bare_doctor, bare_patient), bare_cut_at, ALONE_DEADLINE_S)
            bare_after = (await bare_doctor.evaluate(SELECTED_PATHS)
                          + await bare_patient.evaluate(SELECTED_PATHS))
        finally:
            lab.restore_line("a")
    finally:
        await patient_browser.close()
        await doctor_browser.close()

    ours = both(times)
    push = [e["push"] / 1000 - cut_at if e["push"] else None for e in events]
    rebuilt = events[0]["newest"] / 1000 - cut_at
    with capsys.disabled():
        print(f"\n  {variant}: ours {shown(ours)} s (doctor {shown(times[0])}, patient "
              f"{shown(times[1])}); new connection {rebuilt:.2f} s after the cut; the box's "
              f"push {', '.join(shown(p) for p in push)} s (doctor, patient); line A down in "
              f"the status {shown((down_since or cut_at) - cut_at)} s; path {describe(before)}"
              f" -> {describe(after)} -> after restore (line A "
              f"{state.value} in the status {back_in_status_s:.1f} s later; a stall after the "
              "restore: "
              + ", ".join(f"{side} " + ("none" if t is None else f"video back at {t:.2f} s")
                          for side, t in zip(("doctor", "patient"), again, strict=True))
              + f") {describe(back)}"
              f"\n  {variant}: chromium alone {shown(both(alone))} s (doctor {shown(alone[0])},"
              f" patient {shown(alone[1])}); path {describe(bare_before)} -> "
              f"{describe(bare_after)}")
