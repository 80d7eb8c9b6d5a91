"""The Vault facade: create, seal, unseal, members, recovery, status."""

from __future__ import annotations

import json
import logging
import shutil
import stat
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from tinydb import Query

from appliance.errors import (
    Conflict,
    InvalidInput,
    MalformedRecoveryKey,
    NotFound,
    VaultAlreadyInitialized,
    VaultNotInitialized,
    VaultSealed,
    WrongCredentials,
    WrongRecoveryKey,
)
from appliance.vault import KdfParams, RecoveryKey, Vault, VaultStatus
from appliance.vault.journal import read_snapshot

from .conftest import PASSWORD

APPOINTMENT = {
    "patient": "p-0001",
    "start": "2026-01-05T08:15:00+01:00",
    "kind": "video",
    "notes": ["Kontrolle", {"bp": [120, 80]}],
}


def test_round_trip_and_reopen(vault: Vault, make_vault: Callable[..., Vault]) -> None:
    """Data written to an unsealed vault is there after seal, and in a new Vault object."""
    table = vault.db.table("appointments")
    doc_id = table.insert(APPOINTMENT)
    vault.db.insert({"default": True})
    assert table.get(doc_id=doc_id) == APPOINTMENT
    vault.seal()
    assert vault.sealed
    vault.unseal("anna", PASSWORD)
    assert vault.db.table("appointments").get(doc_id=doc_id) == APPOINTMENT
    vault.close()

    reopened = make_vault()
    assert reopened.sealed and reopened.initialized
    reopened.unseal("anna", PASSWORD)
    assert reopened.db.table("appointments").all() == [APPOINTMENT]
    assert reopened.db.all() == [{"default": True}]
    assert reopened.db.tables() == {"appointments", "_default"}


def test_init_touches_no_file(tmp_path: Path) -> None:
    """Vault() does no disk I/O; an uninitialised vault says so."""
    vault = Vault(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()
    assert not vault.initialized and vault.sealed
    assert vault.status() == VaultStatus(
        initialized=False, sealed=True, member_count=0, generation=0, journal_records=0
    )
    with pytest.raises(VaultNotInitialized):
        vault.unseal("anna", PASSWORD)
    with pytest.raises(VaultNotInitialized):
        vault.unseal_with_recovery_key(RecoveryKey.generate())
    with pytest.raises(VaultNotInitialized):
        vault.check_password("anna", PASSWORD)
    with pytest.raises(VaultSealed):
        _ = vault.db
    assert not (tmp_path / "nowhere").exists()


def test_file_modes(vault: Vault, vault_path: Path) -> None:
    """The directory is 0700, every file in it 0600."""
    vault.db.insert({"a": 1})
    assert stat.S_IMODE(vault_path.stat().st_mode) == 0o700
    files = list(vault_path.iterdir())
    assert {file.name for file in files} == {"snapshot", "journal"}
    for file in files:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600


def test_create_twice_is_refused(vault: Vault, make_vault: Callable[..., Vault]) -> None:
    """A second onboarding raises VaultAlreadyInitialized, on the same or another object."""
    with pytest.raises(VaultAlreadyInitialized):
        vault.create("bert", PASSWORD)
    vault.close()
    with pytest.raises(VaultAlreadyInitialized):
        make_vault().create("bert", PASSWORD)


@pytest.mark.parametrize(
    ("member_id", "password"),
    [("", "pw"), ("a\nb", "pw"), ("x" * 201, "pw"), (7, "pw"), ("anna", ""), ("anna", None)],
)
def test_create_validates_input(
    make_vault: Callable[..., Vault], vault_path: Path, member_id: object, password: object
) -> None:
    """Bad member ids and empty passwords are InvalidInput, and nothing is created."""
    with pytest.raises(InvalidInput):
        make_vault().create(member_id, password)  # type: ignore[arg-type]
    assert not vault_path.exists()


def test_status_sealed_and_unsealed(vault: Vault) -> None:
    """status() reports the number of members, generation and journal records, also while
    sealed; the members' names only while unsealed."""
    vault.db.insert({"a": 1})
    vault.db.insert({"a": 2})
    vault.add_member("bert", "bert-pw")
    vault.db.insert({"a": 3})
    expected = VaultStatus(
        initialized=True, sealed=False, member_count=2, generation=2, journal_records=1
    )
    assert vault.status() == expected
    assert vault.members() == ("anna", "bert")
    vault.seal()
    assert vault.status() == VaultStatus(
        initialized=True, sealed=True, member_count=2, generation=2, journal_records=1
    )
    with pytest.raises(VaultSealed):
        vault.members()


def test_wrong_password_and_unknown_member(
    vault: Vault, vault_path: Path, file_hashes: Callable[[Path], dict[str, str]]
) -> None:
    """Wrong-key test: a wrong password and an unknown member both give WrongCredentials."""
    vault.db.insert({"a": 1})
    vault.seal()
    before = file_hashes(vault_path)
    for member_id, password in [("anna", "falsch"), ("niemand", PASSWORD), ("ANNA", PASSWORD)]:
        with pytest.raises(WrongCredentials):
            vault.unseal(member_id, password)
        assert vault.sealed
    assert file_hashes(vault_path) == before


def test_unknown_member_costs_like_a_known_one(make_vault: Callable[..., Vault]) -> None:
    """Wrong-key test: an unknown member id is not answered faster (no member enumeration)."""
    vault = make_vault(kdf=KdfParams(memory_kib=16384, iterations=2, lanes=1))
    vault.create("anna", PASSWORD)
    vault.seal()

    def timed(member_id: str) -> float:
        start = time.perf_counter()
        with pytest.raises(WrongCredentials):
            vault.unseal(member_id, "falsch")
        return time.perf_counter() - start

    known = min(timed("anna") for _ in range(3))
    unknown = min(timed("niemand") for _ in range(3))
    assert unknown > known * 0.5, (known, unknown)


def test_wrong_recovery_key(
    vault: Vault, vault_path: Path, file_hashes: Callable[[Path], dict[str, str]]
) -> None:
    """Wrong-key test: another well-formed recovery key gives WrongRecoveryKey; typos Malformed."""
    vault.seal()
    before = file_hashes(vault_path)
    with pytest.raises(WrongRecoveryKey):
        vault.unseal_with_recovery_key(RecoveryKey.generate())
    with pytest.raises(WrongRecoveryKey):
        vault.unseal_with_recovery_key(str(RecoveryKey.generate()))
    with pytest.raises(MalformedRecoveryKey):
        vault.unseal_with_recovery_key("K7QD-1234")
    assert vault.sealed
    assert file_hashes(vault_path) == before


def test_recovery_key_opens_a_copy_on_a_new_box(
    make_vault: Callable[..., Vault], vault_path: Path, tmp_path: Path
) -> None:
    """The recovery key alone opens a copy of the directory (a new box), as text too."""
    vault = make_vault()
    recovery_key = vault.create("anna", PASSWORD)
    vault.db.table("patients").insert({"name": "Erika Mustermann"})
    vault.close()
    new_box = tmp_path / "new-box" / "vault"
    shutil.copytree(vault_path, new_box)
    copy = make_vault(new_box)
    copy.unseal_with_recovery_key(str(recovery_key).lower().replace("-", " "))
    assert copy.db.table("patients").all() == [{"name": "Erika Mustermann"}]
    copy.seal()
    copy.unseal_with_recovery_key(recovery_key)
    copy.seal()
    copy.unseal("anna", PASSWORD)  # and the members' passwords work there too
    assert len(copy.db.table("patients")) == 1


def test_unseal_when_open_only_checks(vault: Vault) -> None:
    """unseal() on an open vault verifies the credentials and changes nothing."""
    table = vault.db.table("t")
    table.insert({"a": 1})
    vault.unseal("anna", PASSWORD)
    with pytest.raises(WrongCredentials):
        vault.unseal("anna", "falsch")
    assert not vault.sealed
    assert table.all() == [{"a": 1}]


def test_check_password_never_unseals(vault: Vault) -> None:
    """check_password works sealed and unsealed and never changes the seal."""
    vault.add_member("bert", "bert-pw")
    assert vault.check_password("anna", PASSWORD)
    assert vault.check_password("bert", "bert-pw")
    assert not vault.check_password("anna", "bert-pw")
    assert not vault.check_password("niemand", PASSWORD)
    vault.seal()
    assert vault.check_password("bert", "bert-pw")
    assert not vault.check_password("bert", "falsch")
    assert not vault.check_password("bert", None)  # type: ignore[arg-type]
    assert vault.sealed


def test_sealed_vault_refuses_data(vault: Vault) -> None:
    """While sealed, db and every held table raise VaultSealed; after unseal they work again."""
    table = vault.db.table("t")
    table.insert({"a": 1})
    assert table.search(Query().a == 1) == [{"a": 1}]
    db = vault.db
    vault.seal()
    with pytest.raises(VaultSealed):
        _ = vault.db
    with pytest.raises(VaultSealed):
        table.all()
    with pytest.raises(VaultSealed):
        table.search(Query().a == 1)  # the query cache is gone too
    with pytest.raises(VaultSealed):
        table.insert({"a": 2})
    with pytest.raises(VaultSealed):
        db.tables()
    for operation in (vault.add_member, vault.set_password):
        with pytest.raises(VaultSealed):
            operation("bert", "pw")
    for operation in (vault.remove_member,):
        with pytest.raises(VaultSealed):
            operation("anna")
    for operation in (vault.rekey, vault.compact):
        with pytest.raises(VaultSealed):
            operation()
    vault.unseal("anna", PASSWORD)
    assert table.all() == [{"a": 1}]
    assert db is vault.db


def test_members(vault: Vault) -> None:
    """add_member, set_password and remove_member, with their conflicts."""
    vault.add_member("bert", "bert-pw")
    with pytest.raises(Conflict):
        vault.add_member("bert", "anders")
    vault.set_password("bert", "neu")
    with pytest.raises(NotFound):
        vault.set_password("niemand", "pw")
    with pytest.raises(NotFound):
        vault.remove_member("niemand")
    vault.seal()
    with pytest.raises(WrongCredentials):
        vault.unseal("bert", "bert-pw")
    vault.unseal("bert", "neu")
    vault.remove_member("anna")
    with pytest.raises(Conflict):
        vault.remove_member("bert")  # the last one stays
    assert vault.members() == ("bert",)
    vault.seal()
    with pytest.raises(WrongCredentials):
        vault.unseal("anna", PASSWORD)
    vault.unseal("bert", "neu")


def test_unseal_listeners(make_vault: Callable[..., Vault]) -> None:
    """Listeners run after create and each unseal, not on a mere password check."""
    vault = make_vault()
    calls: list[str] = []
    vault.add_unseal_listener(lambda: calls.append("first"))
    vault.add_unseal_listener(lambda: calls.append(str(len(vault.db.table("t")))))
    recovery_key = vault.create("anna", PASSWORD)
    vault.db.table("t").insert({"a": 1})
    vault.unseal("anna", PASSWORD)
    vault.seal()
    vault.unseal("anna", PASSWORD)
    vault.seal()
    vault.unseal_with_recovery_key(recovery_key)
    assert calls == ["first", "0", "first", "1", "first", "1"]


def test_failing_listener_does_not_fail_the_unseal(make_vault: Callable[..., Vault],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """A failing listener does not stop the others nor the login; it is logged, vault open."""
    vault = make_vault()
    vault.create("anna", PASSWORD)
    vault.seal()
    calls: list[int] = []

    def broken() -> None:
        raise RuntimeError("index broken")

    vault.add_unseal_listener(broken)
    vault.add_unseal_listener(lambda: calls.append(1))
    vault.unseal("anna", PASSWORD)
    assert calls == [1] and not vault.sealed
    assert "a vault listener failed" in caplog.text


def test_second_process_is_locked_out(vault: Vault, make_vault: Callable[..., Vault]) -> None:
    """Only one open Vault per directory: a second one gets Conflict until the first seals."""
    other = make_vault()
    with pytest.raises(Conflict):
        other.unseal("anna", PASSWORD)
    assert other.sealed
    vault.seal()
    other.unseal("anna", PASSWORD)


def test_compaction_thresholds(make_vault: Callable[..., Vault]) -> None:
    """After compact_records records (or compact_bytes bytes) a new generation starts."""
    vault = make_vault(compact_records=3, compact_bytes=1 << 20)
    vault.create("anna", PASSWORD)
    table = vault.db.table("t")
    for number in range(7):
        table.insert({"n": number})
    assert vault.status().generation == 3
    assert vault.status().journal_records == 1
    vault.close()
    big = make_vault(compact_records=1000, compact_bytes=2000)
    big.unseal("anna", PASSWORD)
    big.db.table("t").insert({"blob": "x" * 2500})
    assert big.status().generation == 4 and big.status().journal_records == 0
    big.compact()
    assert big.status().generation == 5
    big.seal()
    big.unseal("anna", PASSWORD)
    assert len(big.db.table("t")) == 8


def test_default_kdf_parameters(tmp_path: Path) -> None:
    """R9: with the default costs (128 MiB, t=3, p=4) the header records them and unseal works."""
    vault = Vault(tmp_path / "vault")
    try:
        vault.create("anna", PASSWORD)
        vault.seal()
        vault.unseal("anna", PASSWORD)
    finally:
        vault.close()
    header = read_snapshot(tmp_path / "vault").header
    assert [wrap["kdf"] for wrap in header["members"]] == [
        {"memory_kib": 131072, "iterations": 3, "lanes": 4}]


def test_logs_carry_no_secrets(
    make_vault: Callable[..., Vault], vault_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Logs never contain passwords, keys or record contents (even for a torn journal tail)."""
    caplog.set_level(logging.DEBUG, logger="appliance")
    vault = make_vault()
    recovery_key = vault.create("anna", "Pa55wort-Geheim")
    vault.db.table("patients").insert({"name": "Erika Mustermann"})
    vault.close()
    length = struct.pack(">I", 256)
    with open(vault_path / "journal", "ab") as journal:  # a record cut short by a crash
        journal.write(length + struct.pack(">I", zlib.crc32(length)) + b"Erika")
    vault.unseal_with_recovery_key(recovery_key)
    vault.db.table("patients").insert({"name": "Max Mustermann"})
    text = caplog.text + json.dumps([record.args for record in caplog.records], default=str)
    assert "dropping an incomplete journal record" in caplog.text
    for secret in ("Pa55wort", "Erika", "Mustermann", str(recovery_key)[:9]):
        assert secret not in text
