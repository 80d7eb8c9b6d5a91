"""Crash test: a power cut during the last append tears that record in sectors, not only at its
end; such a record is dropped (never acknowledged), the same damage anywhere else is tampering.

Each test writes a real vault whose last record is large (several 4 KiB pages), then zeroes
sectors or pages of it the way a power cut between its ``pwrite`` and ``fdatasync`` can leave
them (lost sectors read as zeros; the file size may already include the record).
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.errors import VaultTampered
from appliance.vault import Vault
from appliance.vault import journal as vault_journal

from .conftest import PASSWORD

Hashes = Callable[[Path], dict[str, str]]
PAGE = 4096
SECTOR = vault_journal.SECTOR
#: the big last record's document: ~12 KiB of JSON, so its record spans four or five pages
BIG = {"n": "big", "blob": "".join(f"{n:05d}" for n in range(2400))}


def _journal_end(vault_path: Path) -> int:
    return (vault_path / "journal").stat().st_size


def _write(vault: Vault, vault_path: Path, head_at: int | None = None) -> tuple[list[dict], int]:
    """Five acknowledged records, then (if ``head_at``) a padding record so that the next one
    starts at ``head_at`` modulo a sector, then the big record; returns the acknowledged
    documents and the offset where the big record starts."""
    table = vault.db.table("t")
    for n in range(5):
        table.insert({"n": n, "who": f"Patient {n}"})
    if head_at is not None:
        before = _journal_end(vault_path)
        table.insert({"n": "pad1", "pad": "x" * 100})
        overhead = _journal_end(vault_path) - before - 100
        end = _journal_end(vault_path)
        pad = (head_at - end - overhead) % SECTOR + SECTOR
        table.insert({"n": "pad2", "pad": "x" * pad})
    expected = table.all()
    start = _journal_end(vault_path)
    if head_at is not None:
        assert start % SECTOR == head_at, "the padding did not land the record where wanted"
    table.insert(BIG)
    return expected, start


def _zero(raw: bytearray, start: int, stop: int) -> None:
    raw[start:stop] = bytes(stop - start)


def _page_after(offset: int, unit: int = PAGE) -> int:
    return (offset // unit + 1) * unit


def _tear(raw: bytearray, start: int, shape: str) -> bytearray:
    """The journal with its record at ``start`` (running to the end of ``raw``) torn."""
    size = len(raw)
    first_page = _page_after(start)
    last_page = (size - 1) // PAGE * PAGE
    assert start < first_page < first_page + PAGE < last_page < size, "record too small"
    if shape == "first-page-lost":
        _zero(raw, start, first_page)
    elif shape == "first-sector-lost":
        _zero(raw, start, _page_after(start, SECTOR))
    elif shape == "middle-page-lost":
        _zero(raw, first_page, first_page + PAGE)
    elif shape == "middle-sector-lost":
        _zero(raw, first_page + 3 * SECTOR, first_page + 4 * SECTOR)
    elif shape == "last-page-lost":
        _zero(raw, last_page, size)
    elif shape == "only-first-page-arrived":
        _zero(raw, first_page, size)
    elif shape == "only-last-page-arrived":
        _zero(raw, start, last_page)
    elif shape == "every-other-page-lost":
        for page in range(first_page, size, 2 * PAGE):
            _zero(raw, page, min(page + PAGE, size))
        _zero(raw, start, first_page)
    elif shape == "first-page-lost-size-cut":
        _zero(raw, start, first_page)
        del raw[first_page + PAGE :]
    elif shape == "middle-page-lost-size-cut":
        _zero(raw, first_page, first_page + PAGE)
        del raw[first_page + 2 * PAGE :]
    else:  # pragma: no cover
        raise AssertionError(shape)
    return raw


SHAPES = [
    "first-page-lost", "first-sector-lost", "middle-page-lost", "middle-sector-lost",
    "last-page-lost", "only-first-page-arrived", "only-last-page-arrived",
    "every-other-page-lost", "first-page-lost-size-cut", "middle-page-lost-size-cut",
]


def _opens_without_last(
    vault: Vault, vault_path: Path, expected: list[dict], start: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The torn record is dropped and cut away; the next write works and survives a reopen."""
    good = (vault_path / "journal").read_bytes()[:start]
    with caplog.at_level(logging.WARNING, logger="appliance.vault"):
        vault.unseal("anna", PASSWORD)
    assert vault.db.table("t").all() == expected
    assert vault.status().journal_records == len(expected)
    assert (vault_path / "journal").read_bytes() == good
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("dropping" in message for message in warnings), warnings
    assert not any("Patient" in message or "blob" in message for message in warnings)
    vault.db.table("t").insert({"n": "after"})
    vault.close()
    vault.unseal("anna", PASSWORD)
    assert vault.db.table("t").all() == [*expected, {"n": "after"}]
    vault.close()


@pytest.mark.parametrize("shape", SHAPES)
def test_torn_last_record_is_dropped(
    vault: Vault, vault_path: Path, shape: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Crash test: sectors or pages of the last record lost by a power cut: it is dropped."""
    expected, start = _write(vault, vault_path)
    vault.close()
    journal_path = vault_path / "journal"
    journal_path.write_bytes(bytes(_tear(bytearray(journal_path.read_bytes()), start, shape)))
    _opens_without_last(vault, vault_path, expected, start, caplog)


@pytest.mark.parametrize(
    ("head_at", "lost"),
    [
        (SECTOR - 3, "first"),  # the length's top three bytes in one sector, the rest in the next
        (SECTOR - 3, "second"),
        (SECTOR - 6, "first"),  # the whole length and two CRC bytes in the first sector
        (SECTOR - 6, "second"),
        (SECTOR - 4, "first"),
        (SECTOR - 1, "second"),
    ],
    ids=lambda value: str(value),
)
def test_torn_head_across_a_sector_boundary(
    vault: Vault, vault_path: Path, head_at: int, lost: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Crash test: a record head split by a sector boundary, one of the two sectors lost."""
    expected, start = _write(vault, vault_path, head_at)
    vault.close()
    journal_path = vault_path / "journal"
    raw = bytearray(journal_path.read_bytes())
    boundary = _page_after(start, SECTOR)
    if lost == "first":
        _zero(raw, start, boundary)
    else:
        _zero(raw, boundary, boundary + SECTOR)
    assert raw[start : start + 8] != journal_path.read_bytes()[start : start + 8]
    journal_path.write_bytes(bytes(raw))
    _opens_without_last(vault, vault_path, expected, start, caplog)


def _reported(vault: Vault, vault_path: Path, file_hashes: Hashes) -> str:
    before = file_hashes(vault_path)
    with pytest.raises(VaultTampered) as caught:
        vault.unseal("anna", PASSWORD)
    assert vault.sealed
    assert file_hashes(vault_path) == before
    return caught.value.params["detail"]


@pytest.mark.parametrize(
    "shape",
    [s for s in SHAPES if not s.endswith("size-cut")],
)
def test_same_damage_to_a_middle_record_is_tampering(
    vault: Vault, vault_path: Path, file_hashes: Hashes, shape: str
) -> None:
    """Tamper test: the shapes a crash leaves, but with a record after them: reported."""
    _, start = _write(vault, vault_path)
    end = _journal_end(vault_path)
    vault.db.table("t").insert({"n": "later"})
    vault.close()
    journal_path = vault_path / "journal"
    raw = bytearray(journal_path.read_bytes())
    raw[:end] = _tear(raw[:end], start, shape)
    journal_path.write_bytes(bytes(raw))
    detail = _reported(vault, vault_path, file_hashes)
    assert "Eintrag 6" in detail


def test_damaged_middle_head_before_a_cut_short_last_record_is_tampering(
    vault: Vault, vault_path: Path, file_hashes: Hashes
) -> None:
    """Tamper test: a lost head in the middle is not hidden by a torn record after it."""
    _, start = _write(vault, vault_path)
    end = _journal_end(vault_path)
    vault.db.table("t").insert(BIG)
    vault.close()
    journal_path = vault_path / "journal"
    raw = bytearray(journal_path.read_bytes())
    _zero(raw, start, _page_after(start))
    del raw[end + 100 :]  # the record after it cut short, as a crash would
    journal_path.write_bytes(bytes(raw))
    assert "Längenfeld von Journal-Eintrag 6" in _reported(vault, vault_path, file_hashes)


@pytest.mark.parametrize(
    "damage",
    ["garbage-length", "garbage-head", "unaligned-zeros", "ones-not-zeros", "data-after",
     "earlier-record-too"],
)
def test_last_record_damage_no_crash_leaves_is_tampering(
    vault: Vault, vault_path: Path, file_hashes: Hashes, damage: str
) -> None:
    """Tamper test: damage to the last record that a power cut cannot leave is reported."""
    expected, start = _write(vault, vault_path)
    vault.close()
    journal_path = vault_path / "journal"
    raw = bytearray(journal_path.read_bytes())
    first_page = _page_after(start)
    if damage == "garbage-length":  # non-zero garbage in the length, its CRC intact
        raw[start : start + 4] = b"\x7f\x13\x22\x01"
        _zero(raw, first_page, first_page + PAGE)
    elif damage == "garbage-head":  # a head that is no head, the rest of its sector zero
        raw[start : start + 8] = b"\x01\x02\x03\x04\x05\x06\x07\x08"
        _zero(raw, start + 8, first_page)
    elif damage == "unaligned-zeros":  # zeros, but no whole sector of them
        _zero(raw, first_page - 300, first_page + 300)
    elif damage == "ones-not-zeros":  # a lost page reads as zeros, not as anything else
        raw[first_page : first_page + PAGE] = b"\xff" * PAGE
    elif damage == "data-after":  # a crash leaves nothing after the torn record
        _zero(raw, first_page, first_page + PAGE)
        length = struct.pack(">I", 5000)
        raw += length + struct.pack(">I", zlib.crc32(length)) + bytes(20)
    else:  # a record before the last one damaged as well
        offset, _length = vault_journal.scan_journal(bytes(raw)).records[2]
        raw[offset + 5] ^= 0x10
        _zero(raw, first_page, first_page + PAGE)
    journal_path.write_bytes(bytes(raw))
    _reported(vault, vault_path, file_hashes)


@pytest.mark.parametrize(
    ("head_at", "damage"),
    [
        (SECTOR - 3, "first-lost-crc-flipped"),  # zeros where the length's top bytes were ...
        (SECTOR - 2, "first-lost-crc-flipped"),  # ... but the CRC fits no length ending so
        (SECTOR - 6, "second-lost-garbage-length"),  # the CRC bytes left do not fit the length
        (SECTOR - 3, "second-lost-garbage-length"),  # a length too short for the record
        (SECTOR - 3, "garbage-both"),  # no part of the head is zero
    ],
    ids=lambda value: str(value),
)
def test_damaged_head_across_a_sector_boundary_is_tampering(
    vault: Vault, vault_path: Path, file_hashes: Hashes, head_at: int, damage: str
) -> None:
    """Tamper test: a split last head whose real bytes fit no crash is reported."""
    _, start = _write(vault, vault_path, head_at)
    vault.close()
    journal_path = vault_path / "journal"
    raw = bytearray(journal_path.read_bytes())
    boundary = _page_after(start, SECTOR)
    if damage == "first-lost-crc-flipped":
        _zero(raw, start, boundary)
        raw[start + 7] ^= 0x20
    elif damage == "second-lost-garbage-length":
        # a short length: the record would end before the file does
        raw[start : start + 4] = struct.pack(">I", 64 if head_at == SECTOR - 6 else 256)
        _zero(raw, boundary, boundary + SECTOR)
    else:
        raw[start : start + 8] = b"\x11\x22\x33\x44\x55\x66\x77\x88"
        _zero(raw, _page_after(start), _page_after(start) + PAGE)
    journal_path.write_bytes(bytes(raw))
    assert "Längenfeld von Journal-Eintrag" in _reported(vault, vault_path, file_hashes)


def test_crc_preimage() -> None:
    """The inverse of CRC-32 on four bytes that the torn-head check uses."""
    for value in (b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x00\x00\x30\x39", b"ab\x00z"):
        assert vault_journal.crc32_preimage(zlib.crc32(value)) == value


@pytest.mark.parametrize(("tail", "torn"), [(1 << 20, True), (17 << 20, False)])
def test_lost_head_of_a_long_tail(tail: int, torn: bool) -> None:
    """A lost head is taken for torn only if what follows can be one record (at most 16 MiB);
    the search for records after it stays fast for large tails."""
    head = b"SZJRNL01" + struct.pack(">Q", 1) + bytes(16)
    raw = head + bytes(SECTOR - len(head)) + os.urandom(tail)
    if torn:
        scan = vault_journal.scan_journal(raw)
        assert scan.records == () and scan.end == len(head) and scan.torn
    else:
        with pytest.raises(VaultTampered):
            vault_journal.scan_journal(raw)
