"""The practice's internet lines in real browsers: the real box (a subprocess) probes two lines
(from 127.0.0.1 and 127.0.0.2) against a STUN responder in the test, which silences one line,
then both, then none. The dashboard's warning comes and goes without a reload; the admin's page
"Internetleitungen" follows and shows the 24-hour image under the staff site's CSP.

R4 (the relay is the fallback: staff know which lines carry calls), R11 (the image is the box's
own, nothing of another origin; no CSP violation on either page).
"""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from tests.stun_responder import StunResponder, stun_responder

from .conftest import running_box
from .pages import collect_console_errors, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
expect = pytest.importorskip("playwright.async_api").expect

ADMIN = ("verwaltung", "Petra Berger", "Kiesel Wolke Laterne 12")
ASSISTANT = ("mfa", "Tom Weber", "Lampe Regen Fahrrad 34")
TIMEOUT_MS = 20_000


def _lines(port: int) -> str:
    """Two lines, each probed from its own loopback address (the responder reports it back)."""
    return "".join(
        f'[[turn.uplinks]]\nname = "{name}"\npublic_host = "{host}"\n'
        f'public_address = "{address}"\nlan_address = "{address}"\n'
        f'stun_target = "127.0.0.1:{port}"\n'
        for name, host, address in (("DSL", "videosprechstunde.praxis-beispiel.de", "127.0.0.1"),
                                    ("LTE", "lte.praxis-beispiel.de", "127.0.0.2")))


async def _until_states(request, staff_url: str, states: dict[str, str]) -> None:  # noqa: ANN001
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        answer = await (await request.get(f"{staff_url}/api/uplinks")).json()
        now = {line["name"]: line["state"] for line in answer["lines"]}
        if now == states:
            return
        assert time.monotonic() < deadline, now
        await asyncio.sleep(0.2)


async def test_a_dead_line_on_the_dashboard_and_the_status_page(tmp_path, browser) -> None:  # noqa: ANN001
    """Both lines up: no warning. DSL silenced: the dashboard warns (since when, calls run over
    LTE) without a reload; the status page says "ausgefallen" with the fault and what to do,
    LTE "in Ordnung", and shows the image. Both silenced: the status page follows live and the
    dashboard says patients cannot reach the practice. Both back: the warning is gone."""
    expect.set_options(timeout=TIMEOUT_MS)
    stun: StunResponder
    async with stun_responder() as stun:
        with running_box(tmp_path, _lines(stun.port)) as box:
            context = await browser.new_context(locale="de-DE",
                                                viewport={"width": 1280, "height": 900})
            context.set_default_timeout(TIMEOUT_MS)
            requests: list[str] = []
            context.on("request", lambda request: requests.append(request.url))
            api = context.request
            answer = await api.post(f"{box.staff_url}/api/onboarding", timeout=60_000, data={
                "practice": {"name": "Hausarztpraxis am Markt", "bsnr": "123456789",
                             "street": "Marktplatz 3", "postal_code": "50667", "city": "Köln",
                             "kv_region": "NO", "public_urls": [box.public_url]},
                "admin": {"username": ADMIN[0], "display_name": ADMIN[1],
                          "password": ADMIN[2]},
            })
            assert answer.ok, await answer.text()
            session = await (await api.get(f"{box.staff_url}/api/session")).json()
            answer = await api.post(f"{box.staff_url}/api/onboarding/recovery-key-stored",
                                    data={"stored": True},
                                    headers={"X-CSRF-Token": session["csrf_token"]})
            assert answer.ok, await answer.text()
            answer = await api.post(f"{box.staff_url}/api/staff", timeout=60_000, data={
                "username": ASSISTANT[0], "display_name": ASSISTANT[1], "roles": ["assistant"],
                "password": ASSISTANT[2]}, headers={"X-CSRF-Token": session["csrf_token"]})
            assert answer.ok, await answer.text()
            await _until_states(api, box.staff_url, {"DSL": "up", "LTE": "up"})

            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda message: collect_console_errors(message, errors))
            await page.goto(box.staff_url)
            await expect(page.get_by_role("heading", name="Termine", exact=True)).to_be_visible()
            await expect(page.get_by_test_id("live-status")).to_have_text("Live")
            warning = page.get_by_test_id("uplink-warning")
            await expect(warning).to_be_hidden()

            # --- DSL dies: the warning appears on the open dashboard ---------------------------
            stun.silenced.add("127.0.0.1")
            await expect(warning).to_be_visible()
            await expect(warning).to_have_text(re.compile(
                r"Die Internetleitung „DSL“ ist seit \d\d:\d\d ausgefallen\. "
                r"Videosprechstunden laufen über „LTE“\."))
            await screenshot(page, "uplinks-dashboard-warning")

            # an assistant's dashboard, opened now, warns too (without the admin's link)
            other = await browser.new_context(locale="de-DE")
            other.set_default_timeout(TIMEOUT_MS)
            answer = await other.request.post(f"{box.staff_url}/api/login", timeout=60_000, data={
                "username": ASSISTANT[0], "password": ASSISTANT[2]})
            assert answer.ok, await answer.text()
            assistant = await other.new_page()
            assistant.on("pageerror", lambda error: errors.append(str(error)))
            await assistant.goto(box.staff_url)
            assistant_warning = assistant.get_by_test_id("uplink-warning")
            await expect(assistant_warning).to_contain_text(
                "Videosprechstunden laufen über „LTE“.")
            await expect(assistant_warning.get_by_role("link")).to_have_count(0)
            await expect(assistant.get_by_role("link", name="Internetleitungen")).to_be_hidden()
            await other.close()

            # --- the admin's page: the state of each line and what to do -----------------------
            await warning.get_by_role("link", name="Zu den Internetleitungen").click()
            await expect(page.get_by_role("heading", name="Internetleitungen",
                                          exact=True)).to_be_visible()
            await expect(page.get_by_role("navigation").get_by_role(
                "link", name="Internetleitungen")).to_have_attribute("aria-current", "page")
            dsl = page.get_by_test_id("uplink").filter(has_text="DSL")
            lte = page.get_by_test_id("uplink").filter(has_text="LTE")
            await expect(dsl.get_by_test_id("uplink-state")).to_have_text("ausgefallen")
            await expect(dsl.get_by_test_id("uplink-since")).to_have_text(
                re.compile(r"seit \d\d:\d\d"))
            await expect(dsl.get_by_test_id("uplink-fault")).to_contain_text(
                f"Der STUN-Server 127.0.0.1:{stun.port} antwortet über diese Leitung nicht")
            await expect(dsl.get_by_test_id("uplink-target")).to_contain_text(
                "STUN-Server im Internet")
            await expect(lte.get_by_test_id("uplink-state")).to_have_text("in Ordnung")
            await expect(lte.get_by_test_id("uplink-rtt")).to_have_text(re.compile(r"\d+ ms"))
            await expect(lte.get_by_test_id("uplink-fault")).to_have_count(0)
            timeline = page.get_by_test_id("uplink-timeline")
            await expect(timeline).to_be_visible()
            await page.wait_for_function(
                "() => { const img = document.querySelector('[data-test=\"uplink-timeline\"]');"
                " return img && img.complete && img.naturalWidth > 0; }")
            await screenshot(page, "uplinks-status-page", full_page=True)

            # --- LTE dies too: the page follows, the dashboard says nobody gets through --------
            stun.silenced.add("127.0.0.2")
            await expect(lte.get_by_test_id("uplink-state")).to_have_text("ausgefallen")
            await page.get_by_role("link", name="Termine", exact=True).click()
            await expect(warning).to_contain_text(
                "Patienten können die Praxis gerade nicht erreichen")
            await expect(warning).to_contain_text("„LTE“ ist seit")

            # --- both come back: the warning goes -------------------------------------------------
            stun.silenced.clear()
            await expect(warning).to_be_hidden()
            assert errors == []
            assert all(url.startswith(box.staff_url) for url in requests), requests
            await context.close()
