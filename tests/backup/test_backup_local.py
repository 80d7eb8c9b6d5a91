"""Backups to a local restic repository (issue 13): a real box's vault through real restic, wiped
and restored; consistency while the vault is written; a wrong key, a tampered repository, the
retention, a replaced recovery key."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from appliance.backup.password import repository_password
from appliance.backup.service import BackupError, BackupService
from appliance.backup.staging import Sources, stage
from appliance.config import BackupSettings, BackupTarget, Settings, VaultSettings
from appliance.errors import WrongCredentials
from appliance.practice.models import Role
from appliance.practice.onboarding import onboard
from appliance.practice.services import PracticeServices
from appliance.runtime import build_services
from appliance.vault import RecoveryKey, Vault
from tests.web.conftest import ADMIN_PASSWORD, CHEAP_KDF, DOCTOR_PASSWORD, PROFILE

pytestmark = pytest.mark.skipif(shutil.which("restic") is None,
                                reason="restic is needed (tests/system-deps)")


def _settings(root: Path, **backup: object) -> Settings:
    targets = (BackupTarget(name="usb", url=str(root / "repo")),)
    return Settings(vault=VaultSettings(path=root / "box" / "vault"),
                    backup=BackupSettings(targets=targets, **backup))  # type: ignore[arg-type]


def _practice(settings: Settings) -> tuple[PracticeServices, RecoveryKey]:
    services = build_services(settings, kdf=CHEAP_KDF)
    key = onboard(services, profile=PROFILE, username="admin", display_name="Anna Admin",
                  password=ADMIN_PASSWORD, roles={Role.ADMIN})
    services.staff.add("admin", username="dr.mueller", display_name="Dr. Maria Müller",
                       roles={Role.DOCTOR}, password=DOCTOR_PASSWORD, lanr="123456701")
    for number in range(30):
        services.patients.add("admin", full_name=f"Erika Mustermann {number}",
                              email=f"erika{number}@example.org")
    return services, key


def _tables(vault: Vault) -> dict[str, object]:
    return {name: sorted(map(str, vault.db.table(name).all())) for name in vault.db.tables()}


def test_the_recovery_key_gives_the_password_and_nothing_else() -> None:
    """The repositories' password is derived from the recovery key: the same key gives the same
    password on any box, another key another one; it is not the key itself."""
    key = RecoveryKey.generate()
    assert repository_password(key) == repository_password(RecoveryKey.parse(str(key)))
    assert repository_password(key) != repository_password(RecoveryKey.generate())
    assert str(key).replace("-", "") not in repository_password(key)


async def test_backup_wipe_restore_every_record_and_the_old_passwords(tmp_path: Path) -> None:
    """Issue 13 / R10: onboard, back up (while sealed: no data key needed), lose the box's data,
    restore with the recovery key on a "new box": every record is equal and the staff log in
    with their old passwords. The box learned the password at onboarding, not the key."""
    settings = _settings(tmp_path)
    services, key = _practice(settings)
    before = _tables(services.vault)
    services.vault.seal()
    backup = BackupService(settings)
    assert backup.passwords.current.read_text().strip() == repository_password(key)
    assert oct(backup.passwords.current.stat().st_mode & 0o777) == "0o600"
    results = await backup.run()
    assert [r.ok for r in results] == [True], results
    assert backup.state()["usb"]["success"]["snapshot_id"] == results[0].snapshot_id
    services.vault.close()

    shutil.rmtree(tmp_path / "box")  # the box died
    snapshot = await BackupService(settings).restore(str(tmp_path / "repo"), key)
    assert snapshot.id.startswith(results[0].snapshot_id)  # restic 0.14 says the short id
    again = build_services(settings, kdf=CHEAP_KDF)
    again.vault.unseal("dr.mueller", DOCTOR_PASSWORD)
    assert _tables(again.vault) == before
    again.vault.seal()
    again.vault.unseal("admin", ADMIN_PASSWORD)
    with pytest.raises(WrongCredentials):
        again.vault.unseal("admin", "ein-falsches-passwort")
    # the restored box can back up again at once: the restore kept the password
    assert [r.ok for r in await BackupService(settings).run()] == [True]
    again.vault.close()


async def test_a_wrong_key_or_a_box_with_a_vault_is_refused(tmp_path: Path) -> None:
    """A wrong recovery key is refused with a clear message; a box that has a vault is never
    overwritten."""
    settings = _settings(tmp_path)
    services, key = _practice(settings)
    assert [r.ok for r in await BackupService(settings).run()] == [True]
    with pytest.raises(BackupError, match="schon einen Tresor"):
        await BackupService(settings).restore(str(tmp_path / "repo"), key)
    services.vault.close()
    shutil.rmtree(tmp_path / "box")
    with pytest.raises(BackupError, match="passt nicht zu dieser Sicherung"):
        await BackupService(settings).restore(str(tmp_path / "repo"), RecoveryKey.generate())
    assert not (tmp_path / "box" / "vault").exists()


async def test_a_flipped_byte_is_found_and_nothing_is_restored(tmp_path: Path) -> None:
    """A byte flipped in the repository's data: the weekly verification reports it (restic's
    check reads the data, the drill compares with the manifest), and a restore refuses it
    without touching the box."""
    settings = _settings(tmp_path)
    services, key = _practice(settings)
    backup = BackupService(settings)
    assert [r.ok for r in await backup.run()] == [True]
    assert [r.ok for r in await backup.verify()] == [True]
    packs = sorted((tmp_path / "repo" / "data").rglob("*"), key=lambda p: p.stat().st_size)
    biggest = [p for p in packs if p.is_file()][-1]
    raw = bytearray(biggest.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    biggest.write_bytes(bytes(raw))
    results = await backup.verify()
    assert not results[0].ok and results[0].detail
    assert backup.state()["usb"]["verification"]["ok"] is False
    services.vault.close()
    shutil.rmtree(tmp_path / "box")
    with pytest.raises(BackupError):
        await BackupService(settings).restore(str(tmp_path / "repo"), key)
    assert not (tmp_path / "box" / "vault").exists()


async def test_retention_forgets_old_snapshots(tmp_path: Path) -> None:
    """Each run forgets what the retention does not keep and prunes it."""
    settings = _settings(tmp_path, keep_daily=2, keep_weekly=0, keep_monthly=0)
    services, _ = _practice(settings)
    backup = BackupService(settings)
    for number in range(4):
        services.patients.add("admin", full_name=f"Neu Patientin {number}")
        assert [r.ok for r in await backup.run()] == [True]
    assert len(await backup.snapshots("usb")) == 1  # all four on one day: the day's last
    services.vault.close()


async def test_a_replaced_recovery_key_takes_over_the_repositories(tmp_path: Path) -> None:
    """Issue 9 and 13: after the recovery key is replaced, the next run gives the repository the
    new key's password and takes the old one's away: the new sheet restores, the old one (lost,
    photographed) opens nothing any more."""
    settings = _settings(tmp_path)
    services, old = _practice(settings)
    backup = BackupService(settings)
    assert [r.ok for r in await backup.run()] == [True]
    new = services.staff.rotate_recovery_key("admin")
    assert backup.passwords.previous.is_file()
    assert [r.ok for r in await backup.run()] == [True]
    assert not backup.passwords.previous.exists()
    services.vault.close()
    shutil.rmtree(tmp_path / "box")
    with pytest.raises(BackupError, match="passt nicht"):
        await BackupService(settings).restore(str(tmp_path / "repo"), old)
    await BackupService(settings).restore(str(tmp_path / "repo"), new)
    Vault(settings.vault.path).unseal_with_recovery_key(new)


def test_a_copy_made_while_the_vault_is_written_is_consistent(tmp_path: Path) -> None:
    """Issue 13: copies made while a writer appends and compacts (every 7 records) all open with
    the recovery key, and each holds every write acknowledged before the copy began — the
    journal valid, a compaction in between handled."""
    path = tmp_path / "vault"
    vault = Vault(path, kdf=CHEAP_KDF, compact_records=7)
    key = vault.create("admin", ADMIN_PASSWORD)
    acknowledged: list[int] = []
    stop = threading.Event()

    def write() -> None:
        number = 0
        while not stop.is_set():
            vault.db.table("stream").insert({"n": number})
            acknowledged.append(number)
            number += 1

    writer = threading.Thread(target=write)
    writer.start()
    copies = []
    try:
        while len(copies) < 25:
            while len(acknowledged) < 3 * len(copies):  # a few writes between two copies
                time.sleep(0.001)
            before = len(acknowledged)
            staging = tmp_path / f"copy-{len(copies)}"
            manifest = stage(Sources(vault=path, tls=tmp_path / "no-tls", settings=None,
                                     devices_key=None), staging, now="now")
            copies.append((before, staging, manifest))
    finally:
        stop.set()
        writer.join()
    vault.close()
    generations = {manifest["vault_generation"] for _, _, manifest in copies}
    assert len(generations) > 5, "the writer compacted too rarely to test anything"
    for before, staging, _ in copies:
        copy = Vault(staging / "vault")
        copy.unseal_with_recovery_key(key)
        numbers = {doc["n"] for doc in copy.db.table("stream").all()}
        assert set(range(before)) <= numbers, f"lost writes in {staging}"
        copy.close()


async def test_no_backup_without_the_password_says_what_to_do(tmp_path: Path) -> None:
    """A box onboarded before backups existed does not know the password yet: the run says how
    to give it the recovery key, and `backup key` takes it once checked against the vault."""
    settings = _settings(tmp_path)
    services, key = _practice(settings)
    backup = BackupService(settings)
    backup.passwords.current.unlink()
    with pytest.raises(BackupError, match="Wiederherstellungsschlüssel"):
        await backup.run()
    assert services.vault.recovery_key_matches(key)
    assert not services.vault.recovery_key_matches(RecoveryKey.generate())
    backup.keep_password(key)
    assert [r.ok for r in await backup.run()] == [True]
    services.vault.close()

