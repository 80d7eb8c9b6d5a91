"""restic, driven as a subprocess: one repository, its password file, its credentials.

Relies on Debian 12's restic 0.14: ``init``, ``backup --json`` (status lines and a ``summary``
with the snapshot id and the bytes added), ``snapshots --json``, ``stats --json`` (restore size,
``--mode raw-data`` for the repository's size), ``forget --prune`` with ``--keep-*``, ``check
--read-data-subset``, ``restore --target`` and ``unlock`` (removes only stale locks, e.g. of a
killed run on this host), the backends local, ``sftp:``, ``rest:`` (its login only inside the
URL: :func:`_with_rest_credentials`) and ``s3:``, and ``--password-file``. Structured output is
read as JSON; restic 0.14 reports a failure only by its exit code and a text on stderr, so a
failure keeps restic's last stderr line (its own words: file names of the backup's staging tree
and the repository's location, never a password) and is sorted by what that line says
(:class:`ResticFailure`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlsplit, urlunsplit

_LOGGER = logging.getLogger(__name__)

RESTIC: Final = "restic"
#: a run that takes longer than this is stopped (a hung connection)
DEFAULT_TIMEOUT_S: Final = 6 * 3600
#: environment variables restic may take from a target's credentials file
CREDENTIAL_KEYS: Final = frozenset({
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN",
    "RESTIC_REST_USERNAME", "RESTIC_REST_PASSWORD", "SFTP_IDENTITY", "SFTP_KNOWN_HOSTS",
    "B2_ACCOUNT_ID", "B2_ACCOUNT_KEY", "AZURE_ACCOUNT_NAME", "AZURE_ACCOUNT_KEY",
})


class Failure(StrEnum):
    """What went wrong, as far as restic's exit code and message tell."""

    WRONG_PASSWORD = "wrong_password"
    NO_REPOSITORY = "no_repository"
    UNREACHABLE = "unreachable"
    LOCKED = "locked"
    DAMAGED = "damaged"
    NO_RESTIC = "no_restic"
    TIMEOUT = "timeout"
    OTHER = "other"


_MARKERS: Final = (
    # restic adds "Is there a repository…?" to any failure to open one: a dead network first
    ("wrong password", Failure.WRONG_PASSWORD),
    ("no key found", Failure.WRONG_PASSWORD),
    ("connection refused", Failure.UNREACHABLE),
    ("no route to host", Failure.UNREACHABLE),
    ("no such host", Failure.UNREACHABLE),
    ("i/o timeout", Failure.UNREACHABLE),
    ("network is unreachable", Failure.UNREACHABLE),
    ("ssh command exited", Failure.UNREACHABLE),
    ("unable to start the sftp session", Failure.UNREACHABLE),
    ("dial tcp", Failure.UNREACHABLE),
    ("is there a repository at the following location", Failure.NO_REPOSITORY),
    ("unable to open config file", Failure.NO_REPOSITORY),
    ("already locked", Failure.LOCKED),
    ("repository contains errors", Failure.DAMAGED),
    ("ciphertext verification failed", Failure.DAMAGED),
    ("pack", Failure.DAMAGED),
)


class ResticFailure(Exception):
    """A restic run failed: what kind, and restic's last line on stderr."""

    def __init__(self, kind: Failure, detail: str) -> None:
        super().__init__(f"{kind.value}: {detail}")
        self.kind, self.detail = kind, detail


def classify(returncode: int, stderr: str) -> Failure:
    """The kind of a failure from restic's message."""
    text = stderr.lower()
    for marker, kind in _MARKERS:
        if marker in text:
            return kind
    return Failure.OTHER


@dataclass(frozen=True, kw_only=True)
class BackupSummary:
    """restic's ``summary`` of one backup run."""

    snapshot_id: str
    files_new: int
    files_changed: int
    files_unmodified: int
    data_added: int
    total_files_processed: int
    total_bytes_processed: int
    total_duration: float


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """One snapshot in a repository."""

    id: str
    short_id: str
    time: str
    paths: tuple[str, ...]
    tags: tuple[str, ...]


def read_credentials(path: Path | None) -> dict[str, str]:
    """The KEY=VALUE lines of a target's credentials file (mode 0600, known keys only)."""
    if path is None:
        return {}
    mode = path.stat().st_mode
    if mode & 0o077:
        raise PermissionError(f"{path}: nur für die Box lesbar machen (chmod 600)")
    found: dict[str, str] = {}
    for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or key not in CREDENTIAL_KEYS:
            raise ValueError(f"{path}, Zeile {number}: erwartet KEY=WERT mit KEY aus "
                             + ", ".join(sorted(CREDENTIAL_KEYS)))
        found[key] = value.strip()
    return found


#: told each progress line of a running backup or restore: (share done 0…1, bytes done)
Progress = Callable[[float, int], None]


class Repository:
    """One restic repository: its URL, the password file, restic's cache and the credentials."""

    def __init__(self, url: str, *, password_file: Path, cache_dir: Path,
                 credentials: Mapping[str, str] | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = url
        self._password_file = password_file
        self._cache_dir = cache_dir
        self._credentials = dict(credentials or {})
        self._timeout_s = timeout_s

    def with_password(self, password_file: Path) -> Repository:
        """The same repository opened with another password file."""
        return Repository(self.url, password_file=password_file, cache_dir=self._cache_dir,
                          credentials=self._credentials, timeout_s=self._timeout_s)

    # --- commands ------------------------------------------------------------------------------

    async def init(self) -> None:
        """Create the repository (a new, empty one)."""
        await self._run(["init"])

    async def backup(self, directory: Path, *, host: str, tags: Sequence[str],
                     progress: Progress | None = None) -> BackupSummary:
        """Back up ``directory`` (its contents, paths relative to it) as one snapshot."""
        summary: dict[str, Any] = {}

        def line(message: dict[str, Any]) -> None:
            kind = message.get("message_type")
            if kind == "summary":
                summary.update(message)
            elif kind == "status" and progress is not None:
                progress(float(message.get("percent_done", 0.0)),
                         int(message.get("bytes_done", 0)))
            elif kind == "error":
                _LOGGER.warning("restic: %s during %s", message.get("error"),
                                message.get("during"))

        args = ["backup", "--json", "--host", host, *(f"--tag={tag}" for tag in tags), "."]
        # a run killed during forget or prune leaves an exclusive lock, which restic 0.14's
        # backup does not see as stale: removed when met (one restic run less when all is well)
        await self._unlocking(args, cwd=directory, on_json=line)
        if "snapshot_id" not in summary:
            raise ResticFailure(Failure.OTHER, "restic gab keine Zusammenfassung aus")
        return BackupSummary(**{key: summary.get(key, 0) for key in (
            "snapshot_id", "files_new", "files_changed", "files_unmodified", "data_added",
            "total_files_processed", "total_bytes_processed", "total_duration")})

    async def snapshots(self) -> list[Snapshot]:
        """Every snapshot, oldest first."""
        raw = await self._json(["--no-lock", "snapshots", "--json"])
        return [Snapshot(id=s["id"], short_id=s.get("short_id", s["id"][:8]), time=s["time"],
                         paths=tuple(s.get("paths") or ()), tags=tuple(s.get("tags") or ()))
                for s in raw or ()]

    async def size(self) -> int:
        """The repository's stored size in bytes (after deduplication and compression)."""
        raw = await self._json(["stats", "--json", "--mode", "raw-data"])
        return int(raw.get("total_size", 0))

    async def restore_size(self, snapshot_id: str) -> int:
        """The bytes a restore of ``snapshot_id`` writes."""
        raw = await self._json(["stats", "--json", "--mode", "restore-size", snapshot_id])
        return int(raw.get("total_size", 0))

    async def forget(self, *, daily: int, weekly: int, monthly: int) -> None:
        """Forget snapshots beyond the retention, and prune their data."""
        await self._unlocking(["forget", "--prune", "--keep-daily", str(daily), "--keep-weekly",
                         str(weekly), "--keep-monthly", str(monthly)])

    async def check(self, *, read_data_subset: str = "1/20") -> None:
        """Check the repository's structure and read a share of its data."""
        await self._unlocking(["check", f"--read-data-subset={read_data_subset}"])

    async def restore(self, snapshot_id: str, target: Path, *,
                      progress: Progress | None = None) -> None:
        """Restore ``snapshot_id`` below ``target``; progress from the bytes written (restic
        0.14's restore reports none itself)."""
        total = await self.restore_size(snapshot_id) if progress else 0
        task = asyncio.ensure_future(self._run(
            ["restore", snapshot_id, "--target", str(target), "--verify"]))
        while progress is not None and not task.done():
            await asyncio.wait([task], timeout=0.25)
            written = _tree_size(target)
            progress(min(1.0, written / total) if total else 0.0, written)
        await task
        if progress is not None:
            progress(1.0, _tree_size(target))

    async def current_key(self) -> str:
        """The id of the repository key this password opens."""
        keys = await self._json(["key", "list", "--json"])
        return next(str(k["id"]) for k in keys if k.get("current"))

    async def add_key(self, password_file: Path) -> None:
        """Let the password in ``password_file`` open the repository too."""
        await self._run(["key", "add", "--new-password-file", str(password_file)])

    async def remove_key(self, key_id: str) -> None:
        """Remove a key (not the one this password opens)."""
        await self._run(["key", "remove", key_id])

    async def unlock(self) -> None:
        """Remove stale locks (of runs that were killed)."""
        await self._run(["unlock"])

    # --- running restic ------------------------------------------------------------------------

    async def _unlocking(self, args: list[str], **options: Any) -> str:
        """A command that takes a lock: a lock left by a killed run (stale: its process is gone,
        or older than 30 minutes) is removed when met, and the command tried once more."""
        try:
            return await self._run(args, **options)
        except ResticFailure as exc:
            if exc.kind is not Failure.LOCKED:
                raise
        await self.unlock()
        return await self._run(args, **options)

    async def _json(self, args: list[str]) -> Any:
        found: list[Any] = []
        out = await self._run(args, on_json=found.append)
        if found:
            return found[0]
        try:
            return json.loads(out)
        except ValueError:
            raise ResticFailure(Failure.OTHER, "restic gab kein JSON aus") from None

    async def _run(self, args: list[str], *, cwd: Path | None = None,
                   on_json: Callable[[Any], None] | None = None) -> str:
        executable = shutil.which(RESTIC)
        if executable is None:
            raise ResticFailure(Failure.NO_RESTIC, "restic ist nicht installiert "
                                "(apt-get install restic)")
        self._cache_dir.mkdir(parents=True, exist_ok=True)
        environment = {  # restic gets nothing of the box's own environment but PATH
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self._cache_dir),
            "RESTIC_REPOSITORY": _with_rest_credentials(self.url, self._credentials),
            "RESTIC_PASSWORD_FILE": str(self._password_file),
            "RESTIC_CACHE_DIR": str(self._cache_dir), "LC_ALL": "C.UTF-8",
            **{k: v for k, v in self._credentials.items()
               if not k.startswith(("SFTP_", "RESTIC_REST_"))},
        }
        sftp = _sftp_command(self.url, self._credentials)
        command = [executable, *(["-o", f"sftp.command={sftp}"] if sftp else []), *args]
        process = await asyncio.create_subprocess_exec(
            *command, cwd=cwd, env=environment, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True)
        lines: list[str] = []
        errors: list[str] = []

        async def read_out() -> None:
            assert process.stdout is not None
            async for raw in process.stdout:
                text = raw.decode("utf-8", "replace").rstrip("\n")
                lines.append(text)
                if on_json is not None and text.startswith(("{", "[")):
                    with contextlib.suppress(ValueError):
                        on_json(json.loads(text))

        async def read_err() -> None:
            assert process.stderr is not None
            async for raw in process.stderr:
                text = raw.decode("utf-8", "replace").strip()
                if text:
                    errors.append(text)

        try:
            await asyncio.wait_for(asyncio.gather(read_out(), read_err(), process.wait()),
                                   self._timeout_s)
        except TimeoutError:
            _kill(process)
            raise ResticFailure(Failure.TIMEOUT, f"restic {args[0]} lief länger als "
                                f"{self._timeout_s:.0f} s") from None
        except asyncio.CancelledError:
            _kill(process)
            raise
        if process.returncode != 0:
            detail = errors[-1] if errors else f"restic {args[0]} endete mit {process.returncode}"
            raise ResticFailure(classify(process.returncode or 1, "\n".join(errors)), detail)
        return "\n".join(lines)


def _kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.kill()


def _with_rest_credentials(url: str, credentials: Mapping[str, str]) -> str:
    """A ``rest:`` URL with ``RESTIC_REST_USERNAME``/``RESTIC_REST_PASSWORD`` of the credentials
    file put in: restic 0.14 takes a REST server's login only inside the URL (the variables
    came with 0.16). Only restic's environment sees it (not its command line, which every user
    of the box can read); restic and Go's HTTP client print such a URL with the password
    masked."""
    username = credentials.get("RESTIC_REST_USERNAME", "")
    password = credentials.get("RESTIC_REST_PASSWORD", "")
    if not url.startswith("rest:") or not (username or password):
        return url
    parts = urlsplit(url[len("rest:"):])
    login = quote(username, safe="") + (f":{quote(password, safe='')}" if password else "")
    host = parts.netloc.rpartition("@")[2]
    return "rest:" + urlunsplit(parts._replace(netloc=f"{login}@{host}"))


def _sftp_command(url: str, credentials: Mapping[str, str]) -> str | None:
    """The ssh command for an ``sftp:`` repository with the box's own key (``SFTP_IDENTITY``)
    and its own known hosts (``SFTP_KNOWN_HOSTS``)."""
    identity = credentials.get("SFTP_IDENTITY")
    if not identity or not url.startswith("sftp:"):
        return None
    if url.startswith("sftp://"):
        parts = urlsplit(url)
        destination = f"{parts.username + '@' if parts.username else ''}{parts.hostname}"
        port = f" -p {parts.port}" if parts.port else ""
    else:
        destination, port = url[len("sftp:"):].split(":", 1)[0], ""
    known = credentials.get("SFTP_KNOWN_HOSTS")
    # the first host key seen is kept in the box's own file; a changed one is refused
    checks = "-o StrictHostKeyChecking=accept-new" + (
        f" -o UserKnownHostsFile={known}" if known else "")
    return (f"ssh -o BatchMode=yes -o ConnectTimeout=15 -o IdentitiesOnly=yes -i {identity} "
            f"{checks}{port} {destination} -s sftp")


def _tree_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total

