"""The vault's keys from the admin's settings: a new emergency sheet and a re-key on demand."""

from __future__ import annotations

import pytest

from appliance.errors import WrongRecoveryKey
from appliance.vault import journal
from tests.web.conftest import ADMIN_PASSWORD, DOCTOR_PASSWORD, Box


async def test_admin_issues_a_new_emergency_sheet(practice: Box) -> None:
    """R9, issue 9, defect 4: only an admin, with the password, rotates the recovery key; the new
    key is on the sheet page until confirmed; the old one opens nothing afterwards, the new one
    does; audited."""
    vault = practice.services.vault
    old_key = vault.rotate_recovery_key()  # a key we know (onboarding's is gone)
    doctor = await practice.login("dr.mueller", DOCTOR_PASSWORD)
    assert (await practice.staff.post("/api/vault/recovery-key", headers=doctor,
                                      json={"password": DOCTOR_PASSWORD})).status == 403
    admin = await practice.login("admin", ADMIN_PASSWORD)
    assert (await practice.staff.get("/notfallblatt")).status == 404
    assert (await practice.staff.post("/api/vault/recovery-key", headers=admin)).status == 400
    wrong = await practice.staff.post("/api/vault/recovery-key", headers=admin,
                                      json={"password": "falsches-passwort"})
    assert wrong.status == 401
    answer = await practice.staff.post("/api/vault/recovery-key", headers=admin,
                                       json={"password": ADMIN_PASSWORD})
    assert answer.status == 200, await answer.text()
    new_key = (await answer.json())["recovery_key"]
    sheet = await practice.staff.get("/notfallblatt")
    text = await sheet.text()
    assert sheet.status == 200 and all(group in text for group in new_key.split("-"))
    assert "recovery_key.rotated" in [e.action for e in practice.services.audit.entries(limit=5)]

    vault.seal()
    with pytest.raises(WrongRecoveryKey):
        vault.unseal_with_recovery_key(str(old_key))
    vault.unseal_with_recovery_key(new_key)


async def test_admin_re_keys_now(practice: Box) -> None:
    """R9: an admin's re-key gives the vault a new key id; every password still opens it."""
    key_id = journal.read_snapshot(practice.services.vault.path).header["key_id"]
    admin = await practice.login("admin", ADMIN_PASSWORD)
    answer = await practice.staff.post("/api/vault/rekey", headers=admin,
                                       json={"password": ADMIN_PASSWORD})
    assert answer.status == 200, await answer.text()
    assert journal.read_snapshot(practice.services.vault.path).header["key_id"] != key_id
    practice.services.vault.seal()
    await practice.login("dr.mueller", DOCTOR_PASSWORD)
    assert not practice.services.vault.sealed
