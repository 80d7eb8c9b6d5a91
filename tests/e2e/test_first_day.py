"""The first day with the box, in real browsers: set up, staff, patient, waiting room.

R1 (patient without account, full name shown to the doctor, link bound to one doctor),
R2 (an admin who is not a doctor sets up; the doctor consults), O1 (consent recorded and
confirmed), O4 (the waiting room, live on the dashboard), R11 (no third-party content: every
request stays on the box's two origins).
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from .conftest import RunningBox

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PRACTICE = "Hausarztpraxis am Markt"
ADMIN = ("verwaltung", "Petra Berger", "verwaltung-passwort-1")
DOCTOR = ("sommer", "Dr. Lena Sommer", "sommer-passwort-12", "987654321")
PATIENT = "Erika Mustermann"
CODE_ALPHABET = "34679ACDEFHJKMNPRTUWXY"
TIMEOUT_MS = 15_000
#: set SZ_SCREENSHOTS=/some/dir to keep screenshots of the dashboard and the waiting room
SCREENSHOTS = os.environ.get("SZ_SCREENSHOTS")


def _wrong_code(code: str) -> str:
    """A well-formed access code that is not ``code``."""
    first = code[0]
    other = next(c for c in CODE_ALPHABET if c != first)
    return other + code[1:]


def _console(message, errors: list[str]) -> None:  # noqa: ANN001 - a Playwright message
    """Keep script errors and CSP violations (a failed request, e.g. 401 for a wrong code, is
    expected and shown on the page)."""
    text = message.text
    if message.type == "error" and "Failed to load resource" not in text:
        errors.append(text)
    elif "Content Security Policy" in text or "Refused to" in text:
        errors.append(text)


def _shot(page, name: str) -> None:  # noqa: ANN001 - a Playwright page
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


def test_first_day(box: RunningBox, browser) -> None:  # noqa: ANN001 - Playwright browser
    """Onboarding → recovery sheet → a doctor → patient with consent → appointment →
    the patient checks in on the public site → the dashboard shows "wartet" live (no reload)."""
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    requests: list[str] = []
    staff = browser.new_context(locale="de-DE", viewport={"width": 1280, "height": 900})
    staff.set_default_timeout(TIMEOUT_MS)
    staff.on("request", lambda request: requests.append(request.url))
    page = staff.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: _console(message, errors))
    page.goto(box.staff_url)

    # --- onboarding: practice, patient links, an admin who is not a doctor ---------------------
    expect(page.get_by_role("heading", name="Sprechzimmer einrichten")).to_be_visible()
    page.get_by_label("Name der Praxis").fill(PRACTICE)
    page.get_by_label("Betriebsstättennummer (BSNR)").fill("12345678")  # one digit short
    page.get_by_label("Straße und Hausnummer").fill("Marktplatz 3")
    page.get_by_label("Postleitzahl").fill("50667")
    page.get_by_label("Ort", exact=True).fill("Köln")
    page.get_by_label("Kassenärztliche Vereinigung").select_option("NO")
    page.get_by_role("button", name="Weiter").click()
    expect(page.get_by_text("Die Betriebsstättennummer hat genau 9 Ziffern.")).to_be_visible()
    page.get_by_label("Betriebsstättennummer (BSNR)").fill("123456789")
    page.get_by_role("button", name="Weiter").click()

    expect(page.get_by_role("heading", name="Schritt 2 von 4: Patientenlinks")).to_be_visible()
    page.get_by_label("Adressen der Patientenseite").fill(box.public_url)
    page.get_by_role("button", name="Weiter").click()

    expect(page.get_by_role("heading", name="Schritt 3 von 4: Administrator")).to_be_visible()
    page.get_by_label("Benutzername").fill(ADMIN[0])
    page.get_by_label("Name", exact=True).fill(ADMIN[1])
    page.get_by_label("Passwort", exact=True).fill(ADMIN[2])
    page.get_by_label("Passwort wiederholen").fill(ADMIN[2])
    expect(page.get_by_label("Ich bin auch Ärztin/Arzt")).not_to_be_checked()
    page.get_by_role("button", name="Box einrichten").click()

    # --- the recovery key: shown once, on the printable sheet too, confirmation required -------
    key_element = page.get_by_test_id("recovery-key")
    expect(key_element).to_be_visible(timeout=60_000)
    recovery_key = key_element.inner_text().strip()
    assert len(re.sub(r"[^A-Za-z0-9]", "", recovery_key)) >= 20
    with staff.expect_page() as opened:
        page.get_by_role("link", name="Notfallblatt öffnen und drucken").click()
    sheet = opened.value
    sheet.wait_for_load_state()
    expect(sheet.get_by_role("heading", name="Notfallblatt")).to_be_visible()
    expect(sheet.get_by_text(PRACTICE)).to_be_visible()
    on_sheet = sheet.locator("#recovery-key").inner_text()
    assert re.sub(r"[\s-]", "", on_sheet) == re.sub(r"[\s-]", "", recovery_key)
    sheet.close()

    page.get_by_role("button", name="Weiter zur Terminübersicht").click()
    expect(page.get_by_text("Bitte bestätigen Sie, dass Sie das Notfallblatt")).to_be_visible()
    page.get_by_label("Ich habe das Notfallblatt ausgedruckt und sicher verwahrt.").check()
    page.get_by_role("button", name="Weiter zur Terminübersicht").click()
    expect(page.get_by_role("heading", name="Termine", exact=True)).to_be_visible()
    expect(page.get_by_test_id("practice-name")).to_have_text(PRACTICE)

    # --- the admin adds the doctor (R2: the admin is not a doctor) -----------------------------
    page.get_by_role("link", name="Benutzer").click()
    page.get_by_role("button", name="Benutzer hinzufügen").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Benutzername").fill(DOCTOR[0])
    dialog.get_by_label("Name", exact=True).fill(DOCTOR[1])
    dialog.get_by_label("Ärztin/Arzt – führt Videosprechstunden durch").check()
    dialog.get_by_label("Lebenslange Arztnummer (LANR)").fill(DOCTOR[3])
    dialog.get_by_label("Passwort", exact=True).fill(DOCTOR[2])
    dialog.get_by_role("button", name="Benutzer anlegen").click()
    expect(dialog).to_be_hidden(timeout=60_000)
    doctor_row = page.get_by_test_id("user-row").filter(has_text=DOCTOR[1])
    expect(doctor_row).to_contain_text("Ärztin/Arzt")
    expect(doctor_row).to_contain_text(DOCTOR[3])

    page.get_by_role("button", name="Abmelden").click()
    expect(page.get_by_role("heading", name="Anmelden")).to_be_visible()

    # --- the doctor logs in, records a patient with consent (O1), books a video appointment ----
    page.get_by_label("Benutzername").fill(DOCTOR[0])
    page.get_by_label("Passwort").fill(DOCTOR[2])
    page.get_by_role("button", name="Anmelden").click()
    expect(page.get_by_role("heading", name="Termine", exact=True)).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("current-user")).to_contain_text(DOCTOR[1])
    expect(page.get_by_role("link", name="Benutzer")).to_be_hidden()

    page.get_by_role("link", name="Patienten").click()
    page.get_by_role("button", name="Patient/in anlegen").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Vollständiger Name").fill(PATIENT)
    dialog.get_by_label("E-Mail (freiwillig)").fill("erika@example.org")
    dialog.get_by_label("Die Einwilligung liegt vor.").check()
    dialog.get_by_label("schriftlich").check()
    dialog.get_by_role("button", name="Patient/in anlegen").click()
    expect(dialog).to_be_hidden()
    patient_row = page.get_by_test_id("patient-row").filter(has_text=PATIENT)
    expect(patient_row).to_contain_text("Einwilligung vom")
    expect(patient_row).to_contain_text("schriftlich")

    start = datetime.now(ZoneInfo("Europe/Berlin")) + timedelta(minutes=5)
    page.get_by_role("link", name="Neuer Termin").click()
    page.get_by_label("Patient/in suchen").fill("muster")
    page.get_by_test_id("patient-result").filter(has_text=PATIENT).click()
    expect(page.get_by_test_id("chosen-name")).to_have_text(PATIENT)
    expect(page.get_by_label("Ärztin/Arzt")).to_have_value(DOCTOR[0])
    page.get_by_label("Datum").fill(start.strftime("%Y-%m-%d"))
    page.get_by_label("Uhrzeit").fill(start.strftime("%H:%M"))
    expect(page.get_by_label("Dauer (Minuten)")).to_have_value("15")
    page.get_by_role("button", name="Termin anlegen").click()

    expect(page.get_by_role("heading", name="Termin angelegt")).to_be_visible()
    link = page.get_by_test_id("appointment-link").input_value()
    code = page.get_by_test_id("appointment-code").input_value()
    assert link.startswith(f"{box.public_url}/v/"), link
    group = f"[{CODE_ALPHABET}]{{3}}"
    assert re.fullmatch(f"{group}-{group}-{group}", code), code

    page.get_by_role("link", name="Zur Terminübersicht").click()
    row = page.get_by_test_id("appointment-row").filter(has_text=PATIENT)
    expect(row.get_by_test_id("appointment-state")).to_have_text("geplant")
    expect(row).to_contain_text(start.strftime("%H:%M"))
    expect(page.get_by_test_id("live-status")).to_have_text("Live")

    # --- the patient, in a second browser: no account, link + code, name, consent, rules -------
    patient_context = browser.new_context(
        locale="de-DE", viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
    )
    patient_context.set_default_timeout(TIMEOUT_MS)
    patient_context.on("request", lambda request: requests.append(request.url))
    visit = patient_context.new_page()
    visit.on("pageerror", lambda error: errors.append(str(error)))
    visit.on("console", lambda message: _console(message, errors))
    visit.goto(link)
    expect(visit.get_by_test_id("practice-name")).to_have_text(PRACTICE)
    expect(visit.get_by_test_id("appointment-when")).to_contain_text(start.strftime("%H:%M"))

    code_input = visit.get_by_label("Bitte geben Sie Ihren Zugangscode ein")
    code_input.fill(_wrong_code(code))
    visit.get_by_role("button", name="Weiter").click()
    expect(visit.get_by_test_id("code-error")).to_contain_text("Der Zugangscode stimmt nicht")
    expect(visit.get_by_test_id("code-error")).to_contain_text("Verbleibende Versuche: 4")

    code_input.fill(code.lower().replace("-", " "))  # typed loosely: lower case, spaces
    expect(code_input).to_have_value(code.replace("-", " "))
    visit.get_by_role("button", name="Weiter").click()

    expect(visit.get_by_role("heading", name="Wer nimmt teil?")).to_be_visible()
    visit.get_by_label("Ihr vollständiger Name, so wie die Praxis ihn kennt").fill(PATIENT)
    visit.get_by_role("button", name="Ins Wartezimmer").click()
    expect(visit.get_by_text("Bitte setzen Sie das Häkchen, wenn Sie einwilligen.")).to_be_visible()
    visit.get_by_label("Ich willige in die Durchführung der Videosprechstunde ein").check()
    visit.get_by_label("Ich bin in einem geschlossenen Raum").check()
    visit.get_by_role("button", name="Ins Wartezimmer").click()

    expect(visit.get_by_role("heading", name="Sie sind im Wartezimmer.")).to_be_visible()
    expect(visit.get_by_text("Ihre Ärztin/Ihr Arzt holt Sie gleich herein.")).to_be_visible()
    expect(visit.get_by_test_id("waiting-name")).to_contain_text(PATIENT)

    # --- O4: the doctor's dashboard shows the patient waiting, live, without a reload ----------
    expect(row.get_by_test_id("appointment-state")).to_have_text("wartet")
    expect(row.get_by_test_id("checked-in-name")).to_have_text(PATIENT)
    expect(row.get_by_test_id("waiting-since")).to_contain_text("seit")
    expect(row.get_by_test_id("consent-missing")).to_have_count(0)
    _shot(page, "dashboard")
    _shot(visit, "patient-waiting")
    page.set_viewport_size({"width": 390, "height": 844})
    _shot(page, "dashboard-phone")

    # a reload keeps the patient in the waiting room (the session survives)
    visit.reload()
    expect(visit.get_by_role("heading", name="Sie sind im Wartezimmer.")).to_be_visible()

    # --- R11: nothing was loaded from anywhere but the box's two sites -------------------------
    foreign = [url for url in requests
               if not url.startswith((f"{box.staff_url}/", f"{box.public_url}/"))]
    assert requests and not foreign, foreign
    assert not errors, errors
    patient_context.close()
    staff.close()
