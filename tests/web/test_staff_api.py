"""The staff API end to end over HTTP: onboarding, login, users, patients, appointments."""

from __future__ import annotations

import re
from datetime import timedelta

from msgspec.structs import replace

from .conftest import ADMIN_PASSWORD, ASSISTANT_PASSWORD, DOCTOR_PASSWORD, Box

ONBOARDING = {
    "practice": {
        "name": "Praxis Dr. Beispiel", "bsnr": "123456789", "street": "Hauptstr. 1",
        "postal_code": "50667", "city": "Köln", "kv_region": "NO",
        "public_urls": ["https://videosprechstunde.praxis-beispiel.de"],
    },
    "admin": {"username": "admin", "display_name": "Anna Admin", "password": ADMIN_PASSWORD},
}


async def test_onboarding_creates_vault_and_shows_recovery_key_once(box: Box) -> None:
    """The wizard's call creates the vault, logs the admin in and shows the key on the sheet."""
    status = await (await box.staff.get("/api/status")).json()
    assert status["initialized"] is False
    response = await box.staff.post("/api/onboarding", json=ONBOARDING)
    assert response.status == 200, await response.text()
    key = (await response.json())["recovery_key"]
    assert re.fullmatch(r"[0-9A-Z]{4}(-[0-9A-Z]{1,4})+", key)
    session = await (await box.staff.get("/api/session")).json()
    assert session["recovery_key_pending"] is True and session["user"]["username"] == "admin"
    sheet = await box.staff.get("/notfallblatt")
    sheet_text = await sheet.text()
    assert sheet.status == 200 and key.split("-")[0] in sheet_text
    headers = {"X-CSRF-Token": session["csrf_token"]}
    confirmed = await box.staff.post("/api/onboarding/recovery-key-stored",
                                     json={"stored": True}, headers=headers)
    assert confirmed.status == 200
    assert (await box.staff.get("/notfallblatt")).status == 404  # shown once only
    again = await box.staff.post("/api/onboarding", json=ONBOARDING)
    assert again.status == 409


async def test_onboarding_with_bad_bsnr_names_the_field_and_creates_nothing(box: Box) -> None:
    """A typo in the BSNR gives a 400 naming the field; no vault is created."""
    bad = {**ONBOARDING, "practice": {**ONBOARDING["practice"], "bsnr": "12345"}}
    response = await box.staff.post("/api/onboarding", json=bad)
    body = await response.json()
    assert response.status == 400 and "bsnr" in body["field"]
    assert box.services.vault.initialized is False


async def test_login_unseals_and_wrong_password_is_401(practice: Box) -> None:
    """After a restart the vault is sealed; the first staff login opens it."""
    practice.services.vault.seal()
    status = await (await practice.staff.get("/api/status")).json()
    assert status["sealed"] is True
    wrong = await practice.staff.post("/api/login", json={"username": "admin",
                                                          "password": "falsch-falsch-1"})
    assert wrong.status == 401
    assert practice.services.vault.sealed
    await practice.login("dr.mueller", DOCTOR_PASSWORD)
    assert not practice.services.vault.sealed


async def test_account_lockout_after_repeated_failures(practice: Box) -> None:
    """Five wrong passwords lock the account, even for the right password (R9 A07)."""
    for _ in range(5):
        await practice.staff.post("/api/login", json={"username": "dr.mueller",
                                                      "password": "falsch-falsch-1"})
    locked = await practice.staff.post("/api/login", json={"username": "dr.mueller",
                                                           "password": DOCTOR_PASSWORD})
    body = await locked.json()
    assert locked.status == 429 and body["error"] == "account_locked" and body["minutes"] > 0


async def test_appointment_lifecycle_for_staff(practice: Box) -> None:
    """Create → link and code readable → reissue changes both → cancel (R1: one doctor)."""
    headers = await practice.login("admin", ADMIN_PASSWORD)
    patient = await (await practice.staff.post("/api/patients", headers=headers, json={
        "full_name": "Erika Mustermann",
        "consent": {"given_on": "2026-11-20", "method": "written"}})).json()
    assert patient["consent"]["method"] == "written"
    start = (practice.services.clock.now() + timedelta(minutes=10)).isoformat()
    created = await practice.staff.post("/api/appointments", headers=headers, json={
        "doctor": "dr.mueller", "patient_id": patient["id"], "start": start})
    appt = await created.json()
    assert created.status == 201, appt
    assert appt["link"].startswith("https://videosprechstunde.praxis-beispiel.de/v/")
    assert re.fullmatch(r"[A-Z0-9]{3}-[A-Z0-9]{3}-[A-Z0-9]{3}", appt["access_code"])
    assert appt["doctor_name"] == "Dr. Maria Müller" and appt["state"] == "scheduled"
    today = await (await practice.staff.get("/api/appointments", headers=headers,
                                            params={"date": start[:10]})).json()
    assert [a["id"] for a in today] == [appt["id"]]
    reissued = await (await practice.staff.post(
        f"/api/appointments/{appt['id']}/reissue", headers=headers)).json()
    assert reissued["link"] != appt["link"] and reissued["access_code"] != appt["access_code"]
    cancelled = await (await practice.staff.post(
        f"/api/appointments/{appt['id']}/cancel", headers=headers)).json()
    assert cancelled["state"] == "cancelled"


async def test_appointment_for_a_non_doctor_is_refused(practice: Box) -> None:
    """Only a doctor holds consultations: an assistant cannot be the appointment's doctor (R2)."""
    headers = await practice.login("admin", ADMIN_PASSWORD)
    patient = await (await practice.staff.post("/api/patients", headers=headers, json={
        "full_name": "Erika Mustermann"})).json()
    response = await practice.staff.post("/api/appointments", headers=headers, json={
        "doctor": "mfa", "patient_id": patient["id"],
        "start": practice.services.clock.now().isoformat()})
    assert response.status in (400, 409)


async def test_audit_log_records_actions_without_content(practice: Box) -> None:
    """Staff actions are logged (who, what, when) without names or codes."""
    headers = await practice.login("admin", ADMIN_PASSWORD)
    await practice.staff.post("/api/patients", headers=headers, json={
        "full_name": "Erika Mustermann"})
    entries = await (await practice.staff.get("/api/audit", headers=headers)).json()
    assert any(e["action"].startswith("patient") for e in entries)
    assert "Mustermann" not in str(entries)
    assert practice.services.audit.verify() >= len(entries) - 1


async def test_audit_chain_check_shows_tampering(practice: Box) -> None:
    """The admin sees whether the audit log's hash chain holds, and where it breaks."""
    headers = await practice.login("admin", ADMIN_PASSWORD)
    intact = await (await practice.staff.get("/api/audit/verify", headers=headers)).json()
    assert intact["ok"] is True and intact["checked"] > 0
    table = practice.services.vault.db.table("audit")
    victim = sorted(table.all(), key=lambda doc: doc["seq"])[1]
    table.update({"actor": "jemand-anderes"}, doc_ids=[victim.doc_id])
    broken = await (await practice.staff.get("/api/audit/verify", headers=headers)).json()
    assert broken == {"ok": False, "checked": 0, "broken_at": victim["seq"]}


async def test_only_the_doctor_reopens_an_ended_call(practice: Box) -> None:
    """After the end the link opens nothing; the appointment's doctor may reopen it (O3)."""
    services = practice.services
    patient = services.patients.add("admin", full_name="Erika Mustermann")
    appt = services.appointments.create(
        "admin", doctor="dr.mueller", patient_id=patient.id,
        start=services.clock.now() + timedelta(minutes=5))
    token = appt.link_token
    services.reception.check_in(token, appt.access_code, full_name="Erika Mustermann",
                                consent_confirmed=True, rules_confirmed=True)
    services.calls.admit("dr.mueller", appt.id)
    services.calls.end("dr.mueller", appt.id)
    closed = await practice.public.post(f"/v/{token}/code", json={"code": appt.access_code})
    assert closed.status == 410

    headers = await practice.login("mfa", ASSISTANT_PASSWORD)
    refused = await practice.staff.post(f"/api/appointments/{appt.id}/reopen", headers=headers)
    assert refused.status == 403
    headers = await practice.login("dr.mueller", DOCTOR_PASSWORD)
    reopened = await practice.staff.post(f"/api/appointments/{appt.id}/reopen", headers=headers)
    assert reopened.status == 200 and (await reopened.json())["state"] == "waiting"
    again = await practice.public.post(f"/v/{token}/code", json={"code": appt.access_code})
    assert again.status == 200


async def test_the_session_carries_the_appointment_books_rules(practice: Box) -> None:
    """The pages offer an action only in the states the book allows it (one place of the
    rules): a cancel in a state the session does not list is refused by the book too."""
    headers = await practice.login("mfa", ASSISTANT_PASSWORD)
    rules = (await (await practice.staff.get("/api/session")).json())["appointment_rules"]
    assert rules["actions"]["edit"] == ["scheduled"]
    assert rules["actions"]["cancel"] == rules["actions"]["no_show"] == ["scheduled", "waiting"]
    assert rules["actions"]["reopen"] == ["ended"]
    assert rules["closed"] == ["ended", "cancelled", "no_show"]
    assert rules["open"] == ["scheduled", "waiting", "in_call"] and rules["max_guests"] == 2
    services = practice.services
    patient = services.patients.add("admin", full_name="Erika Mustermann")
    appt = services.appointments.create("admin", doctor="dr.mueller", patient_id=patient.id,
                                        start=services.clock.now() + timedelta(hours=1))
    cancelled = await practice.staff.post(f"/api/appointments/{appt.id}/cancel", headers=headers)
    assert cancelled.status == 200 and "cancelled" not in rules["actions"]["cancel"]
    again = await practice.staff.post(f"/api/appointments/{appt.id}/cancel", headers=headers)
    assert again.status == 409


async def test_links_point_to_the_practices_first_public_address(practice: Box) -> None:
    """A link is the practice's first public address + /v/ + token (the public site's page)."""
    await practice.login("mfa", ASSISTANT_PASSWORD)
    services = practice.services
    patient = services.patients.add("admin", full_name="Erika Mustermann")
    appt = services.appointments.create("admin", doctor="dr.mueller", patient_id=patient.id,
                                        start=services.clock.now() + timedelta(hours=1))

    async def link() -> str:
        return (await (await practice.staff.get(f"/api/appointments/{appt.id}")).json())["link"]

    profile = services.office.profile()
    assert profile is not None
    services.office.save_profile("admin", replace(profile, public_urls=(
        "https://lte.praxis-beispiel.de/", "https://dsl.praxis-beispiel.de")))
    assert await link() == f"https://lte.praxis-beispiel.de/v/{appt.link_token}"
    page = await practice.public.get(f"/v/{appt.link_token}")
    assert page.status == 200  # the public site serves the page a link opens
