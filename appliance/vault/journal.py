"""The vault's files on disk: the snapshot, the append-only journal, and how both survive a crash.

``snapshot``: ``SZVAULT1 | u32 header length | header JSON | nonce | AES-GCM(data JSON)``, the
magic, length and header being the AAD, so once the data opens the header is authentic too.
It is only ever replaced whole: temp file, fsync, ``os.replace``, fsync of the directory.

``journal``: ``SZJRNL01 | u64 generation | key id`` and then records
``u32 length | u32 CRC-32 of that length | nonce | AES-GCM(change)``, each record's AAD binding
(key id, generation, sequence number). The CRC tells a flipped length byte (tampering: reported)
from a record cut short by a crash (never acknowledged: dropped).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NoReturn

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from appliance.errors import StorageFull, VaultNotInitialized, VaultTampered
from appliance.vault import crypto
from appliance.vault.crypto import Unauthentic

_LOGGER = logging.getLogger(__name__)

FORMAT_VERSION: Final = 1
SNAPSHOT_NAME: Final = "snapshot"
JOURNAL_NAME: Final = "journal"
TMP_SUFFIX: Final = ".tmp"
SNAPSHOT_MAGIC: Final = b"SZVAULT1"
JOURNAL_MAGIC: Final = b"SZJRNL01"
KEY_ID_BYTES: Final = 16

_U32: Final = struct.Struct(">I")
_RECORD_HEAD: Final = struct.Struct(">II")
_JOURNAL_HEAD: Final = struct.Struct(f">8sQ{KEY_ID_BYTES}s")
_AAD_TAIL: Final = struct.Struct(">QQ")
_MIN_BODY: Final = crypto.NONCE_BYTES + crypto.TAG_BYTES
_FULL_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT})
_O_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)


def raise_storage_error(exc: OSError) -> NoReturn:
    """Re-raise ``exc``, as :class:`StorageFull` if the disk (or quota) is full."""
    if exc.errno in _FULL_ERRNOS:
        raise StorageFull() from exc
    raise exc


def _write_all(fd: int, data: bytes | memoryview, offset: int | None = None) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view) if offset is None else os.pwrite(fd, view, offset)
        if offset is not None:
            offset += written
        view = view[written:]


def fsync_dir(directory: Path) -> None:
    """Make renames and new files in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | _O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(directory: Path, name: str, chunks: Iterable[bytes]) -> None:
    """Replace ``directory/name`` with ``chunks`` so that a crash leaves the old or the new file.

    Raises :class:`StorageFull` (or the ``OSError``) with the old file untouched.
    """
    tmp = directory / (name + TMP_SUFFIX)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_CLOEXEC, 0o600)
        try:
            for chunk in chunks:
                _write_all(fd, chunk)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, directory / name)
    except OSError as exc:
        with suppress(OSError):
            tmp.unlink()
        raise_storage_error(exc)
    try:
        fsync_dir(directory)
    except OSError:
        # The rename happened and is what every reader sees; it is made durable at the latest
        # with the next directory fsync (the journal's creation follows right away).
        _LOGGER.error("could not fsync the vault directory after replacing %s", name)


# --- snapshot ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SnapshotFile:
    """A snapshot as read from disk: its header (not yet authentic!) and the sealed data."""

    header: dict[str, Any]
    aad: bytes
    sealed_data: bytes

    def open_data(self, aead: AESGCM) -> bytes:
        """The data JSON; authenticates the header too. Raises :class:`VaultTampered`."""
        try:
            return crypto.unseal(aead, self.sealed_data, self.aad)
        except Unauthentic:
            raise VaultTampered(detail="Die Schnappschuss-Datei ist nicht authentisch") from None


def encode_header(header: dict[str, Any]) -> bytes:
    """The canonical bytes of a snapshot header."""
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")


def write_snapshot(directory: Path, header: dict[str, Any], data: bytes, aead: AESGCM) -> None:
    """Seal ``data`` under the data key with ``header`` as AAD and replace the snapshot."""
    header_bytes = encode_header({**header, "format": FORMAT_VERSION})
    prefix = SNAPSHOT_MAGIC + _U32.pack(len(header_bytes)) + header_bytes
    write_atomic(directory, SNAPSHOT_NAME, [prefix, crypto.seal(aead, data, prefix)])


def parse_snapshot(raw: bytes) -> SnapshotFile:
    """Split a snapshot file; raises :class:`VaultTampered` if it is not one of ours."""
    head = len(SNAPSHOT_MAGIC) + _U32.size
    if len(raw) < head or raw[: len(SNAPSHOT_MAGIC)] != SNAPSHOT_MAGIC:
        raise VaultTampered(detail="Die Schnappschuss-Datei ist keine Tresor-Datei")
    (length,) = _U32.unpack_from(raw, len(SNAPSHOT_MAGIC))
    if head + length + _MIN_BODY > len(raw):
        raise VaultTampered(detail="Der Kopf der Schnappschuss-Datei ist beschädigt")
    try:
        header = json.loads(raw[head : head + length])
    except ValueError:
        raise VaultTampered(detail="Der Kopf der Schnappschuss-Datei ist beschädigt") from None
    if not isinstance(header, dict):
        raise VaultTampered(detail="Der Kopf der Schnappschuss-Datei ist beschädigt")
    if header.get("format") != FORMAT_VERSION:
        raise VaultTampered(detail="Die Schnappschuss-Datei hat eine unbekannte Formatversion")
    return SnapshotFile(header, raw[: head + length], raw[head + length :])


def read_snapshot(directory: Path) -> SnapshotFile:
    """Read and split the snapshot; :class:`VaultNotInitialized` if there is none."""
    try:
        raw = (directory / SNAPSHOT_NAME).read_bytes()
    except FileNotFoundError:
        raise VaultNotInitialized() from None
    return parse_snapshot(raw)


# --- journal ----------------------------------------------------------------------------------


def record_aad(key_id: bytes, generation: int, sequence: int) -> bytes:
    """What a journal record is bound to: it cannot move to another key, generation or place."""
    return JOURNAL_MAGIC + key_id + _AAD_TAIL.pack(generation, sequence)


@dataclass(frozen=True, slots=True)
class JournalScan:
    """The layout of a journal file, found without any key: nothing in it is authentic yet."""

    generation: int
    key_id: bytes
    #: (offset, length) of each complete record's nonce + ciphertext
    records: tuple[tuple[int, int], ...]
    #: the offset after the last complete record
    end: int
    size: int

    @property
    def torn(self) -> bool:
        """Whether a record cut short by a crash follows the last complete one."""
        return self.size > self.end


def scan_journal(raw: bytes) -> JournalScan:
    """Find the records of a journal; raises :class:`VaultTampered` on a damaged layout."""
    if len(raw) < _JOURNAL_HEAD.size:
        raise VaultTampered(detail="Die Journal-Datei ist zu kurz")
    magic, generation, key_id = _JOURNAL_HEAD.unpack_from(raw)
    if magic != JOURNAL_MAGIC:
        raise VaultTampered(detail="Die Journal-Datei ist keine Tresor-Datei")
    records: list[tuple[int, int]] = []
    offset = _JOURNAL_HEAD.size
    size = len(raw)
    while offset < size:
        rest = size - offset
        if rest < _RECORD_HEAD.size:
            break  # a crash while writing the record's length: never acknowledged
        length, check = _RECORD_HEAD.unpack_from(raw, offset)
        if check != zlib.crc32(raw[offset : offset + _U32.size]):
            if raw.count(0, offset) == rest:
                break  # the file grew but the bytes never arrived: a crash, not an attack
            raise VaultTampered(
                detail=f"Das Längenfeld von Journal-Eintrag {len(records) + 1} ist beschädigt"
            )
        if length < _MIN_BODY:
            raise VaultTampered(
                detail=f"Journal-Eintrag {len(records) + 1} hat eine unmögliche Länge"
            )
        if rest < _RECORD_HEAD.size + length:
            break  # cut short by a crash: never acknowledged
        records.append((offset + _RECORD_HEAD.size, length))
        offset += _RECORD_HEAD.size + length
    return JournalScan(generation, key_id, tuple(records), offset, size)


def read_journal(directory: Path) -> tuple[bytes, JournalScan] | None:
    """The journal's bytes and layout, or ``None`` if there is no journal file."""
    try:
        raw = (directory / JOURNAL_NAME).read_bytes()
    except FileNotFoundError:
        return None
    return raw, scan_journal(raw)


def open_records(raw: bytes, scan: JournalScan, aead: AESGCM) -> Iterator[bytes]:
    """Decrypt the records in order; raises :class:`VaultTampered` at the first unauthentic one."""
    view = memoryview(raw)
    for sequence, (offset, length) in enumerate(scan.records):
        aad = record_aad(scan.key_id, scan.generation, sequence)
        try:
            yield crypto.unseal(aead, bytes(view[offset : offset + length]), aad)
        except Unauthentic:
            raise VaultTampered(
                detail=f"Journal-Eintrag {sequence + 1} ist nicht authentisch"
            ) from None


class JournalWriter:
    """Appends records to the journal of one generation; a write returns once it is durable."""

    def __init__(
        self,
        directory: Path,
        generation: int,
        key_id: bytes,
        aead: AESGCM,
        scan: JournalScan | None = None,
    ) -> None:
        """Continue the journal described by ``scan`` (verified by the caller), or start anew."""
        self._directory = directory
        self.generation = generation
        self.key_id = key_id
        self._aead = aead
        self._fd: int | None = None
        self._dirty = False
        self.records = 0
        self._end = _JOURNAL_HEAD.size
        if scan is not None:
            self._fd = os.open(directory / JOURNAL_NAME, os.O_RDWR | _O_CLOEXEC)
            self.records = len(scan.records)
            self._end = scan.end
            if scan.torn:
                _LOGGER.warning(
                    "dropping an incomplete journal record (%d bytes) left by a crash",
                    scan.size - scan.end,
                )
                self._dirty = True
                try:
                    self._truncate()
                except OSError:
                    self.close()
                    raise

    @property
    def size(self) -> int:
        """Bytes of records in the journal."""
        return self._end - _JOURNAL_HEAD.size

    @property
    def started(self) -> bool:
        """Whether the journal file of this generation exists."""
        return self._fd is not None

    def start(self) -> None:
        """Replace whatever journal there is with an empty one of this generation."""
        header = _JOURNAL_HEAD.pack(JOURNAL_MAGIC, self.generation, self.key_id)
        self.close()
        write_atomic(self._directory, JOURNAL_NAME, [header])
        self._fd = os.open(self._directory / JOURNAL_NAME, os.O_RDWR | _O_CLOEXEC)
        self._end = len(header)
        self.records = 0
        self._dirty = False

    def _truncate(self) -> None:
        assert self._fd is not None
        os.ftruncate(self._fd, self._end)
        os.fsync(self._fd)
        self._dirty = False

    def append(self, payload: bytes) -> None:
        """Encrypt ``payload`` as the next record and make it durable.

        On failure nothing of the record stays behind (:class:`StorageFull` on a full disk).
        """
        if self._fd is None:
            self.start()
        assert self._fd is not None
        body = crypto.seal(
            self._aead, payload, record_aad(self.key_id, self.generation, self.records)
        )
        length = _U32.pack(len(body))
        record = b"".join((length, _U32.pack(zlib.crc32(length)), body))
        try:
            if self._dirty:
                self._truncate()
            _write_all(self._fd, record, self._end)
            os.fdatasync(self._fd)
        except OSError as exc:
            self._dirty = True
            try:
                self._truncate()
            except OSError:
                _LOGGER.error("could not cut a failed journal record; will retry")
            raise_storage_error(exc)
        self._end += len(record)
        self.records += 1

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
