"""Backing up to every target, verifying, restoring; the runs' state; the nightly schedule.

One run: the staging tree is made once (``staging.stage``: consistent, no key needed), then each
target in turn gets a snapshot of it (a repository that does not exist yet is initialised),
old snapshots are forgotten by the retention and pruned, and the repository's size is noted.
A target that fails is reported and does not stop the others; the next run catches up (restic
deduplicates: nothing is sent twice). Verification: ``restic check`` reading a share of the
data, then a restore drill of the newest snapshot into a temporary folder, its files compared
with the snapshot's manifest.

The state (``state.json`` in the backup directory) holds per target the last good run (when,
snapshot, files, bytes, bytes added), the last failure (kind and restic's words), the last
verification and the repository's size over time (bounded): what the status page and the
dashboard show. No personal data: file names of the staging tree, sizes, times, ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Final

from appliance.backup.password import PasswordFiles, repository_password, write_secret
from appliance.backup.restic import (
    Failure,
    Progress,
    Repository,
    ResticFailure,
    Snapshot,
    read_credentials,
)
from appliance.backup.staging import Sources, StagingError, find_manifest, stage, verify_tree
from appliance.config import BackupTarget, Settings
from appliance.errors import SprechzimmerError
from appliance.vault import RecoveryKey, Vault

_LOGGER = logging.getLogger(__name__)

STATE_FILE: Final = "state.json"
#: sizes kept per target (one per run: more than a year of nights)
MAX_SIZES: Final = 400
HOST: Final = "sprechzimmer"
TAG: Final = "sprechzimmer"
#: a target whose last good backup is older than this is a warning on the dashboard
STALE_AFTER: Final = timedelta(hours=26)
#: a run "shortly after bulk changes": this many journal records since the last run, then
#: this long without a write
BULK_RECORDS: Final = 200
QUIET_AFTER_BULK: Final = timedelta(minutes=5)
#: a failed target is tried again after this long (the next run catches up)
RETRY_AFTER: Final = timedelta(hours=1)
#: how often the schedule looks at the clock
SCHEDULE_TICK_S: Final = 60.0


class BackupError(SprechzimmerError):
    """A backup, verification or restore that could not be done; ``detail`` says why."""

    code = "backup_failed"
    status = 409

    def __init__(self, detail: str) -> None:
        super().__init__(detail=detail)
        self.detail = detail

    def __str__(self) -> str:
        return self.detail


FAILURE_TEXT: Final = {
    Failure.WRONG_PASSWORD: "Das Passwort passt nicht zu diesem Repository: Der "
    "Wiederherstellungsschlüssel gehört zu einer anderen Praxis, oder das Repository wurde mit "
    "einem anderen Schlüssel angelegt.",
    Failure.NO_REPOSITORY: "Unter dieser Adresse gibt es kein restic-Repository.",
    Failure.UNREACHABLE: "Das Ziel ist nicht erreichbar (Netz, Adresse oder Zugangsdaten "
    "prüfen). Der nächste Lauf holt die Sicherung nach.",
    Failure.LOCKED: "Das Repository ist gerade von einem anderen Vorgang gesperrt.",
    Failure.DAMAGED: "Das Repository ist beschädigt oder verändert worden.",
    Failure.NO_RESTIC: "restic ist auf der Box nicht installiert (apt-get install restic).",
    Failure.TIMEOUT: "Der Vorgang dauerte zu lange und wurde abgebrochen.",
    Failure.OTHER: "restic meldete einen Fehler.",
}


def explain(failure: ResticFailure) -> str:
    """A failure in plain German, with restic's own words after it."""
    return f"{FAILURE_TEXT[failure.kind]} ({failure.detail})"


@dataclass(frozen=True, kw_only=True)
class TargetResult:
    """One target's outcome of a run or a verification."""

    target: str
    ok: bool
    detail: str = ""
    snapshot_id: str = ""
    data_added: int = 0


class BackupService:
    """The box's backups: its settings, password files, state and the vault's files."""

    def __init__(self, settings: Settings, *, config_path: Path | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.settings = settings
        self.directory = settings.backup_dir
        self.passwords = PasswordFiles(self.directory)
        self._clock = clock
        self._sources = Sources(vault=settings.vault.path, tls=settings.tls_dir,
                                settings=config_path,
                                devices_key=settings.vault.path.parent / "devices.key")
        self._lock = asyncio.Lock()

    @property
    def targets(self) -> tuple[BackupTarget, ...]:
        return self.settings.backup.targets

    def target(self, name: str) -> BackupTarget:
        for target in self.targets:
            if target.name == name:
                return target
        raise BackupError(f"Es gibt kein Sicherungsziel „{name}“ (bekannt: "
                          + (", ".join(t.name for t in self.targets) or "keines") + ").")

    def keep_password(self, key: RecoveryKey) -> None:
        """The vault's recovery key listener: keep the repositories' password."""
        self.passwords.keep(key)

    @contextlib.asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        """One run or verification at a time, in this process and across processes (the
        nightly run of the service and ``sprechzimmer backup run`` of the IT provider)."""
        async with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.directory / "run.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise BackupError("Auf dieser Box läuft gerade eine andere Sicherung oder "
                                      "Prüfung; bitte später noch einmal.") from None
                yield
            finally:
                os.close(fd)

    # --- repositories ------------------------------------------------------------------------

    def repository(self, url: str, credentials_file: Path | None = None, *,
                   password_file: Path | None = None) -> Repository:
        try:
            credentials = read_credentials(credentials_file)
        except (OSError, ValueError) as exc:
            raise BackupError(f"Die Zugangsdaten des Ziels sind nicht lesbar: {exc}") from None
        ssh = self.directory / "ssh"
        credentials.setdefault("SFTP_IDENTITY", str(ssh / "id_ed25519"))
        credentials.setdefault("SFTP_KNOWN_HOSTS", str(ssh / "known_hosts"))
        return Repository(url, password_file=password_file or self.passwords.current,
                          cache_dir=self.directory / "cache", credentials=credentials)

    def _target_repository(self, target: BackupTarget) -> Repository:
        return self.repository(target.url, target.credentials_file)

    def _need_password(self) -> None:
        if not self.passwords.known:
            raise BackupError(
                "Die Box kennt das Passwort der Sicherungen noch nicht: Es entsteht aus dem "
                "Wiederherstellungsschlüssel. Geben Sie ihn einmal ein (sprechzimmer backup key "
                "--recovery-key-file DATEI, oder in der Verwaltung unter Datensicherung).")

    async def _open(self, target: BackupTarget) -> Repository:
        """The target's repository, initialised if new, with the current password as a key
        (after a rotation of the recovery key the previous password adds it)."""
        repository = self._target_repository(target)
        try:
            if not await repository.exists():
                await repository.init()
                _LOGGER.info("backup target %s: repository initialised", target.name)
        except ResticFailure as exc:
            if exc.kind is not Failure.WRONG_PASSWORD or not self.passwords.previous.is_file():
                raise
            old = repository.with_password(self.passwords.previous)
            await old._run(["key", "add", "--new-password-file", str(self.passwords.current)])
            _LOGGER.info("backup target %s: the new recovery key's password added", target.name)
        return repository

    # --- runs ----------------------------------------------------------------------------------

    async def run(self, names: Sequence[str] = (), *,
                  progress: Callable[[str, float, int], None] | None = None
                  ) -> list[TargetResult]:
        """Back up to the named targets (all without names); one result per target."""
        self._need_password()
        targets = [self.target(name) for name in names] if names else list(self.targets)
        if not targets:
            raise BackupError("Es ist kein Sicherungsziel eingetragen ([[backup.targets]]).")
        async with self._exclusive():
            staging = self.directory / "staging"
            try:
                manifest = await asyncio.to_thread(
                    stage, self._sources, staging, now=self._clock().isoformat())
            except (StagingError, OSError) as exc:
                raise BackupError(f"Die Daten der Box konnten nicht bereitgestellt werden: "
                                  f"{exc}") from None
            self._record_schedule("staged", {key: manifest[key] for key in (
                "vault_generation", "journal_records")})
            results = []
            for target in targets:
                results.append(await self._run_one(target, staging, manifest, progress))
            if all(r.ok for r in results) and set(self.targets) <= set(targets):
                self.passwords.forget_previous()
            return results

    async def _run_one(self, target: BackupTarget, staging: Path, manifest: dict[str, Any],
                       progress: Callable[[str, float, int], None] | None) -> TargetResult:
        started = self._clock()
        on_progress: Progress | None = (
            (lambda share, done: progress(target.name, share, done)) if progress else None)
        try:
            repository = await self._open(target)
            summary = await repository.backup(staging, host=HOST, tags=[TAG],
                                              progress=on_progress)
            backup = self.settings.backup
            await repository.forget(daily=backup.keep_daily, weekly=backup.keep_weekly,
                                    monthly=backup.keep_monthly)
            size = await repository.size()
        except (ResticFailure, BackupError) as exc:
            detail = explain(exc) if isinstance(exc, ResticFailure) else exc.detail
            _LOGGER.warning("backup to %s failed: %s", target.name, detail)
            self._record(target.name, failure={"at": started.isoformat(), "detail": detail,
                                               "kind": getattr(exc, "kind", "other")})
            return TargetResult(target=target.name, ok=False, detail=detail)
        self._record(target.name, success={
            "at": started.isoformat(), "snapshot_id": summary.snapshot_id,
            "files": len(manifest["files"]), "bytes": summary.total_bytes_processed,
            "data_added": summary.data_added, "took_s": round(summary.total_duration, 2),
            "vault_generation": manifest["vault_generation"],
            "journal_records": manifest["journal_records"],
        }, size=(started.isoformat(), size))
        _LOGGER.info("backup to %s: snapshot %s, %d bytes added", target.name,
                     summary.snapshot_id[:8], summary.data_added)
        return TargetResult(target=target.name, ok=True, snapshot_id=summary.snapshot_id,
                            data_added=summary.data_added)

    async def verify(self, names: Sequence[str] = ()) -> list[TargetResult]:
        """Check each target and drill a restore of its newest snapshot."""
        self._need_password()
        targets = [self.target(name) for name in names] if names else list(self.targets)
        results = []
        async with self._exclusive():
            for target in targets:
                at = self._clock().isoformat()
                try:
                    detail = await self._verify_one(target)
                    ok = not detail
                except ResticFailure as exc:
                    ok, detail = False, explain(exc)
                except BackupError as exc:
                    ok, detail = False, exc.detail
                self._record(target.name, verification={"at": at, "ok": ok, "detail": detail})
                if not ok:
                    _LOGGER.warning("verification of %s failed: %s", target.name, detail)
                results.append(TargetResult(target=target.name, ok=ok, detail=detail))
        return results

    async def _verify_one(self, target: BackupTarget) -> str:
        repository = self._target_repository(target)
        await repository.check()
        snapshots = await repository.snapshots()
        if not snapshots:
            return "Das Repository enthält noch keine Sicherung."
        with tempfile.TemporaryDirectory(dir=self.directory, prefix="drill-") as drill:
            await repository.restore(snapshots[-1].id, Path(drill))
            root = find_manifest(Path(drill))
            if root is None:
                return "Die Sicherung enthält kein Manifest."
            problems = await asyncio.to_thread(verify_tree, root)
        return "; ".join(problems[:5])

    async def snapshots(self, name: str) -> list[Snapshot]:
        self._need_password()
        try:
            return await self._target_repository(self.target(name)).snapshots()
        except ResticFailure as exc:  # a message for the admin, not a traceback
            raise BackupError(explain(exc)) from None

    # --- the schedule --------------------------------------------------------------------------

    async def run_schedule(self, *, timezone: Callable[[], tzinfo]) -> None:
        """Until cancelled: the nightly run at ``[backup] schedule`` (practice time, which
        ``timezone`` gives) with the weekly verification after it; a run shortly after bulk
        changes; failed targets again after an hour. Nothing without a password or targets."""
        while True:
            await asyncio.sleep(SCHEDULE_TICK_S)
            try:
                await self.scheduled(timezone())
            except BackupError as exc:
                _LOGGER.warning("scheduled backup: %s", exc.detail)
            except Exception:
                _LOGGER.exception("the scheduled backup failed")

    async def scheduled(self, zone: tzinfo) -> str | None:
        """Whatever is due now (one step of the schedule); what was done, if anything."""
        if not self.targets or not self.passwords.known:
            return None
        now = self._clock()
        local = now.astimezone(zone)
        state = self.state()
        schedule = self.settings.backup.schedule
        if schedule is not None and local.time() >= schedule and \
                state.get("_schedule", {}).get("nightly") != local.date().isoformat():
            self._record_schedule("nightly", local.date().isoformat())
            await self.run()
            if local.weekday() == self.settings.backup.verify_weekday:
                await self.verify()
            return "nightly"
        if self._bulk_changes(now):
            await self.run()
            return "bulk"
        failed = [name for name, entry in state.items() if not name.startswith("_")
                  and name in {t.name for t in self.targets} and "failure" in entry
                  and now - datetime.fromisoformat(entry["failure"]["at"]) >= RETRY_AFTER]
        if failed:
            await self.run(failed)
            return "retry"
        return None

    def _bulk_changes(self, now: datetime) -> bool:
        """Many records written since the last run, and none for a few minutes."""
        last = self.state().get("_schedule", {}).get("staged")
        status = Vault(self.settings.vault.path).status()
        if not status.initialized or last is None:
            return False
        changed = (BULK_RECORDS if status.generation != last["vault_generation"]
                   else status.journal_records - last["journal_records"])
        if changed < BULK_RECORDS:
            return False
        journal_file = self.settings.vault.path / "journal"
        try:
            written = datetime.fromtimestamp(journal_file.stat().st_mtime, UTC)
        except OSError:
            return False
        return now - written >= QUIET_AFTER_BULK

    def _record_schedule(self, key: str, value: Any) -> None:
        state = self.state()
        state.setdefault("_schedule", {})[key] = value
        self._write_state(state)

    # --- state ---------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Per target: ``success``, ``failure``, ``verification``, ``sizes``."""
        try:
            data = json.loads((self.directory / STATE_FILE).read_text("utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _record(self, name: str, *, success: dict[str, Any] | None = None,
                failure: dict[str, Any] | None = None,
                verification: dict[str, Any] | None = None,
                size: tuple[str, int] | None = None) -> None:
        state = self.state()
        entry = state.setdefault(name, {})
        if success is not None:
            entry["success"] = success
            entry.pop("failure", None)
        if failure is not None:
            entry["failure"] = failure
        if verification is not None:
            entry["verification"] = verification
        if size is not None:
            entry["sizes"] = [*entry.get("sizes", []), list(size)][-MAX_SIZES:]
        self._write_state(state)

    def _write_state(self, state: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = self.directory / f".{STATE_FILE}.tmp"
        try:
            temporary.write_text(json.dumps(state, indent=1, sort_keys=True), "utf-8")
            os.replace(temporary, self.directory / STATE_FILE)
        except OSError as exc:
            _LOGGER.warning("could not write the backup state: %s", exc.strerror)

    # --- restore -------------------------------------------------------------------------------

    async def restore(self, url: str, key: RecoveryKey, *, snapshot_id: str | None = None,
                      credentials_file: Path | None = None,
                      progress: Progress | None = None) -> Snapshot:
        """Restore a snapshot of ``url`` onto this box, which must have no vault yet.

        The repository opens only with the password of ``key``; the restored tree must match
        its manifest, and its vault must open with ``key``. Only then is anything moved into
        place: a wrong key or a tampered snapshot leaves the box as it was.
        """
        vault_dir = self.settings.vault.path
        if (vault_dir / "snapshot").exists():
            raise BackupError(f"Auf dieser Box gibt es schon einen Tresor ({vault_dir}): Eine "
                              "Wiederherstellung überschreibt nichts. Verschieben Sie ihn "
                              "erst, wenn er wirklich ersetzt werden soll.")
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        work = Path(tempfile.mkdtemp(dir=self.directory, prefix="restore-"))
        try:
            password = work / "password"
            write_secret(password, repository_password(key))
            repository = self.repository(url, credentials_file, password_file=password)
            try:
                # the lost box may have died during forget or prune: its exclusive lock would
                # refuse the restore (stale by now; a key that may only read cannot remove it)
                with contextlib.suppress(ResticFailure):
                    await repository.unlock()
                snapshots = await repository.snapshots()
                chosen = _choose(snapshots, snapshot_id)
                await repository.restore(chosen.id, work / "tree", progress=progress)
            except ResticFailure as exc:
                if exc.kind is Failure.WRONG_PASSWORD:
                    raise BackupError("Der Wiederherstellungsschlüssel passt nicht zu dieser "
                                      "Sicherung. Prüfen Sie ihn auf dem Notfallblatt.") from None
                raise BackupError(explain(exc)) from None
            root = find_manifest(work / "tree")
            problems = await asyncio.to_thread(verify_tree, root) if root else ["kein Manifest"]
            if root is None or problems:
                raise BackupError("Die Sicherung ist beschädigt oder verändert worden; nichts "
                                  "wurde übernommen (" + "; ".join(problems[:3]) + ").")
            _check_vault_opens(root / "vault", key)
            _move_into_place(root, self.settings, self._sources)
            self.passwords.keep(key)
            _LOGGER.warning("vault restored from a backup (snapshot %s)", chosen.short_id)
            return chosen
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _choose(snapshots: list[Snapshot], snapshot_id: str | None) -> Snapshot:
    if not snapshots:
        raise BackupError("Das Repository enthält keine Sicherung.")
    if snapshot_id is None:
        return snapshots[-1]
    for snapshot in snapshots:
        if snapshot.id.startswith(snapshot_id) or snapshot.short_id == snapshot_id:
            return snapshot
    raise BackupError(f"Es gibt keine Sicherung {snapshot_id} (sprechzimmer backup list).")


def _check_vault_opens(directory: Path, key: RecoveryKey) -> None:
    """The restored vault opens with the recovery key (and is closed again)."""
    vault = Vault(directory)
    try:
        vault.unseal_with_recovery_key(key)
    except SprechzimmerError as exc:
        raise BackupError(f"Der wiederhergestellte Tresor öffnet sich nicht mit diesem "
                          f"Schlüssel; nichts wurde übernommen ({exc}).") from None
    finally:
        with contextlib.suppress(SprechzimmerError):
            vault.seal()


def _move_into_place(root: Path, settings: Settings, sources: Sources) -> None:
    """The restored vault (and TLS material, devices key, settings where none exist) into
    place; the vault last, by rename, so a box is never left with half a vault."""
    vault_dir = settings.vault.path
    vault_dir.parent.mkdir(parents=True, exist_ok=True)
    if (root / "tls").is_dir() and not (sources.tls.exists() and any(sources.tls.iterdir())):
        shutil.rmtree(sources.tls, ignore_errors=True)
        shutil.copytree(root / "tls", sources.tls, symlinks=True)
        os.chmod(sources.tls, 0o700)
    if (root / "devices.key").is_file() and sources.devices_key is not None \
            and not sources.devices_key.exists():
        shutil.copy2(root / "devices.key", sources.devices_key)
    if (root / "settings" / "sprechzimmer.toml").is_file():
        kept = settings.backup_dir / "restored-settings.toml"
        shutil.copy2(root / "settings" / "sprechzimmer.toml", kept)
    staged = vault_dir.with_name(f".{vault_dir.name}.restored")
    shutil.rmtree(staged, ignore_errors=True)
    shutil.copytree(root / "vault", staged)
    os.chmod(staged, 0o700)
    for path in staged.iterdir():
        os.chmod(path, 0o600)
    if vault_dir.exists():
        vault_dir.rmdir()  # empty (checked before): a directory with files stops the rename
    os.replace(staged, vault_dir)
