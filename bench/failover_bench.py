"""A call while the practice's line A dies: cut → video decoded again on both sides (issue 12).

The lab of ``tests/e2e/netlab.call_lab(lines=2)`` (network namespaces, UPLINKS.md's topology):
the real box (``python -m appliance serve``) with one coturn per relay address and its uplink
monitor probing both lines against a STUN server on the "internet"; the doctor's Chromium on the
LAN, the patient's Chromium on the internet, both Debian Chromium with the fake camera (20 fps).
A cut is ``CallLab.cut_line("a")``: every packet on line A's WAN silently dropped (no ICMP),
and the LAN PCs' default route moved to line B (the practice's failover router).

- **ours**: the full stack (our pages: media watchdog, one signaling socket per line, the
  box's push when its monitor declares the line down). A call over line A with video decoded
  both ways; each cut: cut, wait for video on both sides again (20 s at most, else "never"), wait
  until the box's status says line A down and its push reached both pages, restore, wait until
  the status has line A healthy again, then a fresh connection on line A for the next cut (the
  patient's page reloads: it gets both lines' TURN again; the doctor rebuilds until the media
  crosses line A). Every call runs 3 s on its connection before the cut: the page watchdog
  judges no silence in a connection's first 2 s (``GRACE_MS``), and a cut inside that grace would
  measure the grace (measured: up to 0.8 s more), not the watchdog.
- **chromium alone**: two bare pages with one plain RTCPeerConnection each (same lab, the same
  TURN servers and credentials as the box hands out, the offer and answer with all candidates
  handed over once by the bench, nothing after that): what Chromium does by itself. A fresh
  call per cut, on line A, 3 s old at the cut; 20 s without video again counts as "never".
- **direct**: the patient's network lets everything through (ICE finds the path through the
  practice's NAT); **relay**: the patient may only reach the web port and the TURN port of both
  public addresses (relay only).

Recovery: each page records every 50 ms how many video frames it decoded over all its
connections (old and new); the recovery of a page is the first new frame after the stall that 5
more follow within 1 s; a cut's recovery is the later of the two pages'. Figures are medians of
``CUTS`` cuts (min–max beside them). "new connection" is cut → the doctor's page built the
connection that carried the call afterwards; "push" is cut → the box's word (``restart``,
reason ``uplink``) reached the patient's page; "status down" is cut → the monitor declared line
A down. The summary line gives the slower path's median for each. Goal: ≤ 1.0 s for ours here.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Final

CUTS: Final = 5
DEADLINE_S: Final = 20.0
VARIANTS: Final = ("direct", "relay")


def _median(values: list[float | None]) -> float | None:
    """The median, a "never" (None) counting as longer than anything; None if that is it."""
    ordered = sorted(values, key=lambda v: float("inf") if v is None else v)
    if not ordered:
        return None
    middle = ordered[(len(ordered) - 1) // 2: len(ordered) // 2 + 1]
    if any(v is None for v in middle):
        return None
    return statistics.fmean(v for v in middle if v is not None)


def _range(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    nevers = len(values) - len(known)
    text = f"{min(known):.2f}–{max(known):.2f}" if known else "–"
    return text + (f", {nevers}× never" if nevers else "")


def _s(value: float | None) -> str | float:
    return "never" if value is None else round(value, 2)


async def _ours(lab: Any, playwright: Any) -> list[dict[str, Any]]:
    from tests.e2e.failover import (
        NEWEST_ID,
        PAGE_EVENTS,
        STABLE_S,
        both,
        newer_connected,
        on_line_a,
        recovered,
        start_sampling,
        until,
        until_line,
    )
    from tests.e2e.netlab import LINE_NAMES
    from tests.e2e.test_call import _frames, _until_frames
    from tests.e2e.test_call_namespaces import _browsers, _into_call

    dsl = LINE_NAMES["a"]
    cuts: list[dict[str, Any]] = []
    errors: list[str] = []
    doctor_browser, patient_browser = await _browsers(playwright, lab)
    try:
        doctor, visit = await _into_call(lab, doctor_browser, patient_browser, errors)
        for _ in range(CUTS):
            await until_line(doctor, lab, dsl, healthy=True)
            await on_line_a(doctor, visit)
            for page in (doctor, visit):
                await page.evaluate("() => { if (window.__szSamples) "
                                    "window.__szSamples.length = 0; }")
            await start_sampling(doctor, visit)
            await doctor.wait_for_timeout(STABLE_S * 1000)
            cut_at = time.time()
            lab.cut_line("a")
            try:
                times = await recovered((doctor, visit), cut_at, DEADLINE_S)
                _, down_since = await until_line(doctor, lab, dsl, healthy=False)
                pushed = f"() => (window.__sz.call.lineFailoverAt || 0) > {cut_at * 1000}"
                for page in (doctor, visit):
                    await until(page, pushed, timeout_s=10)
                events = [await page.evaluate(PAGE_EVENTS) for page in (doctor, visit)]
            finally:
                lab.restore_line("a")
            newest = events[0]["newest"] / 1000 - cut_at
            push = events[1]["push"] / 1000 - cut_at
            cuts.append({"recovery": both(times), "new_connection": newest, "push": push,
                         "down": (down_since or cut_at) - cut_at,
                         "watchdog_first": newest < events[0]["push"] / 1000 - cut_at})
            await until_line(doctor, lab, dsl, healthy=True)
            # a fresh connection for the next cut: the patient's page reloads (both lines'
            # TURN again, the hub's replay); the doctor answers its new page with a new one
            old = await doctor.evaluate(NEWEST_ID)
            await visit.reload()
            await until(doctor, newer_connected(old), timeout_s=30)
            await until(visit, newer_connected(old), timeout_s=30)
            for page in (doctor, visit):
                await _until_frames(page, await _frames(page), timeout_s=20)
    finally:
        await patient_browser.close()
        await doctor_browser.close()
    return cuts


async def _alone(lab: Any, playwright: Any) -> list[dict[str, Any]]:
    from tests.e2e.failover import (
        STABLE_S,
        bare_call_on_line_a,
        both,
        recovered,
        start_sampling,
    )
    from tests.e2e.test_call_namespaces import _browsers

    cuts: list[dict[str, Any]] = []
    doctor_browser, patient_browser = await _browsers(playwright, lab)
    try:
        for _ in range(CUTS):
            doctor, patient, _ = await bare_call_on_line_a(lab, doctor_browser, patient_browser)
            await start_sampling(doctor, patient)
            await doctor.wait_for_timeout(STABLE_S * 1000)
            cut_at = time.time()
            lab.cut_line("a")
            try:
                times = await recovered((doctor, patient), cut_at, DEADLINE_S)
            finally:
                lab.restore_line("a")
            cuts.append({"recovery": both(times)})
            await doctor.context.close()
            await patient.context.close()
            await asyncio.sleep(1.0)
    finally:
        await patient_browser.close()
        await doctor_browser.close()
    return cuts


async def _measure() -> dict[tuple[str, str], list[dict[str, Any]]]:
    from playwright.async_api import async_playwright

    from tests.e2e.netlab import call_lab

    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    async with async_playwright() as playwright:
        playwright.selectors.set_test_id_attribute("data-test")
        for variant in VARIANTS:
            with tempfile.TemporaryDirectory(prefix="failover-bench-") as directory, \
                    call_lab(Path(directory), restrict_patient=variant == "relay",
                             lines=2) as lab:
                results[variant, "ours"] = await _ours(lab, playwright)
                results[variant, "chromium alone"] = await _alone(lab, playwright)
    return results


def _rows(results: dict[tuple[str, str], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    for (variant, stack), cuts in results.items():
        recoveries = [cut["recovery"] for cut in cuts]
        row: dict[str, Any] = {
            "path": variant, "stack": stack, "cuts": len(cuts),
            "recovery s (median)": _s(_median(recoveries)), "min–max": _range(recoveries),
        }
        if stack == "ours":
            row |= {
                "new connection s": _s(_median([c["new_connection"] for c in cuts])),
                "push s": _s(_median([c["push"] for c in cuts])),
                "status down s": _s(_median([c["down"] for c in cuts])),
                "watchdog before push": f"{sum(c['watchdog_first'] for c in cuts)}/{len(cuts)}",
            }
        rows.append(row)
    return rows


def run() -> list[dict[str, Any]]:
    from tests.e2e.netlab import missing_tools

    missing = missing_tools()
    if missing is not None:
        return [{"skipped": missing}]
    return _rows(asyncio.run(_measure()))


def summary(rows: list[dict[str, Any]]) -> str:
    """The last line: the slower path's median, ours and Chromium alone."""

    def slowest(stack: str) -> str:
        medians = [row["recovery s (median)"] for row in rows if row.get("stack") == stack]
        if not medians:
            return "n/a"
        if "never" in medians:
            return "never"
        return f"{max(medians):.2f}"

    alone = slowest("chromium alone")
    return f"failover: ours {slowest('ours')} s, chromium alone {alone} s"
