"""Argon2id, the cost of a staff login against the cost of an offline guess (issue 9).

Every login derives one key from name and password with Argon2id (t=3, p=4, as the vault's
``KdfParams``); a thief with the powered-off box pays the same per guess. More memory makes each
guess dearer for him and each login slower for the practice. Measured per memory size: one login
alone, and two at once (the box's password pool has two workers: a practice's morning, when
everybody logs in; the derivations take turns, as ``cryptography`` fails on two at once), as the
median wall time of 5 runs; the ratio is against RFC 9106's second
recommendation (64 MiB), measured in the same run. "guess cost" is memory × time relative to
64 MiB: what a memory-hard guess costs an attacker's hardware, roughly.
The box stays at a login under half a second with two at once; the chosen default is marked.
"""

from __future__ import annotations

import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from appliance.vault import KdfParams, crypto

SIZES_MIB = (64, 128, 256)
RUNS = 5


def _derive(memory_kib: int, salt: bytes) -> None:
    params = KdfParams()
    crypto.derive_password_key("ein-passwort-fuer-den-benchmark", salt, KdfParams(
        memory_kib=memory_kib, iterations=params.iterations, lanes=params.lanes))


def _median_s(memory_kib: int, parallel: int) -> float:
    times = []
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        for _ in range(RUNS):
            started = time.perf_counter()
            list(pool.map(lambda _: _derive(memory_kib, os.urandom(16)), range(parallel)))
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def run() -> list[dict[str, Any]]:
    """One row per memory size: login alone, two at once, ratios against 64 MiB."""
    _derive(1024, os.urandom(16))  # warm up
    default_mib = KdfParams().memory_kib // 1024
    measured = {mib: (_median_s(mib * 1024, 1), _median_s(mib * 1024, 2)) for mib in SIZES_MIB}
    base_one, base_two = measured[64]
    return [{
        "memory MiB": f"{mib}{' (default)' if mib == default_mib else ''}",
        "login s": one, "two at once s": two,
        "login ratio": one / base_one, "two at once ratio": two / base_two,
        "guess cost": mib / 64 * one / base_one,
    } for mib, (one, two) in measured.items()]
