"""What a patient's phone loads on a first visit, from the link to the waiting room.

Headless Chromium (Debian's, a phone-sized window, an empty cache, no test hooks in the page)
opens a real appointment link on the box (``python -m appliance serve`` on loopback), enters the
code, the name and the consents, and waits in the waiting room; every HTTP request of that page
is counted with the bytes of its response body as they crossed the wire
(``tests/e2e/test_patient_weight.py`` holds the same budget as a test).

- **as served**: the browser accepts compression, as every current browser does: the box sends
  its files brotli- or gzip-compressed under content-hashed URLs, the patient's texts only, and
  loads the call's and the device check's code when they are needed.
- **uncompressed** (baseline, same run, same files): the browser sends
  ``Accept-Encoding: identity``, so the same requests come without compression.

Budget (issue 8): at most 60 KB and 15 requests. Before this work the same visit cost 216.5 KB in
27 requests (no compression; every call and check module and the whole catalogue, staff texts
included, on the code screen), measured with this method on 2026-12-02.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from playwright.async_api import async_playwright

from tests.e2e.conftest import CHROMIUM, CHROMIUM_FLAGS, running_box
from tests.e2e.test_patient_weight import measure_first_visit

RUNS = 3


async def _measure() -> list[dict[str, Any]]:
    rows = []
    async with async_playwright() as playwright:
        playwright.selectors.set_test_id_attribute("data-test")
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                   args=CHROMIUM_FLAGS, headless=True)
        try:
            for variant, headers in (("as served", None),
                                     ("uncompressed", {"Accept-Encoding": "identity"})):
                totals = []
                for _ in range(RUNS):  # a fresh box each time: a first visit, a new link
                    with tempfile.TemporaryDirectory() as work, running_box(Path(work)) as box:
                        seen = await measure_first_visit(box, browser, headers)
                    totals.append((len(seen), sum(entry["bytes"] for entry in seen)))
                requests, size = sorted(totals)[len(totals) // 2]
                rows.append({"variant": variant, "requests": requests, "KB": size / 1024})
        finally:
            await browser.close()
    baseline = rows[1]["KB"]
    for row in rows:
        row["ratio"] = row["KB"] / baseline
    return rows


def run() -> list[dict[str, Any]]:
    """The rows for RESULTS.md."""
    return asyncio.run(_measure())
