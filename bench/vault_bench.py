"""The vault against plain TinyDB and SQLite: one appointment write, one read by id.

At 1k, 20k and 100k existing appointments (~300 bytes of JSON each), medians in ms per operation.
Vault: unsealed, default compaction (2000 records / 4 MiB); a write is one AES-256-GCM journal
record plus fdatasync; "amortized" adds the write's share of a compaction (compaction time / 2000).
TinyDB: JSONStorage, one JSON file (its write fsyncs). SQLite: one table (id INTEGER PRIMARY KEY,
doc TEXT holding JSON), journal_mode=WAL, synchronous=FULL, one transaction per write.
All stores on the same disk, in bench/.work/.
"""

from __future__ import annotations

import json
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.storages import JSONStorage

from appliance.vault import KdfParams, Vault

WORK = Path(__file__).resolve().parent / ".work"
SIZES = (1_000, 20_000, 100_000)
TABLE = "appointments"
# Argon2id cost only matters for unseal, which is not measured here.
_KDF = KdfParams(memory_kib=1024, iterations=1, lanes=1)


def appointment(number: int) -> dict[str, Any]:
    """A realistic appointment document of about 300 bytes of JSON."""
    day = 5 + number % 20
    return {
        "patient_id": f"pat-{number:08d}",
        "doctor": "dr-mueller",
        "start": f"2026-01-{day:02d}T{8 + number % 9:02d}:{number % 4 * 15:02d}:00+01:00",
        "duration_min": 15,
        "kind": "video",
        "status": "scheduled",
        "reason": "Kontrolltermin Blutdruck",
        "token_hash": f"{number * 2654435761 % (1 << 64):016x}" * 4,
        "code_hash": f"{number * 40503 % (1 << 32):08x}" * 2,
        "created_at": "2025-12-20T10:31:00+01:00",
        "reminder_sent": False,
    }


def _median_ms(operation: Callable[[int], object], repetitions: int, first: int) -> float:
    times = []
    for index in range(repetitions):
        started = time.perf_counter()
        operation(first + index)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def _repetitions(size: int, slow: bool) -> tuple[int, int]:
    if slow:  # plain TinyDB re-reads and rewrites the whole file on every operation
        return {1_000: (21, 41), 20_000: (7, 9)}.get(size, (3, 3))
    return 61, 301


def _bench_vault(directory: Path, size: int) -> dict[str, float]:
    vault = Vault(directory / "vault", kdf=_KDF)
    try:
        vault.create("bench", "bench-password")
        table = vault.db.table(TABLE)
        table.insert_multiple(appointment(number) for number in range(size))
        started = time.perf_counter()
        vault.compact()
        compaction_ms = (time.perf_counter() - started) * 1000
        writes, reads = _repetitions(size, slow=False)
        rng = random.Random(size)
        write = _median_ms(lambda n: table.insert(appointment(n)), writes, size)
        read = _median_ms(lambda _n: table.get(doc_id=rng.randint(1, size)), reads, 0)
    finally:
        vault.close()
    return {"write": write, "read": read, "amortized": write + compaction_ms / 2000}


def _bench_tinydb(directory: Path, size: int) -> dict[str, float]:
    db = TinyDB(directory / "tinydb.json", storage=JSONStorage)
    try:
        table = db.table(TABLE)
        table.insert_multiple(appointment(number) for number in range(size))
        writes, reads = _repetitions(size, slow=True)
        rng = random.Random(size)
        write = _median_ms(lambda n: table.insert(appointment(n)), writes, size)
        read = _median_ms(lambda _n: table.get(doc_id=rng.randint(1, size)), reads, 0)
    finally:
        db.close()
    return {"write": write, "read": read}


def _bench_sqlite(directory: Path, size: int) -> dict[str, float]:
    connection = sqlite3.connect(directory / "sqlite.db", isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute(f"CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, doc TEXT NOT NULL)")
        connection.execute("BEGIN")
        connection.executemany(
            f"INSERT INTO {TABLE} (doc) VALUES (?)",
            ((json.dumps(appointment(number)),) for number in range(size)),
        )
        connection.execute("COMMIT")
        writes, reads = _repetitions(size, slow=False)
        rng = random.Random(size)

        def insert(number: int) -> None:
            # autocommit: one transaction, synced, per statement
            connection.execute(
                f"INSERT INTO {TABLE} (doc) VALUES (?)", (json.dumps(appointment(number)),)
            )

        def get(_number: int) -> dict[str, Any]:
            row = connection.execute(
                f"SELECT doc FROM {TABLE} WHERE id = ?", (rng.randint(1, size),)
            ).fetchone()
            return json.loads(row[0])

        write = _median_ms(insert, writes, size)
        read = _median_ms(get, reads, 0)
    finally:
        connection.close()
    return {"write": write, "read": read}


def run() -> list[dict[str, Any]]:
    """Measure every store at every size; one row per operation and size."""
    WORK.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for size in SIZES:
        figures = {}
        for store, bench in (("vault", _bench_vault), ("TinyDB", _bench_tinydb),
                             ("SQLite", _bench_sqlite)):
            with tempfile.TemporaryDirectory(dir=WORK) as directory:
                figures[store] = bench(Path(directory), size)
        for operation in ("write", "read"):
            vault_ms = figures["vault"][operation]
            row: dict[str, Any] = {
                "name": f"{operation} @ {size // 1000}k",
                "vault ms": round(vault_ms, 4),
                "TinyDB ms": round(figures["TinyDB"][operation], 3),
                "SQLite ms": round(figures["SQLite"][operation], 4),
                "vault speed-up vs TinyDB": round(figures["TinyDB"][operation] / vault_ms, 1),
                "vault / SQLite": round(vault_ms / figures["SQLite"][operation], 2),
            }
            if operation == "write":
                row["vault amortized ms"] = round(figures["vault"]["amortized"], 4)
            rows.append(row)
    return rows


def _print(rows: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    widths = [max(len(column), *(len(str(row.get(column, ""))) for row in rows))
              for column in columns]
    print("  ".join(column.rjust(width) for column, width in zip(columns, widths, strict=True)))
    for row in rows:
        print("  ".join(str(row.get(column, "")).rjust(width)
                        for column, width in zip(columns, widths, strict=True)))


if __name__ == "__main__":
    started = time.perf_counter()
    _print(run())
    print(f"took {time.perf_counter() - started:.0f} s")
