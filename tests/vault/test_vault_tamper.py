"""Tamper test, torn tails and the re-key test: damaged files are reported, never used."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from appliance.errors import VaultTampered, WrongCredentials
from appliance.vault import RecoveryKey, Vault
from appliance.vault import journal as vault_journal
from appliance.vault.keys import KeyRing

from .conftest import PASSWORD

Hashes = Callable[[Path], dict[str, str]]


def _fill(vault: Vault) -> list[dict]:
    """Some data in the snapshot and five records in the journal; returns all documents."""
    table = vault.db.table("appointments")
    table.insert_multiple({"n": n, "who": f"Patient {n}"} for n in range(20))
    vault.compact()
    table.insert({"n": 20})
    table.update({"moved": True}, doc_ids=[3])
    table.remove(doc_ids=[5])
    vault.db.table("audit").insert({"event": "login"})
    table.insert({"n": 21})
    assert vault.status().journal_records == 5
    return table.all()


def _positions(size: int, special: list[int]) -> list[int]:
    step = max(1, size // 120)
    return sorted({p for p in [*range(0, size, step), *special] if 0 <= p < size})


def _record_offsets(path: Path) -> list[tuple[int, int]]:
    return list(vault_journal.scan_journal(path.read_bytes()).records)


def test_tamper_snapshot_and_journal(
    vault: Vault, vault_path: Path, tmp_path: Path, file_hashes: Hashes
) -> None:
    """Tamper test: a flipped byte anywhere in snapshot or journal is reported, files untouched."""
    expected = _fill(vault)
    vault.close()
    snapshot = (vault_path / "snapshot").read_bytes()
    journal = (vault_path / "journal").read_bytes()
    header_length = struct.unpack(">I", snapshot[8:12])[0]
    header_end = 12 + header_length
    header_text = snapshot[12:header_end]
    wraps = [header_text.find(field) + 12 + len(field) + 3
             for field in (b'"private_key"', b'"data_key"', b'"salt"', b'"public_key"')]
    records = _record_offsets(vault_path / "journal")
    middle_offset, middle_length = records[2]
    snapshot_special = [0, 7, 8, 11, 12, header_end - 1, header_end, header_end + 11,
                        header_end + 12, len(snapshot) - 16, len(snapshot) - 1, *wraps]
    journal_special = [0, 8, 15, 16, 31, 32, 35, 36, 39, 40, middle_offset - 8,
                       middle_offset - 5, middle_offset, middle_offset + 12,
                       middle_offset + middle_length - 1, len(journal) - 1]
    outcomes: dict[str, int] = {}
    checked = 0
    for name, raw, special in (("snapshot", snapshot, snapshot_special),
                               ("journal", journal, journal_special)):
        for position in _positions(len(raw), special):
            box = tmp_path / f"{name}-{position}"
            shutil.copytree(vault_path, box)
            broken = bytearray(raw)
            if name == "snapshot" and position in wraps:
                # Another base64 letter: the wrap still decodes, but to a wrong key.
                broken[position] = ord("B") if broken[position] == ord("A") else ord("A")
            else:
                broken[position] ^= 0x5A
            (box / name).write_bytes(bytes(broken))
            before = file_hashes(box)
            victim = Vault(box, kdf=vault._kdf)
            try:
                victim.unseal("anna", PASSWORD)
            except (VaultTampered, WrongCredentials) as exc:
                outcomes[type(exc).__name__] = outcomes.get(type(exc).__name__, 0) + 1
            else:  # pragma: no cover - would be the bug this test exists for
                data = victim.db.table("appointments").all()
                victim.close()
                pytest.fail(f"{name}[{position}] flipped and still opened (same data: "
                            f"{data == expected})")
            assert victim.sealed
            assert file_hashes(box) == before, f"{name}[{position}]: files changed"
            shutil.rmtree(box)
            checked += 1
    assert checked > 200, checked
    assert outcomes["VaultTampered"] > 150 and outcomes["WrongCredentials"] > 0


def test_tampered_recovery_path(
    make_vault: Callable[..., Vault], vault_path: Path, file_hashes: Hashes
) -> None:
    """Tamper test: a flipped byte in the data is reported to a recovery-key unseal too."""
    vault = make_vault()
    recovery_key = vault.create("anna", PASSWORD)
    vault.db.insert({"a": 1})
    vault.close()
    snapshot = bytearray((vault_path / "snapshot").read_bytes())
    snapshot[-20] ^= 1
    (vault_path / "snapshot").write_bytes(bytes(snapshot))
    before = file_hashes(vault_path)
    with pytest.raises(VaultTampered) as caught:
        vault.unseal_with_recovery_key(recovery_key)
    assert "Schnappschuss" in caught.value.params["detail"]
    assert file_hashes(vault_path) == before


@pytest.mark.parametrize(
    "damage",
    ["swap-records", "drop-middle-record", "foreign-journal", "journal-too-new",
     "wrong-magic", "unknown-version", "short-journal", "empty-snapshot"],
)
def test_structural_tampering(
    vault: Vault, vault_path: Path, make_vault: Callable[..., Vault], file_hashes: Hashes,
    damage: str,
) -> None:
    """Tamper test: reordered, dropped, foreign or newer records and bad formats are reported."""
    _fill(vault)
    vault.close()
    journal_path = vault_path / "journal"
    raw = journal_path.read_bytes()
    records = [raw[start - 8 : start + length] for start, length in _record_offsets(journal_path)]
    head = raw[:32]
    if damage == "swap-records":
        swapped = [records[0], records[2], records[1], *records[3:]]
        journal_path.write_bytes(head + b"".join(swapped))
    elif damage == "drop-middle-record":
        journal_path.write_bytes(head + records[0] + b"".join(records[2:]))
    elif damage == "foreign-journal":
        other = make_vault(vault_path.parent / "other")
        other.create("anna", PASSWORD)
        other.db.insert({"x": 1})
        other.compact()
        other.db.insert({"x": 2})
        other.close()
        shutil.copy(vault_path.parent / "other" / "journal", journal_path)
    elif damage == "journal-too-new":
        generation = struct.unpack(">Q", head[8:16])[0]
        journal_path.write_bytes(head[:8] + struct.pack(">Q", generation + 1) + raw[16:])
    elif damage == "wrong-magic":
        snapshot = (vault_path / "snapshot").read_bytes()
        (vault_path / "snapshot").write_bytes(b"SZVAULT0" + snapshot[8:])
    elif damage == "unknown-version":
        snapshot = (vault_path / "snapshot").read_bytes()
        length = struct.unpack(">I", snapshot[8:12])[0]
        header = json.loads(snapshot[12 : 12 + length])
        header["format"] = vault_journal.FORMAT_VERSION + 1
        text = json.dumps(header).encode()
        (vault_path / "snapshot").write_bytes(
            snapshot[:8] + struct.pack(">I", len(text)) + text + snapshot[12 + length :]
        )
    elif damage == "short-journal":
        journal_path.write_bytes(head[:20])
    else:
        (vault_path / "snapshot").write_bytes(b"")
    before = file_hashes(vault_path)
    with pytest.raises(VaultTampered):
        vault.unseal("anna", PASSWORD)
    assert file_hashes(vault_path) == before
    assert vault.sealed


def _torn(vault_path: Path, cut: int) -> bytes:
    journal_path = vault_path / "journal"
    raw = journal_path.read_bytes()
    offset, length = _record_offsets(journal_path)[-1]
    journal_path.write_bytes(raw[: offset - 8 + cut])
    return raw[: offset - 8]


@pytest.mark.parametrize("cut", [1, 4, 7, 8, 9, 30], ids=lambda cut: f"cut-{cut}")
def test_torn_tail_is_dropped(vault: Vault, vault_path: Path, cut: int) -> None:
    """Crash test: a last record cut short (never acknowledged) is dropped and truncated away."""
    expected = _fill(vault)
    vault.close()
    good = _torn(vault_path, cut)
    vault.unseal("anna", PASSWORD)
    assert vault.db.table("appointments").all() == [doc for doc in expected if doc["n"] != 21]
    assert (vault_path / "journal").read_bytes() == good
    assert vault.status().journal_records == 4
    vault.db.table("appointments").insert({"n": 22})
    vault.close()
    vault.unseal("anna", PASSWORD)
    assert vault.db.table("appointments").all()[-1] == {"n": 22}


def test_zero_filled_tail_is_dropped(vault: Vault, vault_path: Path) -> None:
    """Crash test: a tail of zero bytes (size grew, data never arrived) is dropped."""
    expected = _fill(vault)
    vault.close()
    with open(vault_path / "journal", "ab") as journal:
        journal.write(bytes(300))
    vault.unseal("anna", PASSWORD)
    assert vault.db.table("appointments").all() == expected


def test_complete_corrupt_last_record_is_reported(
    vault: Vault, vault_path: Path, file_hashes: Hashes
) -> None:
    """Tamper test: a last record whose bytes are all there but wrong is reported, not dropped."""
    _fill(vault)
    vault.close()
    raw = bytearray((vault_path / "journal").read_bytes())
    raw[-5] ^= 1
    (vault_path / "journal").write_bytes(bytes(raw))
    before = file_hashes(vault_path)
    with pytest.raises(VaultTampered) as caught:
        vault.unseal("anna", PASSWORD)
    assert caught.value.params["detail"] == "Journal-Eintrag 5 ist nicht authentisch"
    assert file_hashes(vault_path) == before


def test_garbage_tail_is_reported(vault: Vault, vault_path: Path, file_hashes: Hashes) -> None:
    """Tamper test: bytes after the last record that are no record head are reported."""
    _fill(vault)
    vault.close()
    with open(vault_path / "journal", "ab") as journal:
        journal.write(b"\x01\x02\x03\x04\x05\x06\x07\x08\x09")
    before = file_hashes(vault_path)
    with pytest.raises(VaultTampered):
        vault.unseal("anna", PASSWORD)
    assert file_hashes(vault_path) == before


def test_stale_journal_after_interrupted_compaction(
    vault: Vault, vault_path: Path, tmp_path: Path
) -> None:
    """Crash test: a crash between new snapshot and new journal leaves an older journal: ignored."""
    expected = _fill(vault)
    old_journal = (vault_path / "journal").read_bytes()
    vault.compact()
    vault.close()
    (vault_path / "journal").write_bytes(old_journal)  # as if the new one was never started
    vault.unseal("anna", PASSWORD)
    assert vault.db.table("appointments").all() == expected
    vault.db.table("appointments").insert({"n": 99})
    vault.close()
    vault.unseal("anna", PASSWORD)
    assert vault.db.table("appointments").all() == [*expected, {"n": 99}]
    # ... and the same after a re-key, whose old journal cannot even be checked any more
    old_journal = (vault_path / "journal").read_bytes()
    vault.rekey()
    vault.close()
    (vault_path / "journal").write_bytes(old_journal)
    vault.unseal("anna", PASSWORD)
    assert len(vault.db.table("appointments")) == len(expected) + 1
    # a missing journal (crash right after onboarding) is fine too
    vault.close()
    (vault_path / "journal").unlink()
    vault.unseal("anna", PASSWORD)
    vault.db.insert({"after": "crash"})


def test_leftover_temp_files_are_ignored(vault: Vault, vault_path: Path) -> None:
    """Crash test: half-written temp files from a crash are ignored and removed on unseal."""
    expected = _fill(vault)
    vault.close()
    (vault_path / "snapshot.tmp").write_bytes(b"SZVAULT1 half")
    (vault_path / "journal.tmp").write_bytes(b"SZJ")
    vault.unseal("anna", PASSWORD)
    assert vault.db.table("appointments").all() == expected
    assert sorted(path.name for path in vault_path.iterdir()) == ["journal", "snapshot"]


@pytest.mark.parametrize("change", ["remove", "own-password", "admin-reset"])
def test_rekey_after_removing_a_member_or_changing_a_password(
    make_vault: Callable[..., Vault], vault_path: Path, tmp_path: Path, change: str
) -> None:
    """R9, re-key test (issue 9, defect 1): after bert is removed or his password changes (by
    himself or an admin), his old password, old wrap and old data key open nothing new."""
    vault = make_vault()
    recovery_key = vault.create("anna", PASSWORD)
    vault.add_member("bert", "bert-pw")
    expected = _fill(vault)
    vault.close()
    old_box = tmp_path / "old-copy"
    shutil.copytree(vault_path, old_box)  # e.g. an old backup, or a copy bert kept

    if change == "own-password":
        vault.unseal("bert", "bert-pw")
        vault.set_password("bert", "bert-neu")
    else:
        vault.unseal("anna", PASSWORD)
        if change == "remove":
            vault.remove_member("bert")
        else:
            vault.set_password("bert", "bert-neu")
    vault.db.table("appointments").insert({"n": 100, "who": "after the re-key"})
    expected.append({"n": 100, "who": "after the re-key"})
    assert vault.status().journal_records == 1
    vault.close()

    # 1. bert's old password opens nothing any more
    with pytest.raises(WrongCredentials):
        vault.unseal("bert", "bert-pw")

    # 2. bert's old data key (from the old copy) opens neither the new snapshot nor journal
    old_ring = KeyRing.from_dict(vault_journal.read_snapshot(old_box).header)
    old_data_key = old_ring.open_member("bert", "bert-pw")
    new_snapshot = vault_journal.read_snapshot(vault_path)
    new_ring = KeyRing.from_dict(new_snapshot.header)
    new_data_key = new_ring.open_recovery(recovery_key)
    assert ("bert" in new_ring.named(new_data_key).members) is (change != "remove")
    assert new_data_key != old_data_key and new_ring.key_id != old_ring.key_id
    with pytest.raises(VaultTampered):
        new_snapshot.open_data(AESGCM(old_data_key))
    raw, scan = vault_journal.read_journal(vault_path)  # type: ignore[misc]
    with pytest.raises(VaultTampered):
        list(vault_journal.open_records(raw, scan, AESGCM(old_data_key)))
    assert len(list(vault_journal.open_records(raw, scan, AESGCM(new_data_key)))) == 1

    # 3. bert's old wrap grafted into the new header (beside or instead of his new one) does
    #    not open it either
    snapshot_path = vault_path / "snapshot"
    pristine = snapshot_path.read_bytes()
    old_header = vault_journal.read_snapshot(old_box).header
    old_wraps = old_header["members"]
    for graft_key_id, replace_all in ((False, False), (True, False), (True, True)):
        header = dict(new_snapshot.header)
        header["members"] = old_wraps if replace_all else header["members"] + old_wraps
        if graft_key_id:
            header["key_id"] = old_header["key_id"]
        text = vault_journal.encode_header(header)
        snapshot_path.write_bytes(
            b"SZVAULT1" + struct.pack(">I", len(text)) + text + new_snapshot.sealed_data
        )
        with pytest.raises((VaultTampered, WrongCredentials)):
            vault.unseal("bert", "bert-pw")
        assert vault.sealed
    snapshot_path.write_bytes(pristine)

    # 4. the others and the recovery key still open it, data intact
    vault.unseal("anna", PASSWORD)
    assert vault.db.table("appointments").all() == expected
    vault.close()
    if change != "remove":
        vault.unseal("bert", "bert-neu")
        vault.close()
    vault.unseal_with_recovery_key(RecoveryKey.parse(str(recovery_key)))
    assert vault.db.table("appointments").all() == expected
    assert vault.members() == (("anna",) if change == "remove" else ("anna", "bert"))


def test_rekey_keeps_every_member(vault: Vault, vault_path: Path) -> None:
    """Re-key test: rekey() needs no passwords yet every member still opens the new key."""
    vault.add_member("bert", "bert-pw")
    expected = _fill(vault)
    key_id = vault_journal.read_snapshot(vault_path).header["key_id"]
    vault.rekey()
    assert vault_journal.read_snapshot(vault_path).header["key_id"] != key_id
    vault.close()
    for member_id, password in (("anna", PASSWORD), ("bert", "bert-pw")):
        vault.unseal(member_id, password)
        assert vault.db.table("appointments").all() == expected
        vault.close()


def test_journal_crc_is_over_the_length(vault: Vault, vault_path: Path) -> None:
    """The record head is the length and its CRC-32 (the format docs/vault.md describes)."""
    vault.db.insert({"a": 1})
    raw = (vault_path / "journal").read_bytes()
    length, check = struct.unpack(">II", raw[32:40])
    assert check == zlib.crc32(raw[32:36]) and len(raw) == 40 + length
