"""Backup with restic to a local repository: first backup, incremental, full restore.

The vault: 10,000 patients and 10,000 appointments (20k records, plus an audit entry each),
made through the real services (``build_services``, a cheap Argon2id: the KDF is not what is
measured), in bench/.work/. ``BackupService`` as the box runs it (in this process, restic 0.14 as
its subprocess), one local target on the same disk.

- **first backup**: ``BackupService.run`` into a new repository: staging copy, ``restic init``,
  ``backup``, ``unlock``, ``forget --prune``, ``stats`` (a fresh repository each time). Baseline:
  ``cp -a`` of the vault directory (no fsync, as cp does).
- **incremental**: after 100 small changes (a patient's phone number each: 100 updates and their
  100 audit entries, appended to the journal), ``BackupService.run`` again. "changed bytes": what
  differs in the vault's files from before (the journal's appended tail; a file replaced whole
  counts whole). Baseline: copying just those bytes (read the tail, write it to a new file).
  "restic backup s" is restic's own ``total_duration`` of the ``backup`` command. "bytes" is
  restic's ``data_added`` (new data the backup stored, before the retention's prune), the goal's
  measure; "written to repository" counts the files the whole run created (packs, index,
  snapshot; prune's repacks too: what an off-site target receives); "net growth" is after
  ``forget --prune`` (the retention keeps the newest snapshot of a day: a second run on the same
  day drops the first one's own data). A second row adds a compaction after the 100 changes (the
  vault writes a new snapshot every 2000 journal records or 4 MiB: some days, not every day).
- "restic commands": the wall seconds of each restic command of the last run, in order (the bench
  wraps ``Repository._run`` to time them); "staging copy s": ``staging.stage`` alone.
- **full restore**: ``BackupService.restore`` of the newest snapshot onto an empty box with the
  recovery key (restic ``restore --verify``, the manifest check, the vault opened with the key,
  moved into place). Baseline: ``cp -a`` of the vault directory. "restic restore s" is ``restic
  restore`` alone (``Repository.restore`` into a temporary directory).

Goals (issue 13): incremental ≤ 3× copying the changed bytes and growth ≤ 2× the changed bytes;
full restore ≤ 3× ``cp -a``. Medians of 3 runs each (interleaved with their baselines).

What dominates (structural, not noise): every restic command opens the repository's key with
scrypt (N=2^15, r=8, p=6, calibrated by ``restic init``; ~0.2-0.4 s here) and loads the index; a
run has six commands (cat, unlock, backup, unlock, forget --prune, stats), a restore three. That
fixed cost of 2-3 s is what the time ratios measure against copies of well under a second. The
journal is one file below restic's smallest chunk (512 KiB): each backup stores the whole journal
since the last compaction again, not its new tail, so "added / changed" is about (journal size) /
(today's changes). A compaction re-encrypts the whole snapshot: that backup adds the vault's
full size, whatever the day's changes were.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from appliance.backup.restic import Repository
from appliance.backup.service import BackupService
from appliance.backup.staging import stage
from appliance.config import BackupSettings, BackupTarget, Settings, VaultSettings
from appliance.practice.models import PracticeProfile, Role
from appliance.practice.onboarding import onboard
from appliance.practice.services import PracticeServices
from appliance.runtime import build_services
from appliance.vault import KdfParams, RecoveryKey

WORK = Path(__file__).resolve().parent / ".work"
RECORDS = 20_000
CHANGES = 100
REPEAT = 3
_KDF = KdfParams(memory_kib=1024, iterations=1, lanes=1)
_PASSWORD = "admin-passwort-123"
_PROFILE = PracticeProfile(
    name="Praxis Dr. Beispiel", bsnr="123456789", street="Hauptstr. 1", postal_code="50667",
    city="Köln", kv_region="NO", timezone="Europe/Berlin",
    public_urls=("https://videosprechstunde.praxis-beispiel.de",))


def _settings(box: Path, repository: Path) -> Settings:
    return Settings(vault=VaultSettings(path=box / "vault"), backup=BackupSettings(
        targets=(BackupTarget(name="local", url=str(repository)),), schedule=None))


def _build(box: Path, repository: Path) -> tuple[PracticeServices, RecoveryKey, list[str]]:
    """An onboarded box with RECORDS/2 patients and as many appointments; the patients' ids."""
    services = build_services(_settings(box, repository), kdf=_KDF)
    key = onboard(services, profile=_PROFILE, username="admin", display_name="Anna Admin",
                  password=_PASSWORD, roles={Role.ADMIN})
    services.staff.add("admin", username="dr.mueller", display_name="Dr. Maria Müller",
                       roles={Role.DOCTOR}, password="arzt-passwort-1234", lanr="123456701")
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    ids = []
    for number in range(RECORDS // 2):
        patient = services.patients.add("admin", full_name=f"Patientin {number:05d} Beispiel",
                                        email=f"p{number}@example.org",
                                        phone=f"+49 221 {number:07d}")
        services.appointments.create("admin", doctor="dr.mueller", patient_id=patient.id,
                                     start=start + timedelta(minutes=15 * number))
        ids.append(patient.id)
    return services, key, ids


#: (restic command, wall seconds) of every restic run since the last reset
_COMMANDS: list[tuple[str, float]] = []


def _timing(original: Callable[..., Any]) -> Callable[..., Any]:
    """``Repository._run`` that notes each restic command's wall time in _COMMANDS."""
    async def run(self: Repository, args: list[str], **kwargs: Any) -> str:
        started = time.perf_counter()
        try:
            return await original(self, args, **kwargs)
        finally:
            name = next(a for a in args if not a.startswith("-"))
            _COMMANDS.append((name, time.perf_counter() - started))
    return run


def _breakdown() -> str:
    """The restic commands of the last run with their seconds, in order."""
    return " · ".join(f"{name} {took:.2f}" for name, took in _COMMANDS)


def _files(path: Path) -> dict[str, int]:
    return {str(p.relative_to(path)): p.stat().st_size for p in path.rglob("*") if p.is_file()}


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _cp_a(source: Path, target: Path) -> float:
    shutil.rmtree(target, ignore_errors=True)
    took = _timed(lambda: subprocess.run(["cp", "-a", str(source), str(target)], check=True))
    shutil.rmtree(target)
    return took


def _changed(before: Path, after: Path) -> list[tuple[Path, int]]:
    """(file, offset) of what differs in ``after`` from ``before``: an appended tail from its
    offset, a replaced file from 0."""
    changed = []
    for path in sorted(after.iterdir()):
        old = before / path.name
        new_bytes = path.read_bytes()
        old_bytes = old.read_bytes() if old.exists() else b""
        if new_bytes == old_bytes:
            continue
        appended = len(new_bytes) > len(old_bytes) and new_bytes.startswith(old_bytes)
        changed.append((path, len(old_bytes) if appended else 0))
    return changed


def _copy_changed(changed: list[tuple[Path, int]], target: Path) -> float:
    """Copy just the changed bytes (each file's tail from its offset) into ``target``."""
    target.mkdir(exist_ok=True)

    def copy() -> None:
        for path, offset in changed:
            with path.open("rb") as source, (target / path.name).open("wb") as out:
                source.seek(offset)
                shutil.copyfileobj(source, out)

    took = _timed(copy)
    shutil.rmtree(target)
    return took


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _incremental(services: PracticeServices, service: BackupService, ids: list[str],
                 repository: Path, vault: Path, round_: int, *, compact: bool
                 ) -> dict[str, float]:
    """CHANGES small changes, then one run; its figures."""
    before = WORK / "vault-before"
    shutil.rmtree(before, ignore_errors=True)
    shutil.copytree(vault, before)
    for index in range(CHANGES):
        services.patients.update("admin", ids[(round_ * CHANGES + index) % len(ids)],
                                 phone=f"+49 30 {round_:02d}{index:05d}")
    if compact:
        services.vault.compact()
    changed = _changed(before, vault)
    changed_bytes = sum(path.stat().st_size - offset for path, offset in changed)
    baseline = _copy_changed(changed, WORK / "changed-copy")
    files_before = _files(repository)
    _COMMANDS.clear()
    took = _timed(lambda: asyncio.run(service.run()))
    breakdown = _breakdown()
    files_after = _files(repository)
    success = service.state()["local"]["success"]
    shutil.rmtree(before)
    journal = vault / "journal"
    return {"s": took, "baseline": baseline, "changed": changed_bytes,
            "written": sum(size for name, size in files_after.items()
                           if name not in files_before),
            "growth": sum(files_after.values()) - sum(files_before.values()),
            "restic": success["took_s"], "added": success["data_added"],
            "journal": journal.stat().st_size if journal.exists() else 0,
            "breakdown": breakdown}


def run() -> list[dict[str, Any]]:
    """Build the vault, then measure; one row per operation."""
    original = Repository._run
    Repository._run = _timing(original)  # type: ignore[method-assign]
    try:
        return _measure()
    finally:
        Repository._run = original  # type: ignore[method-assign]


def _measure() -> list[dict[str, Any]]:
    WORK.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=WORK) as directory:
        root = Path(directory)
        repository = root / "repository"
        started = time.perf_counter()
        services, key, ids = _build(root / "box", repository)
        built = time.perf_counter() - started
        vault = root / "box" / "vault"
        vault_bytes = _tree_bytes(vault)
        print(f"vault: {RECORDS} records, {vault_bytes / 1e6:.1f} MB, built in {built:.0f} s",
              flush=True)
        settings = _settings(root / "box", repository)
        service = BackupService(settings)

        first, copies, sizes = [], [], []
        for _ in range(REPEAT):
            shutil.rmtree(repository, ignore_errors=True)
            shutil.rmtree(settings.backup_dir / "cache", ignore_errors=True)
            copies.append(_cp_a(vault, root / "copy"))
            _COMMANDS.clear()
            first.append(_timed(lambda: asyncio.run(service.run())))
            sizes.append(_tree_bytes(repository))
        first_breakdown = _breakdown()
        staging = _median([_timed(lambda: stage(service._sources, root / "staging", now=""))
                           for _ in range(REPEAT)])
        shutil.rmtree(root / "staging")
        rows.append({
            "operation": "first backup", "s": round(_median(first), 3),
            "baseline": "cp -a vault", "baseline s": round(_median(copies), 4),
            "ratio": round(_median(first) / _median(copies), 1),
            "bytes": _median(sizes), "vault bytes": vault_bytes,
            "bytes / vault": round(_median(sizes) / vault_bytes, 2),
            "staging copy s": round(staging, 3),
            "restic commands (s, last run)": first_breakdown,
        })

        for compact in (False, True):
            figures = [_incremental(services, service, ids, repository, vault, round_,
                                    compact=compact)
                       for round_ in range(REPEAT * (1 + compact), REPEAT * (2 + compact))]

            def median(name: str, figures: list[dict[str, float]] = figures) -> float:
                return _median([f[name] for f in figures])

            rows.append({
                "operation": f"incremental, {CHANGES} changes" + (
                    " + compaction" if compact else ""),
                "s": round(median("s"), 3), "baseline": "copy changed bytes",
                "baseline s": round(median("baseline"), 5),
                "ratio": round(median("s") / median("baseline"), 1),
                "goal": "≤ 3×", "restic backup s": round(median("restic"), 3),
                "bytes": median("added"), "changed bytes": median("changed"),
                "added / changed": round(median("added") / median("changed"), 2),
                "growth goal": "≤ 2×", "written to repository": median("written"),
                "net growth after prune": median("growth"), "journal bytes": median("journal"),
                "vault bytes": _tree_bytes(vault),
                "restic commands (s, last run)": figures[-1]["breakdown"],
            })
        services.vault.close()

        restores, restic_only, copies = [], [], []
        for index in range(REPEAT):
            copies.append(_cp_a(vault, root / "copy"))
            target = root / f"new-box-{index}"
            restore_service = BackupService(_settings(target, repository))
            _COMMANDS.clear()
            restores.append(_timed(lambda s=restore_service: asyncio.run(
                s.restore(str(repository), key))))
            restore_breakdown = _breakdown()
            drill = Path(tempfile.mkdtemp(dir=root))
            repo = service.repository(str(repository))
            newest = asyncio.run(repo.snapshots())[-1].id
            restic_only.append(_timed(lambda r=repo, d=drill, n=newest: asyncio.run(
                r.restore(n, d))))
            shutil.rmtree(drill)
            shutil.rmtree(target)
        rows.append({
            "operation": "full restore", "s": round(_median(restores), 3),
            "baseline": "cp -a vault", "baseline s": round(_median(copies), 4),
            "ratio": round(_median(restores) / _median(copies), 1), "goal": "≤ 3×",
            "restic restore s": round(_median(restic_only), 3), "vault bytes": _tree_bytes(vault),
            "restic commands (s, last run)": restore_breakdown,
        })
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
