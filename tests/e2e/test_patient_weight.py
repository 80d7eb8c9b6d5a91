"""The patient page's weight on a first visit: bytes and requests up to the waiting room.

A patient on a weak mobile line sees nothing until the page has arrived. Measured in Chromium as
a first visit (empty cache) from the link to "Sie sind im Wartezimmer.": every HTTP request and
the bytes of every response body as they crossed the wire (compressed where the box compressed
them). The budget (issue 8): at most 60 KB and 15 requests.
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import RunningBox
from .test_call import PATIENT, TIMEOUT_MS, _open_contexts, _practice

pytestmark = [pytest.mark.e2e]
async_api = pytest.importorskip("playwright.async_api")
expect = async_api.expect

BUDGET_BYTES = 60 * 1024
BUDGET_REQUESTS = 15


async def measure_first_visit(box: RunningBox, browser: Any,  # noqa: ANN401
                              headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every request of a first visit up to the waiting room: url, status, body bytes.
    ``headers`` go with every request of the patient's browser (e.g. no compression)."""
    expect.set_options(timeout=TIMEOUT_MS)
    errors: list[str] = []
    staff, hooked = await _open_contexts(browser, errors)
    # a patient's phone as it is: no test hooks in the page (window.__szDebug)
    patient_context = await browser.new_context(
        locale="de-DE", viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
        extra_http_headers=headers or {})
    patient_context.set_default_timeout(TIMEOUT_MS)
    try:
        appt = await _practice(staff, box)
        visit = await patient_context.new_page()
        requests: list[Any] = []
        visit.on("request", lambda request: requests.append(request))
        await visit.goto(appt["link"])
        await visit.get_by_label("Bitte geben Sie Ihren Zugangscode ein").fill(
            appt["access_code"])
        await visit.get_by_role("button", name="Weiter").click()
        await visit.get_by_label("Ihr vollständiger Name, so wie die Praxis ihn kennt").fill(
            PATIENT)
        await visit.get_by_label(
            "Ich willige in die Durchführung der Videosprechstunde ein").check()
        await visit.get_by_label("Ich bin in einem geschlossenen Raum").check()
        await visit.get_by_role("button", name="Ins Wartezimmer").click()
        await expect(visit.get_by_role("heading", name="Sie sind im Wartezimmer.")).to_be_visible()
        await visit.wait_for_timeout(1000)  # what the waiting room loads after it shows
        seen = []
        for request in requests:
            response = await request.response()
            size = 0
            if response is not None and not request.url.endswith("/events"):
                size = (await request.sizes())["responseBodySize"]
            seen.append({"url": request.url.split("?")[0].removeprefix(box.public_url),
                         "status": response.status if response else None, "bytes": size,
                         "encoding": (response.headers.get("content-encoding", "")
                                      if response else "")})
        assert errors == [], errors
        return seen
    finally:
        await patient_context.close()
        await hooked.close()
        await staff.close()


async def test_first_visit_fits_a_weak_mobile_line(
    box: RunningBox, browser, capsys: pytest.CaptureFixture[str]  # noqa: ANN001
) -> None:
    """R13 (a patient's device and line as they are), issue 8: the first visit up to the
    waiting room costs at most 60 KB over the wire in at most 15 requests."""
    seen = await measure_first_visit(box, browser)
    total = sum(entry["bytes"] for entry in seen)
    with capsys.disabled():
        print(f"\n  first visit to the waiting room: {len(seen)} requests, {total / 1024:.1f} KB")
        for entry in sorted(seen, key=lambda e: -e["bytes"]):
            print(f"    {entry['bytes']:7d} {entry['encoding'] or '-':5} {entry['url']}")
    assert len(seen) <= BUDGET_REQUESTS, [entry["url"] for entry in seen]
    assert total <= BUDGET_BYTES
