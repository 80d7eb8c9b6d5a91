"""The vault's files on disk: the snapshot, the append-only journal, and how both survive a crash.

``snapshot``: ``SZVAULT1 | u32 header length | header JSON | nonce | AES-GCM(data JSON)``, the
magic, length and header being the AAD, so once the data opens the header is authentic too.
It is only ever replaced whole: temp file, fsync, ``os.replace``, fsync of the directory.

``journal``: ``SZJRNL01 | u64 generation | key id`` and then records
``u32 length | u32 CRC-32 of that length | nonce | AES-GCM(change)``, each record's AAD binding
(key id, generation, sequence number). The CRC tells a flipped length byte (tampering: reported)
from a record cut short by a crash (never acknowledged: dropped).

A power cut during the append of the last record can leave it torn in more ways than cut short:
any of its 512-byte sectors (aligned to the file offset; a lost 4 KiB page is eight of them) may
read as zeros while the others arrived, and the file size may or may not include it. Only the
*last* record can be torn so (each append waits for ``fdatasync`` of the one before), and only
into zeros, never into other bytes. :func:`scan_journal` and :func:`open_journal` drop exactly
such a last record; everything else stays :class:`VaultTampered` (docs/vault.md, Crash safety).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
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

FORMAT_VERSION: Final = 2
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
#: the unit in which a power cut can lose a write: a sector, aligned to the file offset (a page
#: or file system block is a run of them, so every coarser tearing is covered too)
SECTOR: Final = 512
#: a record head split by a sector boundary and half lost must give a length up to this (a record
#: is one TinyDB operation; a longer torn one is reported, the safe side)
TORN_HEAD_MAX_LENGTH: Final = 16 << 20
#: where a record head of a length below 16 MiB can begin: a zero byte, not eight (no head)
_HEAD_CANDIDATE: Final = re.compile(rb"\x00(?!\x00{7})")
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

    def without_last(self) -> JournalScan:
        """The same journal with its last complete record counted as torn."""
        offset, _length = self.records[-1]
        return JournalScan(
            self.generation, self.key_id, self.records[:-1], offset - _RECORD_HEAD.size, self.size
        )


# --- what a power cut during the last append can leave ------------------------------------------
#
# An append is one pwrite of the whole record at the old end of the file, then fdatasync; the next
# append starts only after that returned. A power cut in between can leave, of that record only:
# the file size old, new, or anywhere in between (the rest is then simply missing), and each
# 512-byte sector of the record (aligned to the file offset) either written or still reading as
# zeros (never written: the tail of the last old block was zero past the old end, new blocks are
# unwritten extents). All bytes before the record were fsynced earlier and are intact, and no
# bytes follow the record. Nothing but zeros stands in for a lost sector (file systems that hand
# out stale blocks after a crash, such as ext4 with data=writeback, are not supported: what they
# leave is reported as tampering, the safe side).


def _zero(raw: bytes, start: int, stop: int) -> bool:
    return raw.count(0, start, stop) == stop - start


def _sector_end(offset: int) -> int:
    return (offset // SECTOR + 1) * SECTOR


def _lost(raw: bytes, start: int, size: int) -> bool:
    """Whether the sector piece of the file that begins at ``start`` can be one a crash lost."""
    return _zero(raw, start, min(_sector_end(start), size))


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        value = byte
        for _ in range(8):
            value = (value >> 1) ^ 0xEDB88320 if value & 1 else value >> 1
        table.append(value)
    return tuple(table)


_CRC_TABLE: Final = _crc_table()
_CRC_BY_TOP_BYTE: Final = {value >> 24: index for index, value in enumerate(_CRC_TABLE)}


def crc32_preimage(check: int) -> bytes:
    """The one 4-byte value whose ``zlib.crc32`` is ``check`` (CRC-32 is a bijection on 32 bits)."""
    state = check ^ 0xFFFFFFFF
    indices = []
    for _ in range(4):  # backwards: each table entry's top byte names it
        index = _CRC_BY_TOP_BYTE[state >> 24]
        indices.append(index)
        state = ((state ^ _CRC_TABLE[index]) << 8) & 0xFFFFFFFF
    state = 0xFFFFFFFF
    value = bytearray()
    for index in reversed(indices):
        value.append((state ^ index) & 0xFF)
        state = _CRC_TABLE[index] ^ (state >> 8)
    return bytes(value)


def _plausible_length(shortest: int, longest: int, start: int, size: int) -> bool:
    """Whether a length in ``[shortest, longest]`` is possible for a record at ``start`` that
    reaches at least to the file's end (and is at most :data:`TORN_HEAD_MAX_LENGTH`)."""
    low = max(shortest, _MIN_BODY, size - start - _RECORD_HEAD.size)
    return low <= min(longest, TORN_HEAD_MAX_LENGTH)


def _torn_head(raw: bytes, start: int, size: int) -> bool:
    """Whether the record head at ``start`` (its CRC does not match) can be a real head some of
    whose sectors a power cut lost (read as zeros) while the rest of its bytes are the real ones.

    The head lies in one sector or straddles a sector boundary; each part is either lost (then it
    and the rest of its sector in the file are zero) or real. The real bytes must belong to a head
    whose CRC matches and whose record reaches the end of the file: real length bytes must agree
    with the real CRC (through its preimage) or, where the CRC was lost, begin a possible length.
    A head with no zero part, or whose zeros do not fill the rest of their sector, is garbage.
    """
    head = raw[start : start + _RECORD_HEAD.size]
    split = min(_sector_end(start) - start, _RECORD_HEAD.size)
    if split == _RECORD_HEAD.size or (_lost(raw, start, size) and _lost(raw, start + split, size)):
        # the whole head lost: any length can have been there
        return _lost(raw, start, size) and _plausible_length(0, 0xFFFFFFFF, start, size)
    if _lost(raw, start + split, size):  # the second sector lost, the first part real
        if split >= _U32.size:  # the length is real, so are the CRC bytes before the boundary
            (length,) = _U32.unpack_from(head)
            check = _U32.pack(zlib.crc32(head[: _U32.size]))
            if head[_U32.size : split] == check[: split - _U32.size] and _plausible_length(
                length, length, start, size
            ):
                return True
        else:  # only the length's top bytes are real: they must begin a possible length
            missing = _U32.size - split
            top = int.from_bytes(head[:split], "big") << (8 * missing)
            if _plausible_length(top, top | ((1 << (8 * missing)) - 1), start, size):
                return True
    if _zero(raw, start, start + split):  # the first sector lost, the second part real
        if split > _U32.size:  # the length lost and part of its CRC: nothing to check it against
            return _plausible_length(0, 0xFFFFFFFF, start, size)
        (check,) = _U32.unpack_from(head, _U32.size)
        length = crc32_preimage(check)  # the one length this CRC belongs to
        (value,) = _U32.unpack(length)
        return length[split:] == head[split : _U32.size] and _plausible_length(
            value, value, start, size
        )
    return False


def _record_head_after(raw: bytes, start: int, size: int) -> bool:
    """Whether a valid record head (CRC matches, length below 16 MiB) lies anywhere after
    ``start``, where :func:`_torn_head` found a torn head (so the file ends within 16 MiB).

    A torn last record has none (but by a 2^-32 chance per byte); a damaged record in the middle
    is followed by the records after it, which must not be dropped silently. Each of those fits
    in the rest of the file, so its length's top byte is zero: only such bytes are looked at.
    """
    for match in _HEAD_CANDIDATE.finditer(raw, start + 1):
        position = match.start()
        if position > size - _RECORD_HEAD.size:
            break
        length, check = _RECORD_HEAD.unpack_from(raw, position)
        if length >= _MIN_BODY and check == zlib.crc32(raw[position : position + _U32.size]):
            return True
    return False


def _lost_sector_in_body(raw: bytes, start: int, size: int) -> bool:
    """Whether the record ``[start, size)`` has a sector piece in its body that reads as zeros."""
    offset = start + _RECORD_HEAD.size
    while offset < size:
        piece = max(offset // SECTOR * SECTOR, start)
        if _lost(raw, piece, size):
            return True
        offset = _sector_end(offset)
    return False


def last_record_torn(raw: bytes, scan: JournalScan) -> bool:
    """Whether the last record, if it fails authentication, is one torn by a power cut.

    It must end the file (nothing may follow it) and have a sector piece in its body that reads
    as zeros: a complete record with a lost sector. Its head is valid (else the scan ended before).
    """
    if not scan.records or scan.end != scan.size:
        return False
    offset, _length = scan.records[-1]
    return _lost_sector_in_body(raw, offset - _RECORD_HEAD.size, scan.size)


def scan_journal(raw: bytes) -> JournalScan:
    """Find the records of a journal; raises :class:`VaultTampered` on a damaged layout.

    After the last complete record, a record torn by a crash may follow (``JournalScan.torn``):
    cut short, or with its head in lost (zero) sectors, no valid record head after it.
    """
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
            if _zero(raw, offset, size):
                break  # the file grew but the bytes never arrived: a crash, not an attack
            if _torn_head(raw, offset, size) and not _record_head_after(raw, offset, size):
                break  # sectors with the head never arrived, no record follows: a crash
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


def open_journal(
    raw: bytes, scan: JournalScan, aead: AESGCM
) -> tuple[list[bytes], JournalScan]:
    """Decrypt all records, dropping a last one torn by a power cut (:func:`last_record_torn`).

    Returns the payloads and the layout without that record (``torn`` then, for the writer to cut
    it away). Raises :class:`VaultTampered` at any other unauthentic record.
    """
    payloads: list[bytes] = []
    records = open_records(raw, scan, aead)
    while True:
        try:
            payloads.append(next(records))
        except StopIteration:
            return payloads, scan
        except VaultTampered:
            if len(payloads) != len(scan.records) - 1 or not last_record_torn(raw, scan):
                raise
            _LOGGER.warning(
                "the last journal record has sectors that never reached the disk (power cut "
                "during its write, never acknowledged): dropping it"
            )
            return payloads, scan.without_last()


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
