"""Crash test: a writer killed with SIGKILL at random moments loses no acknowledged write."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from appliance.vault import Vault

from .conftest import PASSWORD

REPO = Path(__file__).resolve().parents[2]
ROUNDS = 40

#: the writer's sequence of operations, shared by the child (which runs it) and the test
#: (which knows from the acknowledged prefix which single operation may have been in flight)
OPERATIONS = textwrap.dedent(
    """
    def operations(start):
        number = start
        while True:
            yield ("I", number)
            if number % 3 == 0:
                yield ("U", number)
            if number % 4 == 0 and number - 2 >= start:
                yield ("R", number - 2)
            number += 1
    """
)

CHILD = OPERATIONS + textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from appliance.vault import KdfParams, Vault

    vault = Vault(Path(sys.argv[1]), kdf=KdfParams(1024, 1, 1), compact_records=6,
                  compact_bytes=3000)
    vault.unseal("anna", sys.argv[3])
    table = vault.db.table("t")
    ids = {}
    out = sys.stdout
    out.write("ready\\n")
    out.flush()
    for op, number in operations(int(sys.argv[2])):
        if op == "I":
            ids[number] = table.insert({"n": number, "pad": "x" * (number % 40)})
        elif op == "U":
            table.update({"u": number}, doc_ids=[ids[number]])
        else:
            table.remove(doc_ids=[ids[number]])
        out.write(f"{op} {number}\\n")
        out.flush()
    """
)

_namespace: dict[str, object] = {}
exec(OPERATIONS, _namespace)  # noqa: S102 - our own constant, shared with the child
operations: Callable[[int], Iterator[tuple[str, int]]] = _namespace["operations"]  # type: ignore[assignment]

Model = dict[int, bool]  # number -> updated?


def _apply(model: Model, op: str, number: int) -> Model:
    model = dict(model)
    if op == "I":
        model[number] = False
    elif op == "U":
        model[number] = True
    else:
        del model[number]
    return model


def _actual(vault: Vault) -> Model:
    docs = vault.db.table("t").all()
    numbers = [doc["n"] for doc in docs]
    assert len(numbers) == len(set(numbers)), "a document appears twice"
    for doc in docs:
        assert doc["pad"] == "x" * (doc["n"] % 40)
        assert doc.get("u", doc["n"]) == doc["n"]
    return {doc["n"]: "u" in doc for doc in docs}


@pytest.mark.slow
def test_kill_during_writes(make_vault: Callable[..., Vault], vault_path: Path) -> None:
    """Crash test: SIGKILL at random points (compactions included); every acked write survives."""
    vault = make_vault()
    vault.create("anna", PASSWORD)
    vault.close()
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    script = vault_path.parent / "writer.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    model: Model = {}
    start = 0
    total_acks = 0
    for round_number in range(ROUNDS):
        child = subprocess.Popen(
            [sys.executable, str(script), str(vault_path), str(start), PASSWORD],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n", child.stderr.read() if child.stderr else ""
        time.sleep(rng.uniform(0.0, 0.12))
        child.send_signal(signal.SIGKILL)
        child.wait()
        acks = [line.split() for line in child.stdout.read().splitlines()]
        child.stdout.close()
        assert child.stderr is not None
        child.stderr.close()

        expected = model
        sequence = operations(start)
        for op, number in acks:
            planned = next(sequence)
            assert planned == (op, int(number))
            expected = _apply(expected, op, int(number))
        in_flight = next(sequence)
        maybe = _apply(expected, *in_flight)

        vault.unseal("anna", PASSWORD)  # must open after every crash
        actual = _actual(vault)
        assert actual in (expected, maybe), (
            f"round {round_number}: {len(acks)} acks, in flight {in_flight}"
        )
        vault.close()
        model = actual
        total_acks += len(acks)
        start = max([*model, start - 1, *(int(n) for op, n in acks if op == "I")]) + 1
    assert total_acks > ROUNDS
    vault.unseal("anna", PASSWORD)
    assert vault.status().generation > 5
