"""The first day with the box, in real browsers: set up, staff, patient, waiting room.

R1 (patient without account, full name shown to the doctor, link bound to one doctor),
R2 (an admin who is not a doctor sets up; the doctor consults), R9 (an admin locks the box;
a lock waits for the waiting patient), O1 (consent recorded and
confirmed), O4 (the waiting room, live on the dashboard), R11 (no third-party content: every
request stays on the box's two origins).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from .conftest import RunningBox
from .pages import collect_console_errors, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
expect = pytest.importorskip("playwright.async_api").expect

PRACTICE = "Hausarztpraxis am Markt"
ADMIN = ("verwaltung", "Petra Berger", "verwaltung-passwort-1")
DOCTOR = ("sommer", "Dr. Lena Sommer", "sommer-passwort-12", "987654321")
PATIENT = "Erika Mustermann"
CODE_ALPHABET = "34679ACDEFHJKMNPRTUWXY"
TIMEOUT_MS = 15_000


def _wrong_code(code: str) -> str:
    """A well-formed access code that is not ``code``."""
    first = code[0]
    other = next(c for c in CODE_ALPHABET if c != first)
    return other + code[1:]


async def test_first_day(box: RunningBox, browser) -> None:  # noqa: ANN001 - Playwright browser
    """Onboarding → recovery sheet → a doctor → patient with consent → appointment →
    the patient checks in on the public site → the dashboard shows "wartet" live (no reload)."""
    expect.set_options(timeout=TIMEOUT_MS)
    requests: list[str] = []
    staff = await browser.new_context(locale="de-DE", viewport={"width": 1280, "height": 900})
    staff.set_default_timeout(TIMEOUT_MS)
    staff.on("request", lambda request: requests.append(request.url))
    page = await staff.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: collect_console_errors(message, errors))
    await page.goto(box.staff_url)

    # --- onboarding: practice, patient links, an admin who is not a doctor ---------------------
    await expect(page.get_by_role("heading", name="Sprechzimmer einrichten")).to_be_visible()
    await page.get_by_label("Name der Praxis").fill(PRACTICE)
    await page.get_by_label("Betriebsstättennummer (BSNR)").fill("12345678")  # one digit short
    await page.get_by_label("Straße und Hausnummer").fill("Marktplatz 3")
    await page.get_by_label("Postleitzahl").fill("50667")
    await page.get_by_label("Ort", exact=True).fill("Köln")
    await page.get_by_label("Kassenärztliche Vereinigung").select_option("NO")
    await page.get_by_role("button", name="Weiter").click()
    await expect(page.get_by_text("Die Betriebsstättennummer hat genau 9 Ziffern.")).to_be_visible()
    await page.get_by_label("Betriebsstättennummer (BSNR)").fill("123456789")
    await page.get_by_role("button", name="Weiter").click()

    step_2 = page.get_by_role("heading", name="Schritt 2 von 4: Patientenlinks")
    await expect(step_2).to_be_visible()
    # proposed from [web] public_urls (it was empty, with a hint naming port 8081)
    await expect(page.get_by_label("Adressen der Patientenseite")).to_have_value(box.public_url)
    await page.get_by_role("button", name="Weiter").click()

    await expect(page.get_by_role("heading", name="Schritt 3 von 4: Administrator")).to_be_visible()
    await page.get_by_label("Benutzername").fill(ADMIN[0])
    await page.get_by_label("Name", exact=True).fill(ADMIN[1])
    await page.get_by_label("Passwort", exact=True).fill(ADMIN[2])
    await page.get_by_label("Passwort wiederholen").fill(ADMIN[2])
    await expect(page.get_by_label("Ich bin auch Ärztin/Arzt")).not_to_be_checked()
    await page.get_by_role("button", name="Box einrichten").click()

    # --- the recovery key: shown once, on the printable sheet too, confirmation required -------
    key_element = page.get_by_test_id("recovery-key")
    await expect(key_element).to_be_visible(timeout=60_000)
    recovery_key = (await key_element.inner_text()).strip()
    assert len(re.sub(r"[^A-Za-z0-9]", "", recovery_key)) >= 20
    async with staff.expect_page() as opened:
        await page.get_by_role("link", name="Notfallblatt öffnen und drucken").click()
    sheet = await opened.value
    await sheet.wait_for_load_state()
    await expect(sheet.get_by_role("heading", name="Notfallblatt")).to_be_visible()
    await expect(sheet.get_by_text(PRACTICE)).to_be_visible()
    on_sheet = await sheet.locator("#recovery-key").inner_text()
    assert re.sub(r"[\s-]", "", on_sheet) == re.sub(r"[\s-]", "", recovery_key)
    await sheet.close()

    await page.get_by_role("button", name="Weiter zur Terminübersicht").click()
    confirm_first = page.get_by_text("Bitte bestätigen Sie, dass Sie das Notfallblatt")
    await expect(confirm_first).to_be_visible()
    await page.get_by_label("Ich habe das Notfallblatt ausgedruckt und sicher verwahrt.").check()
    await page.get_by_role("button", name="Weiter zur Terminübersicht").click()
    await expect(page.get_by_role("heading", name="Termine", exact=True)).to_be_visible()
    await expect(page.get_by_test_id("practice-name")).to_have_text(PRACTICE)

    # --- the admin adds the doctor (R2: the admin is not a doctor) -----------------------------
    await page.get_by_role("link", name="Benutzer").click()
    await page.get_by_role("button", name="Benutzer hinzufügen").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Benutzername").fill(DOCTOR[0])
    await dialog.get_by_label("Name", exact=True).fill(DOCTOR[1])
    await dialog.get_by_label("Ärztin/Arzt – führt Videosprechstunden durch").check()
    await dialog.get_by_label("Lebenslange Arztnummer (LANR)").fill(DOCTOR[3])
    await dialog.get_by_label("Passwort", exact=True).fill(DOCTOR[2])
    await dialog.get_by_role("button", name="Benutzer anlegen").click()
    await expect(dialog).to_be_hidden(timeout=60_000)
    doctor_row = page.get_by_test_id("user-row").filter(has_text=DOCTOR[1])
    await expect(doctor_row).to_contain_text("Ärztin/Arzt")
    await expect(doctor_row).to_contain_text(DOCTOR[3])

    # the audit log's hash chain is checked where the admin reads the log
    await page.get_by_role("link", name="Einstellungen").click()
    await expect(page.get_by_test_id("audit-chain")).to_contain_text("Prüfkette intakt")

    # R9: the admin locks the box (nobody waits: at once); the login page says so
    await page.get_by_role("button", name="Box jetzt sperren").click()
    await page.get_by_test_id("confirm-dialog").get_by_role(
        "button", name="Box jetzt sperren").click()
    await expect(page.get_by_role("heading", name="Anmelden")).to_be_visible()
    await expect(page.get_by_test_id("sealed-notice")).to_contain_text(
        "von einer Administratorin / einem Administrator gesperrt")
    await expect(page.get_by_role("link", name="Einstellungen")).to_be_hidden()

    # --- the doctor logs in, records a patient with consent (O1), books a video appointment ----
    await page.get_by_label("Benutzername").fill(DOCTOR[0])
    await page.get_by_label("Passwort").fill(DOCTOR[2])
    await page.get_by_role("button", name="Anmelden").click()
    heading = page.get_by_role("heading", name="Termine", exact=True)
    await expect(heading).to_be_visible(timeout=60_000)
    await expect(page.get_by_test_id("current-user")).to_contain_text(DOCTOR[1])
    await expect(page.get_by_role("link", name="Benutzer")).to_be_hidden()

    await page.get_by_role("link", name="Patienten").click()
    await page.get_by_role("button", name="Patient/in anlegen").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Vollständiger Name").fill(PATIENT)
    await dialog.get_by_label("E-Mail (freiwillig)").fill("erika@example.org")
    await dialog.get_by_label("Die Einwilligung liegt vor.").check()
    await dialog.get_by_label("schriftlich").check()
    await dialog.get_by_role("button", name="Patient/in anlegen").click()
    await expect(dialog).to_be_hidden()
    patient_row = page.get_by_test_id("patient-row").filter(has_text=PATIENT)
    await expect(patient_row).to_contain_text("Einwilligung vom")
    await expect(patient_row).to_contain_text("schriftlich")

    start = datetime.now(ZoneInfo("Europe/Berlin")) + timedelta(minutes=5)
    await page.get_by_role("link", name="Neuer Termin").click()
    await page.get_by_label("Patient/in suchen").fill("muster")
    await page.get_by_test_id("patient-result").filter(has_text=PATIENT).click()
    await expect(page.get_by_test_id("chosen-name")).to_have_text(PATIENT)
    await expect(page.get_by_label("Ärztin/Arzt")).to_have_value(DOCTOR[0])
    await page.get_by_label("Datum").fill(start.strftime("%Y-%m-%d"))
    await page.get_by_label("Uhrzeit").fill(start.strftime("%H:%M"))
    await expect(page.get_by_label("Dauer (Minuten)")).to_have_value("15")
    await page.get_by_role("button", name="Termin anlegen").click()

    await expect(page.get_by_role("heading", name="Termin angelegt")).to_be_visible()
    link = await page.get_by_test_id("appointment-link").input_value()
    code = await page.get_by_test_id("appointment-code").input_value()
    assert link.startswith(f"{box.public_url}/v/"), link
    group = f"[{CODE_ALPHABET}]{{3}}"
    assert re.fullmatch(f"{group}-{group}-{group}", code), code

    await page.get_by_role("link", name="Zur Terminübersicht").click()
    row = page.get_by_test_id("appointment-row").filter(has_text=PATIENT)
    await expect(row.get_by_test_id("appointment-state")).to_have_text("geplant")
    # the actions the appointment book allows while it is planned (its rules come with the
    # session): edit, reissue, no-show, cancel
    for action in ("edit", "reissue", "no-show", "cancel"):
        await expect(row.get_by_test_id(f"{action}-appointment")).to_have_count(1)
    await expect(row).to_contain_text(start.strftime("%H:%M"))
    await expect(page.get_by_test_id("live-status")).to_have_text("Live")

    # --- the patient, in a second browser: no account, link + code, name, consent, rules -------
    patient_context = await browser.new_context(
        locale="de-DE", viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
    )
    patient_context.set_default_timeout(TIMEOUT_MS)
    patient_context.on("request", lambda request: requests.append(request.url))
    visit = await patient_context.new_page()
    visit.on("pageerror", lambda error: errors.append(str(error)))
    visit.on("console", lambda message: collect_console_errors(message, errors))
    await visit.goto(link)
    await expect(visit.get_by_test_id("practice-name")).to_have_text(PRACTICE)
    when = visit.get_by_test_id("appointment-when")
    await expect(when).to_contain_text(start.strftime("%H:%M"))

    code_input = visit.get_by_label("Bitte geben Sie Ihren Zugangscode ein")
    await code_input.fill(_wrong_code(code))
    await visit.get_by_role("button", name="Weiter").click()
    code_error = visit.get_by_test_id("code-error")
    await expect(code_error).to_contain_text("Der Zugangscode stimmt nicht")
    await expect(code_error).to_contain_text("Verbleibende Versuche: 4")

    await code_input.fill(code.lower().replace("-", " "))  # typed loosely: lower case, spaces
    await expect(code_input).to_have_value(code.replace("-", " "))
    await visit.get_by_role("button", name="Weiter").click()

    await expect(visit.get_by_role("heading", name="Wer nimmt teil?")).to_be_visible()
    await visit.get_by_label("Ihr vollständiger Name, so wie die Praxis ihn kennt").fill(PATIENT)
    await visit.get_by_role("button", name="Ins Wartezimmer").click()
    consent_missing = visit.get_by_text("Bitte setzen Sie das Häkchen, wenn Sie einwilligen.")
    await expect(consent_missing).to_be_visible()
    await visit.get_by_label("Ich willige in die Durchführung der Videosprechstunde ein").check()
    await visit.get_by_label("Ich bin in einem geschlossenen Raum").check()
    await visit.get_by_role("button", name="Ins Wartezimmer").click()

    await expect(visit.get_by_role("heading", name="Sie sind im Wartezimmer.")).to_be_visible()
    await expect(visit.get_by_text("Ihre Ärztin/Ihr Arzt holt Sie gleich herein.")).to_be_visible()
    await expect(visit.get_by_test_id("waiting-name")).to_contain_text(PATIENT)

    # --- O4: the doctor's dashboard shows the patient waiting, live, without a reload ----------
    await expect(row.get_by_test_id("appointment-state")).to_have_text("wartet")
    await expect(row.get_by_test_id("checked-in-name")).to_have_text(PATIENT)
    await expect(row.get_by_test_id("waiting-since")).to_contain_text("seit")
    await expect(row.get_by_test_id("edit-appointment")).to_have_count(0)  # she is here now
    await expect(row.get_by_test_id("cancel-appointment")).to_have_count(1)
    await expect(row.get_by_test_id("consent-missing")).to_have_count(0)
    await screenshot(page, "dashboard", full_page=True)
    await screenshot(visit, "patient-waiting", full_page=True)
    await page.set_viewport_size({"width": 390, "height": 844})
    await screenshot(page, "dashboard-phone", full_page=True)

    # a reload keeps the patient in the waiting room (the session survives)
    await visit.reload()
    await expect(visit.get_by_role("heading", name="Sie sind im Wartezimmer.")).to_be_visible()

    # R9: an admin asks to lock the box while the patient waits: it waits too, and the doctor's
    # dashboard says so live; the admin calls it off again
    admin_context = await browser.new_context(locale="de-DE")
    admin_context.set_default_timeout(TIMEOUT_MS)
    admin_context.on("request", lambda request: requests.append(request.url))
    admin = await admin_context.new_page()
    await admin.goto(f"{box.staff_url}/#/einstellungen")
    await admin.get_by_label("Benutzername").fill(ADMIN[0])
    await admin.get_by_label("Passwort").fill(ADMIN[2])
    await admin.get_by_role("button", name="Anmelden").click()
    await admin.get_by_role("link", name="Einstellungen").click()
    await admin.get_by_role("button", name="Box jetzt sperren").click()
    await admin.get_by_test_id("confirm-dialog").get_by_role(
        "button", name="Box jetzt sperren").click()
    await expect(admin.get_by_test_id("lock-pending")).to_be_visible()
    await expect(page.get_by_test_id("box-lock-pending")).to_be_visible()  # live, no reload
    await admin.get_by_role("button", name="Sperre abbrechen").click()
    await expect(admin.get_by_test_id("lock-pending")).to_be_hidden()
    await expect(page.get_by_test_id("box-lock-pending")).to_be_hidden()
    await expect(visit.get_by_role("heading", name="Sie sind im Wartezimmer.")).to_be_visible()
    await admin_context.close()

    # --- R11: nothing was loaded from anywhere but the box's two sites -------------------------
    foreign = [url for url in requests
               if not url.startswith((f"{box.staff_url}/", f"{box.public_url}/"))]
    assert requests and not foreign, foreign
    assert not errors, errors
    await patient_context.close()
    await staff.close()
