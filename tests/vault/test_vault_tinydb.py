"""TinyDB conformance: every TinyDB API behaves on the vault exactly as on a plain TinyDB."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tinydb import Query, TinyDB
from tinydb.operations import add, decrement, delete, increment
from tinydb.operations import set as set_field
from tinydb.storages import JSONStorage, MemoryStorage
from tinydb.table import Document

from appliance.errors import StorageFull
from appliance.vault import Vault
from appliance.vault.storage import VaultStorage

from .conftest import PASSWORD

q = Query()
Step = Callable[[TinyDB], Any]
REOPEN = object()


def _normal(value: Any) -> Any:
    if isinstance(value, Document):
        return ("doc", value.doc_id, dict(value))
    if isinstance(value, (list, tuple)):
        return [_normal(item) for item in value]
    if isinstance(value, set):
        return sorted(value)
    return value


SCENARIOS: dict[str, list[Any]] = {
    "insert-and-read": [
        lambda db: db.insert({"name": "Anna", "age": 30, "tags": ["a", "b"]}),
        lambda db: db.insert({"name": "Bert", "age": 40, "nested": {"x": [1, {"y": 2}]}}),
        lambda db: db.table("t").insert({"v": 1.5, "none": None, "flag": True}),
        lambda db: db.all(),
        lambda db: len(db),
        lambda db: db.get(doc_id=2),
        lambda db: db.get(doc_id=99),
        lambda db: db.get(doc_ids=[1, 2, 99]),
        lambda db: db.get(q.age > 35),
        lambda db: db.get(q.age > 99),
        lambda db: db.search(q.name.matches("A.*")),
        lambda db: db.search(q.tags.any(["b"])),
        lambda db: db.search(q.nested.x.any([1])),
        lambda db: db.contains(doc_id=1),
        lambda db: db.contains(doc_id=7),
        lambda db: db.contains(q.name == "Bert"),
        lambda db: db.count(q.age >= 30),
        lambda db: db.tables(),
        lambda db: list(db),
        lambda db: [doc.doc_id for doc in db.table("t")],
        REOPEN,
        lambda db: db.all(),
        lambda db: db.table("t").all(),
        lambda db: db.insert({"name": "Cleo"}),
        lambda db: db.tables(),
    ],
    "insert-multiple-and-ids": [
        lambda db: db.insert_multiple([{"n": n} for n in range(5)]),
        lambda db: db.insert(Document({"n": 100}, doc_id=50)),
        lambda db: db.insert({"n": 101}),
        lambda db: db.insert(Document({"n": "dup"}, doc_id=50)),
        lambda db: db.insert_multiple([{"n": 102}, Document({"n": "dup"}, doc_id=3)]),
        lambda db: db.insert_multiple([{"n": 103}, Document({"n": 104}, doc_id=60)]),
        lambda db: db.insert_multiple(iter([{"n": 105}, {"n": 106}])),
        lambda db: db.insert("not a mapping"),
        lambda db: db.all(),
        lambda db: db.remove(doc_ids=[61, 62]),
        lambda db: db.insert({"after": "remove of the highest"}),
        REOPEN,
        lambda db: db.insert({"after": "reopen"}),
        lambda db: db.all(),
    ],
    "update": [
        lambda db: db.insert_multiple(
            [{"n": n, "even": n % 2 == 0, "count": n, "list": [n]} for n in range(8)]
        ),
        lambda db: db.update({"seen": True}, q.even == True),  # noqa: E712
        lambda db: db.update({"by_id": 1}, doc_ids=[1, 2, 77]),
        lambda db: db.update(increment("count"), q.n < 3),
        lambda db: db.update(decrement("count"), doc_ids=[8]),
        lambda db: db.update(add("count", 10), q.n == 4),
        lambda db: db.update(set_field("name", "x"), q.n == 5),
        lambda db: db.update(delete("list"), q.n == 6),
        lambda db: db.update(lambda doc: doc["list"].append("in place"), q.n == 7),
        lambda db: db.update({"all": 1}),
        lambda db: db.update({"none": 1}, q.n == 999),
        lambda db: db.update_multiple([({"multi": "a"}, q.n == 1), ({"multi": "b"}, q.n > 5)]),
        lambda db: db.update_multiple([(increment("count"), q.n == 1),
                                       (increment("count"), q.count == 3)]),
        lambda db: db.update_multiple(iter([({"flag": 1}, q.n == 2),
                                            ({"chained": True}, q.flag == 1)])),
        lambda db: db.update_multiple([]),
        lambda db: db.update(lambda doc: doc.update(n=doc["n"] + 100), q.n < 2),
        lambda db: db.update({"both": 1}, q.n == 3, doc_ids=[4]),
        lambda db: db.all(),
        REOPEN,
        lambda db: db.all(),
        lambda db: db.update(lambda doc: doc.clear(), doc_ids=[2]),
        lambda db: db.get(doc_id=2),
    ],
    "upsert": [
        lambda db: db.upsert({"key": "a", "value": 1}, q.key == "a"),
        lambda db: db.upsert({"key": "a", "value": 2}, q.key == "a"),
        lambda db: db.upsert({"key": "b", "value": 3}, q.key == "b"),
        lambda db: db.upsert(Document({"value": 4}, doc_id=1)),
        lambda db: db.upsert(Document({"key": "c"}, doc_id=9)),
        lambda db: db.upsert({"key": "z"}),
        lambda db: db.all(),
        REOPEN,
        lambda db: db.upsert({"key": "b", "value": 5}, q.key == "b"),
        lambda db: db.all(),
    ],
    "remove-truncate-drop": [
        lambda db: db.insert_multiple([{"n": n} for n in range(10)]),
        lambda db: db.table("other").insert({"o": 1}),
        lambda db: db.remove(q.n > 6),
        lambda db: db.remove(doc_ids=[1, 2, 50]),
        lambda db: db.remove(q.n == 999),
        lambda db: db.remove(),
        lambda db: db.all(),
        lambda db: db.insert({"n": "again"}),
        lambda db: db.table("empty").remove(q.n == 1),
        lambda db: db.table("also-empty").truncate(),
        lambda db: db.table("never-written").all(),
        lambda db: db.tables(),
        REOPEN,
        lambda db: db.tables(),
        lambda db: db.truncate(),
        lambda db: db.insert({"n": "after truncate"}),
        lambda db: db.all(),
        lambda db: db.drop_table("other"),
        lambda db: db.drop_table("does-not-exist"),
        lambda db: db.tables(),
        lambda db: db.table("other").all(),
        lambda db: db.table("other").insert({"new": True}),
        REOPEN,
        lambda db: db.table("other").all(),
        lambda db: db.drop_tables(),
        lambda db: db.tables(),
        lambda db: db.all(),
        lambda db: db.insert({"fresh": 1}),
        REOPEN,
        lambda db: (db.tables(), db.all()),
    ],
    "query-cache": [
        lambda db: db.insert_multiple([{"n": n} for n in range(3)]),
        lambda db: db.search(q.n >= 1),
        lambda db: db.insert({"n": 5}),
        lambda db: db.search(q.n >= 1),
        lambda db: db.update({"n": 0}, doc_ids=[2]),
        lambda db: db.search(q.n >= 1),
        lambda db: db.count(q.n >= 1),
        lambda db: db.remove(q.n == 5),
        lambda db: db.search(q.n >= 1),
        lambda db: db.search(q.n.test(lambda value: value > 0)),
        REOPEN,
        lambda db: db.search(q.n >= 1),
        lambda db: db.search(q.n.test(lambda value: value > 0)),
    ],
    "order-and-persist-empty": [
        lambda db: db.table("p", persist_empty=True).all(),
        lambda db: db.tables(),
        lambda db: db.insert_multiple([{"n": n} for n in range(5)]),
        lambda db: db.remove(doc_ids=[2]),
        lambda db: db.insert(Document({"n": "back"}, doc_id=2)),
        lambda db: db.update({"u": 1}, doc_ids=[1]),
        lambda db: [doc.doc_id for doc in db],
        REOPEN,
        lambda db: [doc.doc_id for doc in db],
        lambda db: db.tables(),
    ],
    "failing-updaters-are-atomic": [
        lambda db: db.insert_multiple([{"n": n} for n in range(4)]),
        lambda db: db.update(lambda doc: doc.update(x=1 / (doc["n"] - 2)), q.n >= 0),
        lambda db: db.all(),
        lambda db: db.insert_multiple([{"n": 9}, Document({"n": "dup"}, doc_id=1)]),
        lambda db: db.all(),
        REOPEN,
        lambda db: db.all(),
    ],
}


class _SharedMemory(MemoryStorage):
    """A MemoryStorage whose contents survive a 'reopen' (a new TinyDB on the same memory)."""

    memories: dict[int, Any] = {}

    def __init__(self, key: int) -> None:
        super().__init__()
        self._key = key
        self.memory = self.memories.get(key)

    def write(self, data: Any) -> None:
        super().write(data)
        self.memories[self._key] = data


def _run(steps: list[Any], open_db: Callable[[], TinyDB], reopen: Callable[[], TinyDB]) -> list:
    db = open_db()
    observed: list[Any] = []
    for step in steps:
        if step is REOPEN:
            db = reopen()
            observed.append("reopened")
            continue
        try:
            observed.append(_normal(step(db)))
        except Exception as exc:
            observed.append(("raises", type(exc).__name__))
    return observed


#: Scenarios where MemoryStorage differs from a file: it hands the updater the stored documents
#: themselves, so an updater failing halfway leaves half its changes. JSONStorage (a file, like
#: the vault) changes nothing then; these scenarios are compared with JSONStorage.
FILE_SEMANTICS = {"failing-updaters-are-atomic"}


def _plain(steps: list[Any], scenario: str, tmp_path: Path) -> list:
    if scenario in FILE_SEMANTICS:
        path = tmp_path / "reference.json"

        def open_file() -> TinyDB:
            return TinyDB(path, storage=JSONStorage)

        return _run(steps, open_file, open_file)
    key = id(steps)
    _SharedMemory.memories.pop(key, None)

    def open_db() -> TinyDB:
        return TinyDB(storage=lambda: _SharedMemory(key))

    return _run(steps, open_db, open_db)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("backend", ["vault-db", "vault-storage"])
def test_conformance(vault: Vault, scenario: str, backend: str, tmp_path: Path) -> None:
    """Same operations on TinyDB(MemoryStorage) and on the vault give the same results."""
    steps = SCENARIOS[scenario]
    expected = _plain(steps, scenario, tmp_path)

    def open_db() -> TinyDB:
        if backend == "vault-db":
            return vault.db
        # plain TinyDB with its plain Table over the general Storage interface
        return TinyDB(storage=lambda: VaultStorage(vault._live))

    def reopen() -> TinyDB:
        vault.seal()
        vault.unseal("anna", PASSWORD)
        return open_db()

    assert _run(steps, open_db, reopen) == expected


def test_plain_tinydb_over_vault_storage_persists(vault: Vault) -> None:
    """The general VaultStorage fallback journals its writes like the fast path."""
    db = TinyDB(storage=lambda: VaultStorage(vault._live))
    db.insert({"a": 1})
    db.table("x").insert_multiple([{"b": n} for n in range(3)])
    db.update({"a": 2}, q.a == 1)
    db.table("x").remove(q.b == 1)
    vault.close()
    vault.unseal("anna", PASSWORD)
    assert vault.db.all() == [{"a": 2}]
    assert vault.db.table("x").all() == [{"b": 0}, {"b": 2}]


def test_nested_values_are_not_shared(vault: Vault, tmp_path: Path) -> None:
    """As with a JSON file (not MemoryStorage): in-place edits of given or read values stay out."""
    table = vault.db.table("t")
    reference = TinyDB(tmp_path / "reference.json", storage=JSONStorage).table("t")
    for db_table in (table, reference):
        given = {"tags": ["a"], "pair": (1, 2), "deep": {"l": [1]}}
        doc_id = db_table.insert(given)
        given["tags"].append("from the caller")
        got = db_table.get(doc_id=doc_id)
        got["deep"]["l"].append("from a reader")
        for doc in db_table.search(q.tags.exists()):
            doc["tags"].append("from a search")
        for doc in db_table:
            doc["deep"]["l"].append("from an iteration")
        db_table.update(lambda doc: doc["tags"].append("journaled"), doc_ids=[doc_id])
    assert table.all() == reference.all() == [
        {"tags": ["a", "journaled"], "pair": [1, 2], "deep": {"l": [1]}}
    ]
    vault.close()
    vault.unseal("anna", PASSWORD)
    assert vault.db.table("t").all() == reference.all()


def test_values_that_are_not_json_are_refused(vault: Vault) -> None:
    """A document that JSON cannot hold raises TypeError and leaves nothing behind."""
    table = vault.db.table("t")
    table.insert({"ok": 1})
    records = vault.status().journal_records
    with pytest.raises(TypeError):
        table.insert({"when": object()})
    with pytest.raises(TypeError):
        table.update({"bad": {1, 2}}, doc_ids=[1])
    assert table.all() == [{"ok": 1}]
    assert vault.status().journal_records == records
    table.insert({"ok": 2})
    assert table.all() == [{"ok": 1}, {"ok": 2}]


def test_a_write_touches_only_its_documents(vault: Vault, monkeypatch: Any) -> None:
    """Fast path: an insert or update by id copies and journals only the documents it changes."""
    table = vault.db.table("t")
    table.insert_multiple({"n": n} for n in range(5000))
    copies: list[Any] = []
    import appliance.vault.storage as storage_module

    real_copy = storage_module.copy_json

    def counting_copy(value: Any) -> Any:
        copies.append(value)
        return real_copy(value)

    monkeypatch.setattr(storage_module, "copy_json", counting_copy)
    payloads: list[bytes] = []
    session = vault._handles.session
    assert session is not None
    real_append = session.journal.append
    monkeypatch.setattr(session.journal, "append", lambda p: (payloads.append(p), real_append(p)))
    table.insert({"n": "new"})
    table.update({"u": 1}, doc_ids=[17])
    table.remove(doc_ids=[18])
    table.update({"u": 2}, q.n == 30)
    table.remove(q.n == 31)
    table.update_multiple([({"u": 3}, q.n == 40)])
    table.upsert({"n": 50, "u": 4}, q.n == 50)
    assert table.get(doc_id=17) == {"n": 16, "u": 1}
    assert table.search(q.u >= 2) == [{"n": 30, "u": 2}, {"n": 40, "u": 3}, {"n": 50, "u": 4}]
    assert len(copies) == 4  # only the documents the updates changed were copied
    assert all(len(payload) < 100 for payload in payloads), payloads


def test_query_cache_is_dropped_on_reopen(vault: Vault, vault_path: Path, tmp_path: Path) -> None:
    """A cached search of a held table is not served after the files changed under a seal."""
    import shutil

    table = vault.db.table("t")
    table.insert({"n": 1})
    vault.close()
    shutil.copytree(vault_path, tmp_path / "older")
    vault.unseal("anna", PASSWORD)
    table.insert({"n": 2})
    assert table.search(q.n > 0) == [{"n": 1}, {"n": 2}]
    vault.seal()
    shutil.rmtree(vault_path)
    shutil.copytree(tmp_path / "older", vault_path)  # e.g. a restore from a backup
    vault.unseal("anna", PASSWORD)
    assert table.search(q.n > 0) == [{"n": 1}]
    assert table.insert({"n": 3}) == 2


def test_storage_full_resets_the_next_id(vault: Vault, monkeypatch: Any) -> None:
    """After a failed insert the ID it used is free again, as after a reopen."""
    table = vault.db.table("t")
    table.insert({"n": 1})
    session = vault._handles.session
    assert session is not None

    def full(payload: bytes) -> None:
        raise StorageFull()

    monkeypatch.setattr(session.journal, "append", full)
    with pytest.raises(StorageFull):
        table.insert({"n": 2})
    monkeypatch.undo()
    assert table.insert({"n": 2}) == 2
