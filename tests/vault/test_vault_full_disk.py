"""A full disk: the change is refused with StorageFull, nothing half-written stays, and the
vault keeps working. Most tests simulate ENOSPC by monkeypatching; one fills a real tmpfs."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.errors import StorageFull
from appliance.vault import Vault
from appliance.vault import journal as journal_module

from .conftest import PASSWORD

REPO = Path(__file__).resolve().parents[2]
Hashes = Callable[[Path], dict[str, str]]


def _full(*_args: Any) -> Any:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _once(real: Callable[..., Any], failure: Callable[..., Any]) -> Callable[..., Any]:
    calls: list[int] = []

    def patched(*args: Any) -> Any:
        if not calls:
            calls.append(1)
            return failure(*args)
        return real(*args)

    return patched


def _reopened_docs(vault: Vault) -> list[dict]:
    vault.close()
    vault.unseal("anna", PASSWORD)
    return vault.db.table("t").all()


def test_enospc_in_the_middle_of_a_record(
    vault: Vault, vault_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Full disk (simulated: os.pwrite writes half a record, then ENOSPC): nothing of it stays."""
    table = vault.db.table("t")
    table.insert({"n": 1})
    size = (vault_path / "journal").stat().st_size
    real = os.pwrite

    def half_then_full(fd: int, data: Any, offset: int) -> int:
        real(fd, bytes(data[: len(data) // 2]), offset)
        _full()
        return 0

    monkeypatch.setattr(journal_module.os, "pwrite", _once(real, half_then_full))
    with pytest.raises(StorageFull):
        table.insert({"n": 2, "text": "x" * 500})
    assert table.all() == [{"n": 1}]
    assert (vault_path / "journal").stat().st_size == size
    assert vault.status().journal_records == 1
    table.insert({"n": 3})
    assert _reopened_docs(vault) == [{"n": 1}, {"n": 3}]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT], ids=["ENOSPC", "EDQUOT"])
def test_full_disk_reported_by_fsync(
    vault: Vault, vault_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    """Full disk (simulated: fdatasync fails): StorageFull, update not visible, record cut away."""
    table = vault.db.table("t")
    table.insert({"n": 1})
    size = (vault_path / "journal").stat().st_size

    def fail(fd: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(journal_module.os, "fdatasync", _once(os.fdatasync, fail))
    with pytest.raises(StorageFull):
        table.update({"n": 2}, doc_ids=[1])
    assert table.get(doc_id=1) == {"n": 1}
    assert (vault_path / "journal").stat().st_size == size
    table.update({"n": 3}, doc_ids=[1])
    assert _reopened_docs(vault) == [{"n": 3}]


def test_other_io_errors_roll_back_too(
    vault: Vault, vault_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An I/O error that is not a full disk (simulated EIO) is raised as is, nothing applied."""
    table = vault.db.table("t")
    table.insert({"n": 1})

    def broken(*_args: Any) -> Any:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(journal_module.os, "pwrite", _once(os.pwrite, broken))
    with pytest.raises(OSError) as caught:
        table.remove(doc_ids=[1])
    assert caught.value.errno == errno.EIO and not isinstance(caught.value, StorageFull)
    assert table.all() == [{"n": 1}]
    assert _reopened_docs(vault) == [{"n": 1}]


def test_failed_cut_is_retried(
    vault: Vault, vault_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Full disk (simulated) where even cutting the half record fails: the next write cuts it."""
    table = vault.db.table("t")
    table.insert({"n": 1})
    real = os.pwrite

    def half_then_full(fd: int, data: Any, offset: int) -> int:
        real(fd, bytes(data[:20]), offset)
        _full()
        return 0

    monkeypatch.setattr(journal_module.os, "pwrite", _once(real, half_then_full))
    monkeypatch.setattr(journal_module.os, "ftruncate", _once(os.ftruncate, _full))
    with pytest.raises(StorageFull):
        table.insert({"n": 2})
    assert table.all() == [{"n": 1}]
    table.insert({"n": 3})
    assert _reopened_docs(vault) == [{"n": 1}, {"n": 3}]


def test_full_disk_while_adding_a_member(
    vault: Vault, vault_path: Path, monkeypatch: pytest.MonkeyPatch, file_hashes: Hashes
) -> None:
    """Full disk (simulated: os.write of the new snapshot fails): old snapshot and keys stay."""
    vault.db.table("t").insert({"n": 1})
    before = file_hashes(vault_path)
    monkeypatch.setattr(journal_module.os, "write", _once(os.write, _full))
    with pytest.raises(StorageFull):
        vault.add_member("bert", "bert-pw")
    assert vault.members() == ("anna",)
    assert file_hashes(vault_path) == before  # no snapshot.tmp either
    vault.db.table("t").insert({"n": 2})
    vault.add_member("bert", "bert-pw")
    vault.close()
    vault.unseal("bert", "bert-pw")
    assert vault.db.table("t").all() == [{"n": 1}, {"n": 2}]


def test_failed_compaction_keeps_the_write(
    make_vault: Callable[..., Vault], monkeypatch: pytest.MonkeyPatch, vault_path: Path
) -> None:
    """Full disk (simulated) during a compaction: the journaled write stands; retried later."""
    vault = make_vault(compact_records=2)
    vault.create("anna", PASSWORD)
    table = vault.db.table("t")
    table.insert({"n": 1})
    monkeypatch.setattr(journal_module.os, "write", _full)
    table.insert({"n": 2})  # due for compaction, which fails: no error for the write
    table.insert({"n": 3})  # backing off
    assert vault.status().generation == 1 and vault.status().journal_records == 3
    assert not (vault_path / "snapshot.tmp").exists()
    monkeypatch.undo()
    table.insert({"n": 4})
    assert vault.status().generation == 2
    assert _reopened_docs(vault) == [{"n": n} for n in (1, 2, 3, 4)]


_TMPFS_SCRIPT = textwrap.dedent(
    """
    import errno, json, os, sys
    from pathlib import Path
    from appliance.errors import StorageFull
    from appliance.vault import KdfParams, Vault
    from appliance.vault import journal

    root = Path(sys.argv[1])
    vault = Vault(root / "vault", kdf=KdfParams(1024, 1, 1), compact_records=10**6,
                  compact_bytes=1 << 30)
    vault.create("anna", "pw")
    table = vault.db.table("t")
    table.insert({"n": -1})
    fd = os.open(root / "filler", os.O_WRONLY | os.O_CREAT)
    for chunk in (65536, 4096, 1):
        try:
            while True:
                os.write(fd, b"f" * chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    os.close(fd)
    acked, failed = [], None
    for n in range(100000):
        try:
            table.insert({"n": n, "pad": "x" * 300})
        except StorageFull:
            failed = n
            break
        acked.append(n)
    visible = [doc["n"] for doc in table.all()]
    scan = journal.scan_journal((root / "vault" / "journal").read_bytes())
    os.unlink(root / "filler")
    table.insert({"n": "after"})
    vault.seal()
    vault.unseal("anna", "pw")
    reopened = [doc["n"] for doc in vault.db.table("t").all()]
    vault.close()
    print(json.dumps({"acked": acked, "failed": failed, "visible": visible,
                      "torn": scan.torn, "records": len(scan.records), "reopened": reopened}))
    """
)


def test_real_full_tmpfs(tmp_path: Path) -> None:
    """Full disk for real: a 256 KiB tmpfs in a private mount namespace, filled to the brim."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) for a private tmpfs mount")
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    script = tmp_path / "fill.py"
    script.write_text(_TMPFS_SCRIPT)
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c",
         'mount -t tmpfs -o size=256k,mode=0700 tmpfs "$1" || exit 77; exec "$2" "$3" "$1"',
         "sh", str(mount_point), sys.executable, str(script)],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    if result.returncode == 77:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["failed"] is not None
    assert report["failed"] not in report["visible"]
    assert report["visible"] == [-1, *report["acked"]]
    assert not report["torn"] and report["records"] == len(report["acked"]) + 1
    assert report["reopened"] == [-1, *report["acked"], "after"]
