"""The vault's files name nobody: login names live only in the index sealed under the data key."""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.errors import VaultTampered, WrongCredentials
from appliance.vault import Vault
from appliance.vault import journal as vault_journal

from .conftest import PASSWORD

NAMES = ("mueller", "dr.schmidt-yilmaz", "anna")


def _rewrite_header(vault_path: Path, change: Callable[[dict], None]) -> None:
    snapshot = vault_journal.read_snapshot(vault_path)
    header = dict(snapshot.header)
    change(header)
    text = vault_journal.encode_header(header)
    (vault_path / "snapshot").write_bytes(
        vault_journal.SNAPSHOT_MAGIC + struct.pack(">I", len(text)) + text + snapshot.sealed_data)


def test_no_login_name_on_the_disk(make_vault: Callable[..., Vault], vault_path: Path) -> None:
    """R9 (crypto), issue 8, defect 3: after creating, adding, changing passwords, re-keying
    and compacting, no file of the vault holds a login name in any spelling; every member
    still logs in."""
    vault = make_vault()
    vault.create("anna", PASSWORD)
    vault.add_member("mueller", "mueller-pw")
    vault.add_member("dr.schmidt-yilmaz", "schmidt-pw")
    vault.db.table("notes").insert({"text": "nothing personal"})
    vault.set_password("mueller", "mueller-neu")
    vault.rekey()
    vault.db.table("notes").insert({"text": "still nothing"})
    vault.close()

    for file in vault_path.rglob("*"):
        raw = file.read_bytes().lower()
        for name in NAMES:
            for spelling in (name, base64.b64encode(name.encode()).decode(), name.encode().hex()):
                assert spelling.encode().lower() not in raw, (file.name, spelling)
    header = vault_journal.read_snapshot(vault_path).header
    assert isinstance(header["members"], list) and len(header["members"]) == 3
    assert vault.status().member_count == 3

    for name, password in (("anna", PASSWORD), ("mueller", "mueller-neu"),
                           ("dr.schmidt-yilmaz", "schmidt-pw")):
        vault.unseal(name, password)
        assert vault.members() == tuple(sorted(NAMES))
        vault.close()
    # a right password under another member's name opens nothing
    with pytest.raises(WrongCredentials):
        vault.unseal("mueller", "schmidt-pw")


def test_index_length_hides_the_names_lengths(make_vault: Callable[..., Vault],
                                              vault_path: Path) -> None:
    """R9: the sealed index is padded: a short and a long name give the same header size."""
    sizes = []
    for number, name in enumerate(("al", "dr.schmidt-yilmaz-oberhausen")):
        path = vault_path.parent / f"vault-{number}"
        vault = make_vault(path)
        vault.create(name, PASSWORD)
        vault.close()
        sizes.append(len(vault_journal.read_snapshot(path).header["index"]))
    assert sizes[0] == sizes[1]


@pytest.mark.parametrize("damage", ["drop-wrap", "foreign-index", "flipped-index", "no-index"])
def test_index_and_wraps_must_match(
    make_vault: Callable[..., Vault], vault_path: Path, damage: str
) -> None:
    """R9: a header whose index was swapped, altered or removed, or that lost a wrap, is refused as
    tampered: nobody can hide or add a member by editing the header."""
    vault = make_vault()
    vault.create("anna", PASSWORD)
    vault.add_member("bert", "bert-pw")
    vault.close()
    other = make_vault(vault_path.parent / "other")
    other.create("anna", PASSWORD)
    other.close()
    foreign = vault_journal.read_snapshot(vault_path.parent / "other").header["index"]

    def change(header: dict) -> None:
        if damage == "drop-wrap":
            header["members"] = header["members"][:1]
        elif damage == "foreign-index":
            header["index"] = foreign
        elif damage == "flipped-index":
            raw = bytearray(base64.b64decode(header["index"]))
            raw[20] ^= 1
            header["index"] = base64.b64encode(bytes(raw)).decode()
        else:
            del header["index"]

    _rewrite_header(vault_path, change)
    outcomes = []
    for name, password in (("anna", PASSWORD), ("bert", "bert-pw")):
        with pytest.raises((VaultTampered, WrongCredentials)) as caught:
            vault.unseal(name, password)
        assert vault.sealed
        outcomes.append(caught.type.__name__)
    if damage == "drop-wrap":  # whoever still has a wrap finds the directory does not match
        assert sorted(outcomes) == ["VaultTampered", "WrongCredentials"]
    else:
        assert outcomes == ["VaultTampered", "VaultTampered"]
