"""The practice's backup in real browsers against the real box (a subprocess) and real restic
(issue 13): the dashboard warns every member while a target has no copy and stops once a run
made one, without a reload; the admin runs a backup from the page "Datensicherung" and sees it
end with the last good copy and the growth image; a new box is restored in the onboarding
wizard from the repository an earlier box wrote (``sprechzimmer backup run``), and the admin
logs in with the old password.

R8/R10 (the practice's data leave the box only encrypted, to targets it chose), R9 (A01: the
page and its link are the admin's), R11 (everything from the box's own origin, no CSP
violation).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import RunningBox, running_box
from .pages import collect_console_errors, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("restic") is None,
                                 reason="restic is needed (tests/system-deps)")]
expect = pytest.importorskip("playwright.async_api").expect

ADMIN = ("verwaltung", "Petra Berger", "Kiesel Wolke Laterne 12")
ASSISTANT = ("mfa", "Tom Weber", "Lampe Regen Fahrrad 34")
TIMEOUT_MS = 60_000
NO_COPY = "Auf „usb“ gibt es noch keine Sicherung."


def _target(repository: Path) -> str:
    """One local target (a USB disk), backed up only by hand."""
    return f'[backup]\nschedule = ""\n[[backup.targets]]\nname = "usb"\nurl = "{repository}"\n'


async def _onboard(api: Any, box: RunningBox) -> str:  # noqa: ANN401 - Playwright's request
    """Set the box up (admin and assistant) over the API; the recovery key from the sheet."""
    answer = await api.post(f"{box.staff_url}/api/onboarding", timeout=TIMEOUT_MS, data={
        "practice": {"name": "Hausarztpraxis am Markt", "bsnr": "123456789",
                     "street": "Marktplatz 3", "postal_code": "50667", "city": "Köln",
                     "kv_region": "NO", "public_urls": [box.public_url]},
        "admin": {"username": ADMIN[0], "display_name": ADMIN[1], "password": ADMIN[2]},
    })
    assert answer.ok, await answer.text()
    recovery_key = (await answer.json())["recovery_key"]
    session = await (await api.get(f"{box.staff_url}/api/session")).json()
    headers = {"X-CSRF-Token": session["csrf_token"]}
    answer = await api.post(f"{box.staff_url}/api/onboarding/recovery-key-stored",
                            data={"stored": True}, headers=headers)
    assert answer.ok, await answer.text()
    answer = await api.post(f"{box.staff_url}/api/staff", timeout=TIMEOUT_MS, data={
        "username": ASSISTANT[0], "display_name": ASSISTANT[1], "roles": ["assistant"],
        "password": ASSISTANT[2]}, headers=headers)
    assert answer.ok, await answer.text()
    return recovery_key


async def _page(context: Any, errors: list[str]) -> Any:  # noqa: ANN401 - Playwright
    page = await context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: collect_console_errors(message, errors))
    return page


async def test_the_admin_backs_up_from_the_page_and_the_warning_goes(tmp_path, browser) -> None:  # noqa: ANN001
    """Issue 13: a box that does not know its backups' password warns on the dashboard, and the
    admin's page asks once for the recovery key (the field does not keep it). Then a target
    without a copy is a warning on every dashboard (the admin's with a link to
    "Datensicherung", the assistant's without, and no menu entry for the assistant). The admin
    runs "Jetzt sichern" on the page; the run ends with the target's last good copy (age in
    words, size, files) and the growth image, and the assistant's open dashboard drops the
    warning without a reload."""
    expect.set_options(timeout=TIMEOUT_MS)
    with running_box(tmp_path, _target(tmp_path / "usb-repo")) as box:
        context = await browser.new_context(locale="de-DE", viewport={"width": 1280, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        requests: list[str] = []
        context.on("request", lambda request: requests.append(request.url))
        recovery_key = await _onboard(context.request, box)
        # as on a box set up before backups existed: no password yet
        (tmp_path / "backup" / "password").unlink()
        errors: list[str] = []

        page = await _page(context, errors)
        await page.goto(box.staff_url)
        warning = page.get_by_test_id("backup-warning")
        await expect(warning).to_contain_text("Die Box kennt ihr Passwort noch nicht")
        await warning.get_by_role("link", name="Zur Datensicherung").click()
        await expect(page.get_by_role("heading", name="Datensicherung", exact=True)).to_be_visible()
        await expect(page.get_by_role("navigation").get_by_role(
            "link", name="Datensicherung")).to_have_attribute("aria-current", "page")
        await expect(page.get_by_role("button", name="Jetzt sichern")).to_be_disabled()
        key_form = page.get_by_test_id("backup-key")
        key_field = key_form.get_by_label("Wiederherstellungsschlüssel (vom Notfallblatt)")
        await key_field.fill(_other_key(recovery_key))
        await key_form.get_by_role("button", name="Schlüssel übernehmen").click()
        await expect(key_form).to_contain_text("gehört nicht zu diesem Tresor")
        await expect(key_field).to_have_value("")
        await key_field.fill(recovery_key)
        await key_form.get_by_role("button", name="Schlüssel übernehmen").click()
        await expect(key_form).to_have_count(0)
        assert (tmp_path / "backup" / "password").is_file()
        await expect(page.get_by_test_id("live-status")).to_have_text("Live")
        usb = page.get_by_test_id("backup-target").filter(has_text="usb")
        await expect(usb.get_by_test_id("backup-url")).to_have_text(str(tmp_path / "usb-repo"))
        await expect(usb.get_by_test_id("backup-last-success")).to_have_text("noch keine")

        other = await browser.new_context(locale="de-DE")
        other.set_default_timeout(TIMEOUT_MS)
        other.on("request", lambda request: requests.append(request.url))
        answer = await other.request.post(f"{box.staff_url}/api/login", timeout=TIMEOUT_MS, data={
            "username": ASSISTANT[0], "password": ASSISTANT[2]})
        assert answer.ok, await answer.text()
        assistant = await _page(other, errors)
        await assistant.goto(box.staff_url)
        assistant_warning = assistant.get_by_test_id("backup-warning")
        await expect(assistant_warning).to_contain_text(NO_COPY)
        await expect(assistant_warning.get_by_role("link")).to_have_count(0)
        await expect(assistant.get_by_role("link", name="Datensicherung")).to_be_hidden()
        await expect(assistant.get_by_test_id("live-status")).to_have_text("Live")
        await screenshot(assistant, "backup-dashboard-warning")

        await page.get_by_role("button", name="Jetzt sichern").click()
        activity = page.get_by_test_id("backup-activity")
        await expect(activity).to_have_attribute("data-state", "ok")
        await expect(activity).to_contain_text("Sicherung abgeschlossen")
        await expect(usb.get_by_test_id("backup-last-success")).to_have_text(
            re.compile(r"^(gerade eben|vor \d+ Minuten?) \(\d\d\.\d\d\.\d{4}, \d\d:\d\d\)$"))
        await expect(usb.get_by_test_id("backup-size")).to_have_text(
            re.compile(r"^\d+(,\d)? (kB|MB) in \d+ Dateien, davon neu übertragen: "))
        await expect(usb.get_by_test_id("backup-failure")).to_have_count(0)
        await expect(page.get_by_test_id("backup-growth")).to_be_visible()
        await page.wait_for_function(
            "() => { const img = document.querySelector('[data-test=\"backup-growth\"]');"
            " return img && img.complete && img.naturalWidth > 0; }")
        await screenshot(page, "backup-page", full_page=True)

        # the open dashboard followed the run
        await expect(assistant_warning).to_be_hidden()
        await page.get_by_role("link", name="Termine", exact=True).click()
        await expect(page.get_by_role("heading", name="Termine", exact=True)).to_be_visible()
        await expect(warning).to_be_hidden()
        assert errors == []
        assert all(url.startswith(box.staff_url) for url in requests), requests
        assert recovery_key not in box.log_text()
        await other.close()
        await context.close()


async def test_a_new_box_is_restored_in_the_onboarding_wizard(tmp_path, browser) -> None:  # noqa: ANN001
    """Issue 13: an earlier box's backup (``sprechzimmer backup run``) is restored on a new box
    in the onboarding wizard: a mistyped recovery key is refused with what to check and changes
    nothing; with the key from the sheet the backups are listed, the newest restored with its
    progress, and the login page says everyone logs in as before — the old admin password
    opens the dashboard."""
    expect.set_options(timeout=TIMEOUT_MS)
    repository = tmp_path / "usb-repo"
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    with running_box(tmp_path / "old", _target(repository)) as old:
        context = await browser.new_context(locale="de-DE")
        recovery_key = await _onboard(context.request, old)
        await context.close()
        run = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "appliance", "--config", str(old.config), "backup", "run",
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=old.config.parent)
        output = (await asyncio.wait_for(run.communicate(), 300))[0].decode()
        assert run.returncode == 0, output
        assert recovery_key not in output + old.log_text()

    with running_box(tmp_path / "new") as new:
        context = await browser.new_context(locale="de-DE", viewport={"width": 1280, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        requests: list[str] = []
        context.on("request", lambda request: requests.append(request.url))
        errors: list[str] = []
        page = await _page(context, errors)
        await page.goto(new.staff_url)
        await page.get_by_role("button", name="Aus einer Sicherung wiederherstellen").click()
        restore = page.get_by_test_id("restore")
        await expect(restore.get_by_role("heading", name="Aus einer Sicherung wiederherstellen")
                     ).to_be_visible()
        await restore.get_by_label("Adresse der Sicherung").fill(str(repository))

        # a key that is not the practice's: refused, the box stays new
        key_field = restore.get_by_label("Wiederherstellungsschlüssel (vom Notfallblatt)")
        wrong = _other_key(recovery_key)
        await key_field.fill(wrong)
        await restore.get_by_role("button", name="Sicherungen anzeigen").click()
        await expect(restore.get_by_test_id("restore-source")).to_contain_text(
            "passt nicht zu dieser Sicherung")
        status = await (await context.request.get(f"{new.staff_url}/api/status")).json()
        assert status["initialized"] is False

        await key_field.fill(recovery_key)
        await restore.get_by_role("button", name="Sicherungen anzeigen").click()
        snapshot = restore.get_by_test_id("restore-snapshot")
        await expect(snapshot).to_have_count(1)
        await expect(snapshot).to_be_checked()
        await expect(restore.get_by_test_id("restore-choice")).to_contain_text(
            re.compile(r"\d\d\.\d\d\.\d{4}, \d\d:\d\d Uhr \(neueste Sicherung, [0-9a-f]{8}\)"))
        await expect(key_field).to_have_value("")  # the key does not stay in the page
        await screenshot(page, "restore-choose")
        await restore.get_by_role("button", name="Wiederherstellen").click()

        notice = page.get_by_role("status").filter(has_text="Die Praxis ist wiederhergestellt")
        await expect(notice).to_contain_text("mit ihrem alten Benutzernamen und Passwort")
        await page.get_by_label("Benutzername").fill(ADMIN[0])
        await page.get_by_label("Passwort", exact=True).fill(ADMIN[2])
        await page.get_by_role("button", name="Anmelden").click()
        await expect(page.get_by_role("heading", name="Termine", exact=True)).to_be_visible()
        await expect(page.get_by_test_id("practice-name")).to_have_text("Hausarztpraxis am Markt")
        assert errors == []
        assert all(url.startswith(new.staff_url) for url in requests), requests
        assert recovery_key not in new.log_text() and wrong not in new.log_text()
        await context.close()


def _other_key(key: str) -> str:
    """A well-formed recovery key that is not ``key``."""
    from appliance.vault import RecoveryKey

    while (other := str(RecoveryKey.generate())) == key:
        pass
    return other
