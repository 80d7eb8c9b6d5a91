"""The resume file: a granted secret reopens the vault in a new process; nothing else does."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
from tinydb import Query

from appliance.errors import VaultSealed, WrongCredentials
from appliance.vault import Vault
from appliance.vault.resume import FILE_NAME, ResumeFile

from .conftest import PASSWORD

RECORDS = [{"kind": "staff", "id": "s1", "value": {"username": "anna"}}]


@pytest.fixture
def runtime(tmp_path: Path) -> Path:
    """The runtime directory (a tmpfs on the box)."""
    return tmp_path / "run"


def _restarted(make_vault: Callable[..., Vault], old: Vault) -> Vault:
    """What a new process sees: the same files, a sealed vault."""
    old.close()
    return make_vault()


def test_a_granted_secret_reopens_the_vault_after_a_restart(
    vault: Vault, make_vault: Callable[..., Vault], runtime: Path
) -> None:
    """Issue 3 (restart): a secret held by a logged-in browser reopens the vault; the records
    come back; the data is the one written before."""
    vault.db.table("t").insert({"n": 1})
    secret = secrets.token_urlsafe(32)
    ResumeFile(runtime, vault).save(RECORDS, [secret])

    again = _restarted(make_vault, vault)
    resume = ResumeFile(runtime, again)
    assert again.sealed and resume.pending
    assert resume.reopen(secret) is True
    assert not again.sealed and not resume.pending
    assert again.db.table("t").all() == [{"n": 1}]
    assert resume.load() == RECORDS


def test_unknown_secrets_and_records_open_nothing(
    vault: Vault, make_vault: Callable[..., Vault], runtime: Path,
    file_hashes: Callable[[Path], dict[str, str]],
) -> None:
    """A secret that was never granted, or one changed by a character, reopens nothing and
    changes no file; the file alone holds no data key in clear."""
    secret = secrets.token_urlsafe(32)
    ResumeFile(runtime, vault).save(RECORDS, [secret])
    _, data_key = vault.current_key()
    text = (runtime / FILE_NAME).read_bytes()
    assert data_key not in text and base64.b64encode(data_key) not in text
    assert b"anna" not in text and secret.encode() not in text

    again = _restarted(make_vault, vault)
    before = file_hashes(again.path)
    resume = ResumeFile(runtime, again)
    wrong = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    for guess in (wrong, secrets.token_urlsafe(32), ""):
        assert resume.reopen(guess) is False
    assert again.sealed
    with pytest.raises(VaultSealed):
        again.db  # noqa: B018 - the property raises while sealed
    assert file_hashes(again.path) == before


def test_a_tampered_file_opens_nothing(
    vault: Vault, make_vault: Callable[..., Vault], runtime: Path,
    file_hashes: Callable[[Path], dict[str, str]],
) -> None:
    """Bad input loses nothing: a damaged or swapped resume file leaves the vault sealed and its
    files untouched (the staff then log in with their passwords as after a boot)."""
    secret = secrets.token_urlsafe(32)
    ResumeFile(runtime, vault).save(RECORDS, [secret])
    path = runtime / FILE_NAME
    good = json.loads(path.read_text())
    again = _restarted(make_vault, vault)
    before = file_hashes(again.path)
    grant = next(iter(good["grants"]))
    raw = bytearray(base64.b64decode(good["grants"][grant]))
    raw[-1] ^= 1
    spoiled_records = bytearray(base64.b64decode(good["records"]))
    spoiled_records[20] ^= 1
    variants = [
        {**good, "grants": {grant: base64.b64encode(bytes(raw)).decode()}},
        {**good, "records": base64.b64encode(bytes(spoiled_records)).decode()},
        {**good, "key_id": "00" * (len(good["key_id"]) // 2)},
        {**good, "v": 99},
    ]
    for variant in variants:
        path.write_text(json.dumps(variant))
        assert ResumeFile(runtime, again).reopen(secret) is False
        assert again.sealed
    for garbage in (b"", b"{", b"[]", b'{"v": 1, "grants": 3}'):
        path.write_bytes(garbage)
        assert ResumeFile(runtime, again).reopen(secret) is False
    assert file_hashes(again.path) == before
    path.write_text(json.dumps(good))
    assert ResumeFile(runtime, again).reopen(secret) is True


def test_after_a_re_key_the_old_file_is_stale_and_a_new_save_works(
    vault: Vault, make_vault: Callable[..., Vault], runtime: Path
) -> None:
    """A member removed re-keys the vault: a file saved under the old key opens nothing any more
    (the vault tells its re-key listeners, who save again)."""
    vault.add_member("bert", PASSWORD)
    secret = secrets.token_urlsafe(32)
    resume = ResumeFile(runtime, vault)
    resume.save(RECORDS, [secret])
    stale = (runtime / FILE_NAME).read_bytes()
    told: list[int] = []
    vault.add_rekey_listener(lambda: told.append(1))
    vault.remove_member("bert")
    assert told == [1]
    assert resume.load() == []  # the records of the old key do not fit the new one

    again = _restarted(make_vault, vault)
    assert ResumeFile(runtime, again).reopen(secret) is False
    again.unseal("anna", PASSWORD)
    ResumeFile(runtime, again).save(RECORDS, [secret])
    assert (runtime / FILE_NAME).read_bytes() != stale
    third = _restarted(make_vault, again)
    assert ResumeFile(runtime, third).reopen(secret) is True


def test_unseal_with_the_wrong_key_id_is_refused(vault: Vault,
                                                 make_vault: Callable[..., Vault]) -> None:
    """The vault takes a kept data key only for its current key id."""
    key_id, data_key = vault.current_key()
    again = _restarted(make_vault, vault)
    with pytest.raises(WrongCredentials):
        again.unseal_with_data_key(bytes(len(key_id)), data_key)
    assert again.sealed
    again.unseal_with_data_key(key_id, data_key)
    assert not again.sealed


def test_discard_and_a_file_without_grants(vault: Vault, make_vault: Callable[..., Vault],
                                           runtime: Path) -> None:
    """Discarded (nobody logged in any more): a restart finds a sealed vault, nothing pending."""
    resume = ResumeFile(runtime, vault)
    resume.save(RECORDS, [secrets.token_urlsafe(32)])
    resume.discard()
    again = _restarted(make_vault, vault)
    assert not ResumeFile(runtime, again).pending
    again.unseal("anna", PASSWORD)
    assert ResumeFile(runtime, again).load() == []
    again.db.table("t").insert({"n": 2})
    assert again.db.table("t").search(Query().n == 2)


def test_a_full_runtime_directory_loses_nothing(vault: Vault, tmp_path: Path) -> None:
    """A runtime directory that cannot be written (here: a file in its place) is logged; the
    vault works on, only a restart would need the passwords."""
    blocked = tmp_path / "blocked"
    blocked.write_text("not a directory")
    ResumeFile(blocked, vault).save(RECORDS, [secrets.token_urlsafe(32)])
    vault.db.table("t").insert({"n": 3})
    assert vault.db.table("t").all() == [{"n": 3}]


def test_grants_open_nothing_after_a_reboot(vault: Vault, make_vault: Callable[..., Vault],
                                            runtime: Path) -> None:
    """The vault is sealed after every boot (DESIGN.md), also where the runtime directory is on
    a disk: grants are bound to the kernel's boot id."""
    secret = secrets.token_urlsafe(32)
    ResumeFile(runtime, vault, boot_id="boot-1").save(RECORDS, [secret])
    again = _restarted(make_vault, vault)
    assert ResumeFile(runtime, again, boot_id="boot-2").reopen(secret) is False
    assert again.sealed
    assert ResumeFile(runtime, again, boot_id="boot-1").reopen(secret) is True


def test_a_refusing_caller_keeps_the_vault_sealed(vault: Vault, make_vault: Callable[..., Vault],
                                                  runtime: Path) -> None:
    """The caller sees the saved records before anything opens (it refuses an expired session)."""
    secret = secrets.token_urlsafe(32)
    ResumeFile(runtime, vault).save(RECORDS, [secret])
    again = _restarted(make_vault, vault)
    seen: list[list[dict[str, object]]] = []
    assert ResumeFile(runtime, again).reopen(
        secret, accept=lambda records: bool(seen.append(records))) is False
    assert seen == [RECORDS] and again.sealed


def test_a_failed_write_fails_closed(vault: Vault, runtime: Path) -> None:
    """When the file cannot be replaced, the old one goes: it might still grant a session that
    has ended since (a logout must never come back after a restart)."""
    resume = ResumeFile(runtime, vault)
    resume.save(RECORDS, [secrets.token_urlsafe(32)])
    (runtime / (FILE_NAME.removesuffix(".json") + ".tmp")).mkdir()  # the temp file cannot be made
    resume.save([], [secrets.token_urlsafe(32)])
    assert not (runtime / FILE_NAME).exists()
