"""What a backup holds, copied consistently into a staging tree, with a manifest.

The tree: ``vault/`` (the snapshot and the journal: ciphertext and wrapped keys only), ``tls/``
(the practice CA and the certificates' keys, which cannot be re-created without every PC
trusting a new CA), ``settings/sprechzimmer.toml`` and ``devices.key`` (the practice PCs known
before), plus ``manifest.json``: every file's size and SHA-256, the vault's generation and
record count, the box's version and when. No data key is needed: the backup runs while the vault
is sealed.

Consistency without a lock, from any process, while the vault is written: the vault replaces its
snapshot only whole (rename) and appends to its journal in place, a compaction writing snapshot
*g+1* before it replaces journal *g* by an empty *g+1*. So the journal is read first (the bytes
up to its last complete record: a record still being written was not acknowledged yet), then the
snapshot. Same generation: the snapshot plus those records are the vault at the moment the
journal was read, every acknowledged write included. Snapshot one generation ahead: a compaction
came in between, and the new snapshot holds everything the journal did, so the journal is left
out (as unseal ignores an older journal). Anything else (two compactions in between) is read
again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from appliance import __version__
from appliance.errors import VaultTampered
from appliance.vault import journal

MANIFEST: Final = "manifest.json"
VAULT_DIR: Final = "vault"
#: how often the copy is tried while compactions run past it
ATTEMPTS: Final = 20


class StagingError(Exception):
    """The vault could not be copied consistently (or is damaged)."""


@dataclass(frozen=True, kw_only=True)
class Sources:
    """Where the box keeps what a backup holds."""

    vault: Path
    tls: Path
    settings: Path | None
    devices_key: Path | None


def stage(sources: Sources, staging: Path, *, now: str) -> dict[str, Any]:
    """A fresh staging tree in ``staging`` (emptied first); returns the manifest."""
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True, mode=0o700)
    vault = _copy_vault(sources.vault, staging / VAULT_DIR)
    if sources.tls.is_dir():
        shutil.copytree(sources.tls, staging / "tls", symlinks=True)
    if sources.settings is not None and sources.settings.is_file():
        (staging / "settings").mkdir()
        shutil.copy2(sources.settings, staging / "settings" / "sprechzimmer.toml")
    if sources.devices_key is not None and sources.devices_key.is_file():
        shutil.copy2(sources.devices_key, staging / "devices.key")
    manifest = {"format": 1, "created": now, "version": __version__, **vault,
                "files": file_digests(staging)}
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True), "utf-8")
    return manifest


def _copy_vault(source: Path, into: Path) -> dict[str, Any]:
    into.mkdir(mode=0o700)
    for _ in range(ATTEMPTS):
        journal_bytes = _read(source / journal.JOURNAL_NAME)
        snapshot_bytes = _read(source / journal.SNAPSHOT_NAME)
        if snapshot_bytes is None:
            raise StagingError("Es gibt keinen Tresor (keine Schnappschuss-Datei)")
        try:
            generation = int(journal.parse_snapshot(snapshot_bytes).header["generation"])
            scan = journal.scan_journal(journal_bytes) if journal_bytes is not None else None
        except (VaultTampered, KeyError, TypeError, ValueError) as exc:
            raise StagingError(f"Der Tresor ist beschädigt: {exc}") from None
        if scan is not None and scan.generation not in (generation, generation - 1):
            continue  # more than one compaction came in between: again
        (into / journal.SNAPSHOT_NAME).write_bytes(snapshot_bytes)
        records = 0
        if scan is not None and journal_bytes is not None and scan.generation == generation:
            (into / journal.JOURNAL_NAME).write_bytes(journal_bytes[:scan.end])
            records = len(scan.records)
        return {"vault_generation": generation, "journal_records": records}
    raise StagingError("Der Tresor änderte sich beim Kopieren zu oft (Verdichtungen)")


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def file_digests(root: Path) -> dict[str, dict[str, Any]]:
    """Every file below ``root`` (but the manifest): its size and SHA-256, by relative path."""
    found: dict[str, dict[str, Any]] = {}
    for directory, _, names in os.walk(root):
        for name in sorted(names):
            path = Path(directory) / name
            relative = path.relative_to(root).as_posix()
            if relative == MANIFEST or path.is_symlink():
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            found[relative] = {"size": path.stat().st_size, "sha256": digest}
    return dict(sorted(found.items()))


def find_manifest(restored: Path) -> Path | None:
    """The staging tree inside a restore target (restic keeps the absolute path)."""
    for directory, _, names in os.walk(restored):
        if MANIFEST in names:
            return Path(directory)
    return None


def verify_tree(root: Path) -> list[str]:
    """What of the tree at ``root`` differs from its manifest ([] = nothing)."""
    try:
        manifest = json.loads((root / MANIFEST).read_text("utf-8"))
        wanted = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return ["manifest.json fehlt oder ist unlesbar"]
    found = file_digests(root)
    problems = [f"{name}: fehlt" for name in wanted if name not in found]
    problems += [f"{name}: weicht ab" for name, entry in wanted.items()
                 if name in found and found[name] != entry]
    problems += [f"{name}: nicht im Manifest" for name in found if name not in wanted]
    return problems
