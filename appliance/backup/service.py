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
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Final

from appliance.backup.password import PasswordFiles, repository_password, write_secret
from appliance.backup.restic import (
    CREDENTIAL_KEYS,
    BackupSummary,
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
#: targets added in the admin UI (beside those of the settings file), and their credentials
TARGETS_FILE: Final = "targets.json"
CREDENTIALS_DIR: Final = "credentials"
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


@dataclass
class Activity:
    """What the box's backup does right now (or did last), for the status page."""

    kind: str
    started: datetime
    target: str = ""
    share: float = 0.0
    finished: datetime | None = None
    ok: bool | None = None
    detail: str = ""


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
        self.activity: Activity | None = None
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[], None]] = []

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` when a run, verification or restore started in the background
        begins, moves on or ends."""
        self._listeners.append(listener)

    def _tell(self) -> None:
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                _LOGGER.exception("a backup listener failed")

    def start(self, kind: str, names: Sequence[str] = ()) -> Activity:
        """A run (``run``) or verification (``verify``) in the background, for the admin UI."""
        if self._task is not None and not self._task.done():
            raise BackupError("Es läuft schon eine Sicherung oder Prüfung.")
        self._need_password()
        activity = self.activity = Activity(kind=kind, started=self._clock())

        def progress(target: str, share: float, done: int) -> None:
            activity.target, activity.share = target, share
            self._tell()

        async def work() -> None:
            try:
                results = await (self.run(names, progress=progress) if kind == "run"
                                 else self.verify(names))
                activity.ok = all(r.ok for r in results)
                activity.detail = "; ".join(f"{r.target}: {r.detail}" for r in results
                                            if not r.ok)
            except BackupError as exc:
                activity.ok, activity.detail = False, exc.detail
            finally:
                activity.finished, activity.share = self._clock(), 1.0
                self._tell()

        self._task = asyncio.get_running_loop().create_task(work())
        self._tell()
        return activity

    def next_run(self, zone: tzinfo) -> datetime | None:
        """When the nightly run comes next (None: only by hand, or nothing to back up)."""
        schedule = self.settings.backup.schedule
        if schedule is None or not self.targets:
            return None
        local = self._clock().astimezone(zone)
        today = local.replace(hour=schedule.hour, minute=schedule.minute, second=0,
                              microsecond=0)
        done = self.state().get("_schedule", {}).get("nightly") == local.date().isoformat()
        return today + timedelta(days=1) if done or local >= today + timedelta(minutes=2) \
            else today

    def warnings(self) -> list[tuple[str, dict[str, Any]]]:
        """What the staff dashboard warns of, as (code, parameters) for the message catalogs
        (``backup.warning.<code>``): no password, a failed run, no copy yet, a copy too old,
        a failed verification."""
        if not self.targets:
            return []
        if not self.passwords.known:
            return [("no_password", {})]
        now, state, found = self._clock(), self.state(), []
        for target in self.targets:
            entry = state.get(target.name, {})
            success = entry.get("success")
            if "failure" in entry:
                found.append(("failed", {"target": target.name}))
            elif success is None:
                found.append(("none_yet", {"target": target.name}))
            elif now - datetime.fromisoformat(success["at"]) > STALE_AFTER:
                age = now - datetime.fromisoformat(success["at"])
                found.append(("stale", {"target": target.name,
                                        "hours": int(age.total_seconds() // 3600)}))
            verification = entry.get("verification")
            if verification is not None and not verification.get("ok"):
                found.append(("verification_failed", {"target": target.name}))
        return found

    @property
    def targets(self) -> tuple[BackupTarget, ...]:
        """The settings' targets, then those added in the admin UI."""
        return self.settings.backup.targets + self.box_targets()

    def box_targets(self) -> tuple[BackupTarget, ...]:
        """The targets added in the admin UI (kept in the backup directory, not the settings)."""
        try:
            raw = json.loads((self.directory / TARGETS_FILE).read_text("utf-8"))
        except (OSError, ValueError):
            return ()
        found = []
        for entry in raw if isinstance(raw, list) else ():
            credentials = self.directory / CREDENTIALS_DIR / f"{entry.get('name')}.env"
            found.append(BackupTarget(name=str(entry["name"]), url=str(entry["url"]),
                                      credentials_file=credentials if credentials.is_file()
                                      else None))
        return tuple(found)

    def add_target(self, name: str, url: str, credentials: dict[str, str]) -> BackupTarget:
        """A target from the admin UI; its credentials go to a file of their own (0600)."""
        from appliance.config import ConfigError, load_target

        try:
            target = load_target(name, url)
        except ConfigError as exc:
            raise BackupError(str(exc)) from None
        if any(t.name == target.name for t in self.targets):
            raise BackupError(f"Es gibt schon ein Ziel „{target.name}“.")
        unknown = sorted(set(credentials) - CREDENTIAL_KEYS)
        if unknown or any("\n" in v or "\r" in v for v in credentials.values()):
            raise BackupError("Unbekannte oder mehrzeilige Zugangsdaten: " + ", ".join(unknown))
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if credentials:
            folder = self.directory / CREDENTIALS_DIR
            folder.mkdir(exist_ok=True, mode=0o700)
            write_secret(folder / f"{target.name}.env",
                         "\n".join(f"{k}={v}" for k, v in sorted(credentials.items())))
        entries = [{"name": t.name, "url": t.url} for t in self.box_targets()]
        entries.append({"name": target.name, "url": target.url})
        write_secret(self.directory / TARGETS_FILE, json.dumps(entries, indent=1))
        return self.target(target.name)

    def remove_target(self, name: str) -> None:
        """Remove a target added in the admin UI (its repository stays as it is)."""
        if any(t.name == name for t in self.settings.backup.targets):
            raise BackupError(f"Das Ziel „{name}“ steht in der Einstellungsdatei; es wird dort "
                              "entfernt.")
        kept = [{"name": t.name, "url": t.url} for t in self.box_targets() if t.name != name]
        if len(kept) == len(self.box_targets()):
            raise BackupError(f"Es gibt kein Ziel „{name}“.")
        write_secret(self.directory / TARGETS_FILE, json.dumps(kept, indent=1))
        with contextlib.suppress(FileNotFoundError):
            (self.directory / CREDENTIALS_DIR / f"{name}.env").unlink()

    def target(self, name: str) -> BackupTarget:
        for target in self.targets:
            if target.name == name:
                return target
        raise BackupError(f"Es gibt kein Sicherungsziel „{name}“ (bekannt: "
                          + (", ".join(t.name for t in self.targets) or "keines") + ").")

    def keep_password(self, key: RecoveryKey) -> None:
        """Keep the repositories' password of ``key`` (open dashboards hear of it)."""
        self.passwords.keep(key)
        self._tell()

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
                   credentials: Mapping[str, str] | None = None,
                   password_file: Path | None = None) -> Repository:
        """A repository with the credentials of a file, or given (a new box's restore)."""
        try:
            found = read_credentials(credentials_file)
        except (OSError, ValueError) as exc:
            raise BackupError(f"Die Zugangsdaten des Ziels sind nicht lesbar: {exc}") from None
        unknown = sorted(set(credentials or {}) - CREDENTIAL_KEYS)
        if unknown:
            raise BackupError("Unbekannte Zugangsdaten: " + ", ".join(unknown))
        credentials = {**found, **(credentials or {})}
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

    async def _backup(self, target: BackupTarget, staging: Path,
                      progress: Progress | None) -> tuple[Repository, BackupSummary]:
        """A snapshot of ``staging`` in the target's repository: one restic run when all is well
        (each costs restic's key derivation); a new repository is initialised first, and after a
        replaced recovery key the new key's password takes the old one's place."""
        repository = self._target_repository(target)
        try:
            return repository, await repository.backup(staging, host=HOST, tags=[TAG],
                                                       progress=progress)
        except ResticFailure as exc:
            if exc.kind is Failure.NO_REPOSITORY:
                await repository.init()
                _LOGGER.info("backup target %s: repository initialised", target.name)
            elif exc.kind is Failure.WRONG_PASSWORD and self.passwords.previous.is_file():
                # the recovery key was replaced: the new one's password in, the old one's out
                # (a lost or photographed old sheet must not open the copies any more)
                old = repository.with_password(self.passwords.previous)
                old_key = await old.current_key()
                await old.add_key(self.passwords.current)
                await repository.remove_key(old_key)
                _LOGGER.info("backup target %s: the new recovery key replaced the old",
                             target.name)
            else:
                raise
        return repository, await repository.backup(staging, host=HOST, tags=[TAG],
                                                   progress=progress)

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
            repository, summary = await self._backup(target, staging, on_progress)
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

    async def test(self, name: str) -> tuple[str, str]:
        """Try the target: ``("ok", …)`` with its snapshots, ``("empty", …)`` when there is no
        repository yet (``init`` makes one), else ``("error", why)``."""
        self._need_password()
        try:
            count = len(await self._target_repository(self.target(name)).snapshots())
        except ResticFailure as exc:
            if exc.kind is Failure.NO_REPOSITORY:
                return "empty", "Erreichbar, aber noch kein Repository: „Anlegen“ legt eines an."
            return "error", explain(exc)
        return "ok", f"Verbindung in Ordnung, {count} Sicherungen."

    async def init(self, name: str) -> None:
        """Create the target's repository with the practice's password."""
        self._need_password()
        try:
            await self._target_repository(self.target(name)).init()
        except ResticFailure as exc:
            raise BackupError(explain(exc)) from None

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

    async def restore_snapshots(self, url: str, key: RecoveryKey,
                                credentials: Mapping[str, str] | None = None) -> list[Snapshot]:
        """The snapshots a new box could restore from ``url`` with ``key`` (one asking at a
        time: before onboarding anyone on the LAN may ask, and each costs restic a second)."""
        if self._lock.locked():
            raise BackupError("Die Box liest gerade schon eine Sicherung; bitte einen Moment.")
        async with self._lock:
            return await self._restore_snapshots(url, key, credentials)

    async def _restore_snapshots(self, url: str, key: RecoveryKey,
                                 credentials: Mapping[str, str] | None) -> list[Snapshot]:
        with tempfile.TemporaryDirectory(dir=self._work_dir(), prefix="restore-") as work:
            password = Path(work) / "password"
            write_secret(password, repository_password(key))
            repository = self.repository(url, credentials=credentials, password_file=password)
            try:
                return await repository.snapshots()
            except ResticFailure as exc:
                raise BackupError(_restore_failure(exc)) from None

    def start_restore(self, url: str, key: RecoveryKey, *, snapshot_id: str | None,
                      credentials: Mapping[str, str] | None = None) -> Activity:
        """A restore in the background (the onboarding wizard of a new box)."""
        if self._task is not None and not self._task.done():
            raise BackupError("Es läuft schon eine Wiederherstellung.")
        activity = self.activity = Activity(kind="restore", started=self._clock())

        def progress(share: float, done: int) -> None:
            activity.share = share
            self._tell()

        async def work() -> None:
            try:
                chosen = await self.restore(url, key, snapshot_id=snapshot_id,
                                            credentials=credentials, progress=progress)
                activity.ok, activity.detail = True, chosen.time
            except BackupError as exc:
                activity.ok, activity.detail = False, exc.detail
            finally:
                activity.finished = self._clock()
                self._tell()

        self._task = asyncio.get_running_loop().create_task(work())
        return activity

    def _work_dir(self) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self.directory

    async def restore(self, url: str, key: RecoveryKey, *, snapshot_id: str | None = None,
                      credentials_file: Path | None = None,
                      credentials: Mapping[str, str] | None = None,
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
        work = Path(tempfile.mkdtemp(dir=self._work_dir(), prefix="restore-"))
        try:
            password = work / "password"
            write_secret(password, repository_password(key))
            repository = self.repository(url, credentials_file, credentials=credentials,
                                         password_file=password)
            try:
                # the lost box may have died during forget or prune: its exclusive lock would
                # refuse the restore (stale by now; a key that may only read cannot remove it)
                with contextlib.suppress(ResticFailure):
                    await repository.unlock()
                snapshots = await repository.snapshots()
                chosen = _choose(snapshots, snapshot_id)
                await repository.restore(chosen.id, work / "tree", progress=progress)
            except ResticFailure as exc:
                raise BackupError(_restore_failure(exc)) from None
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


def _restore_failure(exc: ResticFailure) -> str:
    if exc.kind is Failure.WRONG_PASSWORD:
        return ("Der Wiederherstellungsschlüssel passt nicht zu dieser Sicherung. Prüfen Sie ihn "
                "auf dem Notfallblatt.")
    return explain(exc)


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
