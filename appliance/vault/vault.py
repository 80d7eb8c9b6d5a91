"""The vault: seal and unseal the practice's encrypted TinyDB, manage members and re-key."""

from __future__ import annotations

import fcntl
import hmac
import json
import logging
import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from tinydb import TinyDB

from appliance.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    StorageFull,
    VaultAlreadyInitialized,
    VaultNotInitialized,
    VaultSealed,
    VaultTampered,
    WrongCredentials,
)
from appliance.vault import crypto, journal
from appliance.vault.crypto import KdfParams
from appliance.vault.keys import KEY_ID_BYTES, KeyRing, RecoveryKey
from appliance.vault.storage import LiveData, Tables, VaultDB, VaultStorage, apply_operations

_LOGGER = logging.getLogger(__name__)

_O_DIRECTORY: Final = getattr(os, "O_DIRECTORY", 0)
_O_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)
_MAX_MEMBER_ID: Final = 200


@dataclass(frozen=True, kw_only=True, slots=True)
class VaultStatus:
    """What can be said about a vault without its key (and a little more while it is open)."""

    initialized: bool
    sealed: bool
    #: how many staff members have a wrap (their names are known only while unsealed)
    member_count: int
    generation: int
    journal_records: int


@dataclass(frozen=True, slots=True)
class _Header:
    ring: KeyRing
    generation: int


def _parse_header(header: dict[str, Any]) -> _Header:
    try:
        generation = header["generation"]
        if type(generation) is not int or generation < 1:
            raise ValueError("bad generation")
        if len(bytes.fromhex(header["previous_key_id"])) != KEY_ID_BYTES:
            raise ValueError("bad previous key id")
        return _Header(KeyRing.from_dict(header), generation)
    except (KeyError, TypeError, ValueError):
        raise VaultTampered(detail="Der Kopf der Schnappschuss-Datei ist unvollständig") from None


def _check_member_id(member_id: object) -> str:
    if (
        not isinstance(member_id, str)
        or not member_id
        or len(member_id) > _MAX_MEMBER_ID
        or any(ord(char) < 32 for char in member_id)
    ):
        raise InvalidInput(field="member_id", detail="1 bis 200 druckbare Zeichen")
    return member_id


def _check_password(password: object) -> str:
    if not isinstance(password, str) or not password:
        raise InvalidInput(field="password", detail="darf nicht leer sein")
    return password


@dataclass(eq=False)
class _Session:
    """Everything that exists only while the vault is unsealed."""

    vault: weakref.ReferenceType[Vault]
    ring: KeyRing
    data_key: bytes
    aead: AESGCM
    generation: int
    journal: journal.JournalWriter
    live: LiveData = field(init=False)
    #: no compaction before the journal has this many records (backs off after a failure)
    compact_retry_at: int = 0

    # RecordSink for LiveData
    def append(self, payload: bytes) -> None:
        self.journal.append(payload)

    def committed(self) -> None:
        vault = self.vault()
        if vault is not None:
            vault._maybe_compact(self)


class _Handles:
    """The file descriptors of an open vault, closed on seal or when the Vault is collected."""

    def __init__(self) -> None:
        self.lock_fd: int | None = None
        self.session: _Session | None = None

    def close(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            session.journal.close()
        lock_fd, self.lock_fd = self.lock_fd, None
        if lock_fd is not None:
            os.close(lock_fd)  # releases the flock


class Vault:
    """The practice's encrypted store; sealed until a member or the recovery key opens it."""

    def __init__(
        self,
        path: Path,
        *,
        kdf: KdfParams = KdfParams(),  # noqa: B008 - frozen, so one shared default is fine
        compact_records: int = 2000,
        compact_bytes: int = 4 << 20,
    ) -> None:
        """Describe the vault in directory ``path``; touches no file."""
        if compact_records < 1 or compact_bytes < 1:
            raise ValueError("compaction thresholds must be positive")
        self._path = Path(path)
        self._kdf = kdf
        self._compact_records = compact_records
        self._compact_bytes = compact_bytes
        self._lock = threading.RLock()
        self._handles = _Handles()
        self._listeners: list[Callable[[], None]] = []
        self._rekey_listeners: list[Callable[[], None]] = []
        self._recovery_listeners: list[Callable[[RecoveryKey], None]] = []
        self._storage = VaultStorage(self._live)
        self._db = VaultDB(self._storage)
        weakref.finalize(self, self._handles.close)

    # --- state ---------------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The vault's directory."""
        return self._path

    @property
    def initialized(self) -> bool:
        """Whether a vault exists in ``path`` (its snapshot does)."""
        return (self._path / journal.SNAPSHOT_NAME).exists()

    @property
    def sealed(self) -> bool:
        """Whether the data key is absent from memory."""
        return self._handles.session is None

    def recovery_key_matches(self, key: RecoveryKey) -> bool:
        """Whether ``key`` is this vault's current recovery key, from the header alone (no lock:
        the box may be running). Only a public key is compared: nothing is opened."""
        ring = _parse_header(journal.read_snapshot(self._path).header).ring
        public = crypto.public_key_bytes(key.vault_private_key())
        return hmac.compare_digest(public, ring.recovery.public_key)

    def status(self) -> VaultStatus:
        """Members, generation, journal length; while sealed from the header (not yet verified)."""
        with self._lock:
            session = self._handles.session
            if session is not None:
                return VaultStatus(
                    initialized=True,
                    sealed=False,
                    member_count=len(session.ring.wraps),
                    generation=session.generation,
                    journal_records=session.journal.records,
                )
            try:
                header = _parse_header(journal.read_snapshot(self._path).header)
            except VaultNotInitialized:
                return VaultStatus(initialized=False, sealed=True, member_count=0,
                                   generation=0, journal_records=0)
            found = journal.read_journal(self._path)
            records = 0
            if found is not None and found[1].generation == header.generation:
                records = len(found[1].records)
            return VaultStatus(
                initialized=True,
                sealed=True,
                member_count=len(header.ring.wraps),
                generation=header.generation,
                journal_records=records,
            )

    def members(self) -> tuple[str, ...]:
        """The member ids, sorted; raises :class:`VaultSealed` while sealed (the disk names
        nobody: the index of names is under the data key)."""
        return self._session().ring.members

    @property
    def db(self) -> TinyDB:
        """The TinyDB of the practice's data; raises :class:`VaultSealed` while sealed."""
        if self._handles.session is None:
            raise VaultSealed()
        return self._db

    def _live(self) -> LiveData:
        session = self._handles.session
        if session is None:
            raise VaultSealed()
        return session.live

    def add_unseal_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` each time the vault goes from sealed to unsealed (create included)."""
        self._listeners.append(callback)

    def add_recovery_key_listener(self, callback: Callable[[RecoveryKey], None]) -> None:
        """Call ``callback`` with the recovery key whenever the box holds it for a moment: made at
        creation, replaced by a rotation, or entered (and proven right) to open the vault. The
        backup derives its repository password from it (docs/backup.md)."""
        self._recovery_listeners.append(callback)

    def _notify_recovery_key(self, key: RecoveryKey) -> None:
        for callback in list(self._recovery_listeners):
            try:
                callback(key)
            except Exception:
                _LOGGER.exception("a recovery key listener failed")

    def _notify_unsealed(self) -> None:
        self._notify(self._listeners)

    @staticmethod
    def _notify(listeners: list[Callable[[], None]]) -> None:
        # a failing listener (say, an index rebuild) must not turn a good login into an error
        # while the vault is already open: every listener gets its turn, failures are logged
        for callback in list(listeners):
            try:
                callback()
            except Exception:
                _LOGGER.exception("a vault listener failed")

    # --- creating, opening, closing ------------------------------------------------------------

    def _header(self, ring: KeyRing, data_key: bytes, generation: int,
                previous_key_id: bytes) -> dict[str, Any]:
        return {
            "generation": generation,
            "previous_key_id": previous_key_id.hex(),
            "kdf": self._kdf.to_dict(),
            **ring.to_dict(data_key),
        }

    def _lock_directory(self) -> None:
        try:
            fd = os.open(self._path, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
        except FileNotFoundError:
            raise VaultNotInitialized() from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Conflict(
                detail="Der Tresor ist bereits in einem anderen Prozess geöffnet"
            ) from None
        self._handles.lock_fd = fd

    def _start_session(
        self, ring: KeyRing, data_key: bytes, aead: AESGCM, generation: int,
        writer: journal.JournalWriter, tables: Tables,
    ) -> None:
        session = _Session(weakref.ref(self), ring, data_key, aead, generation, writer)
        session.live = LiveData(tables, session, self._lock)
        self._handles.session = session
        self._storage.forget_caches()

    def create(self, member_id: str, password: str) -> RecoveryKey:
        """Set up a new vault with its first member; leaves it unsealed; gives the recovery key."""
        _check_member_id(member_id)
        _check_password(password)
        with self._lock:
            if self._handles.session is not None or self.initialized:
                raise VaultAlreadyInitialized()
            self._path.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self._path, 0o700)
            journal.fsync_dir(self._path.parent)  # the new directory itself must be durable
            self._lock_directory()
            try:
                if self.initialized:  # another process was faster
                    raise VaultAlreadyInitialized()
                ring, data_key, recovery_key = KeyRing.create(member_id, password, self._kdf)
                aead = AESGCM(data_key)
                writer = journal.JournalWriter(self._path, 1, ring.key_id, aead)
                # Journal first: until the snapshot exists, there is no vault and it is ignored.
                writer.start()
                tables: Tables = {}
                try:
                    journal.write_snapshot(
                        self._path, self._header(ring, data_key, 1, ring.key_id), b"{}", aead
                    )
                except BaseException:
                    writer.close()
                    raise
                self._start_session(ring, data_key, aead, 1, writer, tables)
            except BaseException:
                self._handles.close()
                raise
            _LOGGER.info("vault created")
        self._notify_recovery_key(recovery_key)
        self._notify_unsealed()
        return recovery_key

    def unseal(self, member_id: str, password: str) -> None:
        """Open the vault with a member's password (only checks it if already open)."""
        if self._open(lambda ring: ring.open_member(member_id, password)):
            _LOGGER.info("vault unsealed by a member")
            self._notify_unsealed()

    def unseal_with_recovery_key(self, key: RecoveryKey | str) -> None:
        """Open the vault with the recovery key alone (e.g. on a new box)."""
        recovery_key = key if isinstance(key, RecoveryKey) else RecoveryKey.parse(key)
        if self._open(lambda ring: ring.open_recovery(recovery_key)):
            _LOGGER.warning("vault unsealed with the recovery key")
            self._notify_recovery_key(recovery_key)
            self._notify_unsealed()

    def unseal_with_data_key(self, key_id: bytes, data_key: bytes) -> None:
        """Open the vault with its data key kept elsewhere (:mod:`appliance.vault.resume`).

        Raises :class:`WrongCredentials` when ``key_id`` is not the vault's current key (it was
        re-keyed since); a wrong key for the right id fails as tampering.
        """

        def check(ring: KeyRing) -> bytes:
            if not hmac.compare_digest(ring.key_id, key_id):
                raise WrongCredentials()
            return data_key

        if self._open(check):
            _LOGGER.info("vault reopened with a kept data key")
            self._notify_unsealed()

    def current_key(self) -> tuple[bytes, bytes]:
        """The key id and data key while unsealed, for :mod:`appliance.vault.resume` only."""
        session = self._session()
        return session.ring.key_id, session.data_key

    def add_rekey_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after each change of the data key (a member removed, a re-key)."""
        self._rekey_listeners.append(callback)

    def _open(self, data_key_of: Callable[[KeyRing], bytes]) -> bool:
        """Unseal with the data key that ``data_key_of`` finds; ``False`` if it was open already."""
        with self._lock:
            session = self._handles.session
            if session is not None:
                data_key_of(session.ring)
                return False
            if not self.initialized:
                raise VaultNotInitialized()
            self._lock_directory()
            try:
                self._load(data_key_of)
            except BaseException:
                self._handles.close()
                raise
            return True

    def _load(self, data_key_of: Callable[[KeyRing], bytes]) -> None:
        snapshot = journal.read_snapshot(self._path)
        header = _parse_header(snapshot.header)
        ring = header.ring
        data_key = data_key_of(ring)
        aead = AESGCM(data_key)
        try:
            tables = json.loads(snapshot.open_data(aead))
            if not isinstance(tables, dict) or not all(
                isinstance(table, dict) for table in tables.values()
            ):
                raise ValueError("not a dict of tables")
        except ValueError:
            raise VaultTampered(detail="Die Daten im Schnappschuss sind unlesbar") from None
        # The header is authentic from here on.
        ring = ring.named(data_key)
        found = journal.read_journal(self._path)
        continued: journal.JournalScan | None = None
        if found is not None:
            raw, scan = found
            if scan.generation > header.generation:
                raise VaultTampered(detail="Das Journal ist neuer als der Schnappschuss")
            if scan.generation == header.generation:
                if scan.key_id != ring.key_id:
                    raise VaultTampered(detail="Das Journal gehört zu einem anderen Schlüssel")
                # a last record torn by a power cut is dropped here (and cut away by the writer)
                payloads, scan = journal.open_journal(raw, scan, aead)
                for number, payload in enumerate(payloads, 1):
                    try:
                        apply_operations(tables, json.loads(payload))
                    except (ValueError, TypeError, KeyError, AttributeError, IndexError):
                        raise VaultTampered(
                            detail=f"Journal-Eintrag {number} ist unlesbar"
                        ) from None
                continued = scan
            else:
                # Left over by a crash between a compaction's two steps: all of it is in the
                # snapshot. Under the same key it is still checked (a flipped generation byte
                # must not hide records); under an earlier key it cannot be and need not be.
                if scan.key_id == ring.key_id:
                    journal.open_journal(raw, scan, aead)
                _LOGGER.info("ignoring the journal of an earlier generation")
        writer = journal.JournalWriter(
            self._path, header.generation, ring.key_id, aead, continued
        )
        for name in (journal.SNAPSHOT_NAME, journal.JOURNAL_NAME):
            (self._path / (name + journal.TMP_SUFFIX)).unlink(missing_ok=True)
        self._start_session(ring, data_key, aead, header.generation, writer, tables)

    def check_password(self, member_id: str, password: str) -> bool:
        """Whether ``password`` is ``member_id``'s; works sealed or unsealed, never unseals."""
        if not isinstance(password, str) or not isinstance(member_id, str):
            return False
        with self._lock:
            session = self._handles.session
            if session is not None:
                ring = session.ring
            else:
                ring = _parse_header(journal.read_snapshot(self._path).header).ring
        return ring.check_password(member_id, password)

    def prepare_password(self, member_id: str, password: str) -> None:
        """Do the slow part (Argon2id) of a following unseal or password check of ``member_id``
        now; thread-safe, for a worker thread, so that a server's event loop goes on meanwhile.
        """
        with self._lock:
            session = self._handles.session
            ring = session.ring if session is not None else None
        if ring is None:
            try:
                ring = _parse_header(journal.read_snapshot(self._path).header).ring
            except VaultNotInitialized:
                return
        ring.prepare_password(member_id, password)

    def seal(self) -> None:
        """Drop the data key and all plaintext from memory and close the files."""
        with self._lock:
            was_open = self._handles.session is not None
            self._handles.close()
            self._storage.forget_caches()
        if was_open:
            _LOGGER.info("vault sealed")

    def close(self) -> None:
        """Seal and release everything (idempotent)."""
        self.seal()

    # --- members and keys ----------------------------------------------------------------------

    def _session(self) -> _Session:
        session = self._handles.session
        if session is None:
            raise VaultSealed()
        return session

    def add_member(self, member_id: str, password: str) -> None:
        """Give ``member_id`` a key pair under ``password`` and seal the data key to it."""
        _check_member_id(member_id)
        _check_password(password)
        with self._lock:
            session = self._session()
            if member_id in session.ring.members:
                raise Conflict(detail="Dieses Mitglied hat schon Zugang zum Tresor")
            ring = session.ring.with_member(member_id, password, session.data_key, self._kdf)
            self._replace_snapshot(session, ring, session.data_key)
        _LOGGER.info("vault member added")

    def set_password(self, member_id: str, password: str) -> None:
        """Give ``member_id`` a new key pair under a new password (the caller checked the old)
        and re-key: the old password with an old copy of the files opens nothing written after.
        """
        _check_password(password)
        with self._lock:
            session = self._session()
            if member_id not in session.ring.members:
                raise NotFound()
            data_key = crypto.random_key()
            ring = session.ring.with_member(member_id, password, session.data_key, self._kdf)
            self._replace_snapshot(session, ring.rekeyed(data_key), data_key)
        _LOGGER.info("vault member password changed and vault re-keyed")
        self._notify(self._rekey_listeners)

    def rotate_recovery_key(self) -> RecoveryKey:
        """A new recovery key in place of the old, and a re-key: the old key (a lost or
        photographed emergency sheet) opens nothing written after; gives the new key."""
        with self._lock:
            session = self._session()
            recovery_key = RecoveryKey.generate()
            data_key = crypto.random_key()
            ring = session.ring.with_recovery_key(recovery_key, session.data_key)
            self._replace_snapshot(session, ring.rekeyed(data_key), data_key)
        _LOGGER.warning("recovery key replaced and vault re-keyed")
        self._notify(self._rekey_listeners)
        self._notify_recovery_key(recovery_key)
        return recovery_key

    def remove_member(self, member_id: str) -> None:
        """Remove ``member_id`` and re-key: new data key, data re-encrypted, old wraps gone."""
        with self._lock:
            session = self._session()
            if member_id not in session.ring.members:
                raise NotFound()
            if len(session.ring.members) == 1:
                raise Conflict(detail="Das letzte Mitglied kann nicht entfernt werden")
            data_key = crypto.random_key()
            ring = session.ring.without_member(member_id).rekeyed(data_key)
            self._replace_snapshot(session, ring, data_key)
        _LOGGER.info("vault member removed and vault re-keyed")
        self._notify(self._rekey_listeners)

    def rekey(self) -> None:
        """Replace the data key: everything re-encrypted, the new key sealed to every public key."""
        with self._lock:
            session = self._session()
            data_key = crypto.random_key()
            self._replace_snapshot(session, session.ring.rekeyed(data_key), data_key)
        _LOGGER.info("vault re-keyed")
        self._notify(self._rekey_listeners)

    def compact(self) -> None:
        """Fold the journal into a new snapshot."""
        with self._lock:
            session = self._session()
            self._replace_snapshot(session, session.ring, session.data_key)

    def _maybe_compact(self, session: _Session) -> None:
        writer = session.journal
        due = writer.records >= self._compact_records or writer.size >= self._compact_bytes
        if not due or writer.records < session.compact_retry_at:
            return
        try:
            self._replace_snapshot(session, session.ring, session.data_key)
        except (StorageFull, OSError):
            # The write that got us here is durable; compaction is tried again a little later.
            session.compact_retry_at = writer.records + max(1, self._compact_records // 10)
            _LOGGER.warning("compaction failed, the journal keeps growing for now", exc_info=True)

    def _replace_snapshot(self, session: _Session, ring: KeyRing, data_key: bytes) -> None:
        """Write all data as the next generation under ``ring``; one atomic replace.

        Raises :class:`StorageFull` with nothing changed, on disk or in memory.
        """
        generation = session.generation + 1
        aead = session.aead if data_key == session.data_key else AESGCM(data_key)
        header = self._header(ring, data_key, generation, previous_key_id=session.ring.key_id)
        journal.write_snapshot(self._path, header, session.live.dump(), aead)
        # The new snapshot is the truth now; the old journal is of an earlier generation.
        session.journal.close()
        session.ring, session.data_key, session.aead = ring, data_key, aead
        session.generation = generation
        session.compact_retry_at = 0
        session.journal = journal.JournalWriter(self._path, generation, ring.key_id, aead)
        try:
            session.journal.start()
        except (StorageFull, OSError):
            _LOGGER.warning("could not start the new journal; the next write will try again")
