"""TinyDB on the vault: decrypted tables in memory, each change journaled before it is applied.

Two ways in. :class:`VaultStorage` is a plain TinyDB ``Storage`` (``read`` gives a copy of all
tables, ``write`` diffs against memory) and is correct for any TinyDB code, at O(n) per call.
:class:`VaultDB` (``table_class = VaultTable``) is the fast path: a write hands TinyDB's updater a
change-tracking view, so an insert, update or remove copies, journals and applies only the
documents it touches.
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from typing import Any, Final, Protocol, cast

from tinydb import TinyDB
from tinydb.storages import Storage
from tinydb.table import Document, Table

from appliance.errors import StorageFull

_LOGGER = logging.getLogger(__name__)

Doc = dict[str, Any]
Tables = dict[str, dict[str, Doc]]
#: one change of a record: ``["u", table, cleared, {doc_id: doc}, [doc_id, ...]]`` or
#: ``["d", table]`` (table dropped)
Operation = list[Any]

_CONTAINERS: Final = frozenset({dict, list})


def copy_json(value: Any) -> Any:
    """A deep copy of JSON-like data (dicts and lists copied, everything else shared)."""
    kind = type(value)
    if kind is dict:
        return {k: v if type(v) not in _CONTAINERS else copy_json(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) not in _CONTAINERS else copy_json(v) for v in value]
    return value


def _unshare(doc: Document) -> Document:
    # TinyDB hands out shallow copies; nested lists and dicts must not be the ones in memory,
    # or a caller's in-place change would show up without ever being journaled.
    for key, value in doc.items():
        if type(value) in _CONTAINERS:
            doc[key] = copy_json(value)
    return doc


def apply_operations(tables: Tables, operations: list[Operation]) -> None:
    """Apply the changes of one record to ``tables`` (the only way data in memory changes)."""
    for operation in operations:
        kind = operation[0]
        if kind == "u":
            _, name, cleared, puts, deletes = operation
            table = tables.get(name)
            if table is None:
                table = tables[name] = {}
            elif cleared:
                table.clear()
            for doc_id in deletes:
                table.pop(doc_id, None)
            table.update(puts)
        elif kind == "d":
            tables.pop(operation[1], None)
        else:
            raise ValueError(f"unknown operation {kind!r}")


class RecordSink(Protocol):
    """Where :class:`LiveData` persists its changes (the vault's journal)."""

    def append(self, payload: bytes) -> None:
        """Make ``payload`` durable or raise; nothing may remain of a failed append."""

    def committed(self) -> None:
        """Called after a change is durable and applied (time to compact, maybe)."""


class LiveData:
    """The decrypted tables of an unsealed vault and the one way to change them."""

    def __init__(self, tables: Tables, sink: RecordSink, lock: threading.RLock) -> None:
        self.tables = tables
        self.lock = lock
        self._sink = sink

    def commit(self, operations: list[Operation]) -> None:
        """Journal ``operations`` (durably) and then apply them; on any error apply nothing."""
        with self.lock:
            payload = json.dumps(operations, separators=(",", ":")).encode("ascii")
            self._sink.append(payload)
            # The journaled bytes, parsed again: memory holds exactly what a reopen would see,
            # and shares nothing with the caller's objects.
            apply_operations(self.tables, json.loads(payload))
            self._sink.committed()

    def dump(self) -> bytes:
        """All tables as JSON (the plaintext of a snapshot)."""
        return json.dumps(self.tables, separators=(",", ":")).encode("ascii")


class _TableChanges(MutableMapping[int, Doc]):
    """The view TinyDB's updater works on: reads fall through to memory, changes are collected."""

    def __init__(self, live: dict[str, Doc], id_class: Callable[[Any], int]) -> None:
        self._live = live
        self._id_class = id_class
        self._cleared = False
        self._put: dict[str, Doc] = {}
        self._borrowed: set[str] = set()  # in _put as a copy for reading; maybe changed in place
        self._deleted: dict[str, None] = {}

    @staticmethod
    def _key(doc_id: Any) -> str | None:
        return str(int(doc_id)) if isinstance(doc_id, int) else None

    def _present(self, key: str | None) -> bool:
        if key is None:
            return False
        if key in self._put:
            return True
        return not self._cleared and key not in self._deleted and key in self._live

    def __contains__(self, doc_id: object) -> bool:
        return self._present(self._key(doc_id))

    def __getitem__(self, doc_id: int) -> Doc:
        key = self._key(doc_id)
        if key is not None:
            doc = self._put.get(key)
            if doc is not None:
                return doc
            if self._present(key):
                # A copy: the updater may change it in place, and the change must not reach
                # memory before it is journaled (or at all, if journaling fails).
                doc = self._put[key] = copy_json(self._live[key])
                self._borrowed.add(key)
                return doc
        raise KeyError(doc_id)

    def __setitem__(self, doc_id: int, doc: Doc) -> None:
        key = str(int(doc_id))
        self._put[key] = doc
        self._borrowed.discard(key)
        self._deleted.pop(key, None)

    def __delitem__(self, doc_id: int) -> None:
        key = self._key(doc_id)
        if not self._present(key):
            raise KeyError(doc_id)
        assert key is not None
        self._put.pop(key, None)
        self._borrowed.discard(key)
        if not self._cleared and key in self._live:
            self._deleted[key] = None

    def __iter__(self) -> Iterator[int]:
        id_class = self._id_class
        if not self._cleared:
            for key in self._live:
                if key not in self._deleted:
                    yield id_class(key)
        for key in self._put:
            if self._cleared or key not in self._live:
                yield id_class(key)

    def __len__(self) -> int:
        if self._cleared:
            return len(self._put)
        added = sum(1 for key in self._put if key not in self._live)
        return len(self._live) - len(self._deleted) + added

    def clear(self) -> None:
        self._cleared = True
        self._put.clear()
        self._borrowed.clear()
        self._deleted.clear()

    def operation(self, name: str, exists: bool) -> Operation | None:
        """The change as one operation, or ``None`` if nothing changed."""
        puts = {
            key: doc
            for key, doc in self._put.items()
            if key not in self._borrowed or doc != self._live[key]
        }
        deletes = list(self._deleted)
        if exists and not puts and not deletes and not (self._cleared and self._live):
            return None
        return ["u", name, self._cleared, puts, deletes]


class VaultStorage(Storage):
    """A TinyDB storage over the vault's live data; raises ``VaultSealed`` while sealed."""

    def __init__(self, live: Callable[[], LiveData]) -> None:
        """``live`` gives the current data or raises ``VaultSealed``."""
        super().__init__()
        self._live = live
        self._tables: weakref.WeakSet[VaultTable] = weakref.WeakSet()

    # --- the general Storage interface ---------------------------------------------------------

    def read(self) -> Tables:
        """A deep copy of all tables (whatever the caller changes, memory stays as journaled)."""
        live = self._live()
        with live.lock:
            return cast(Tables, copy_json(live.tables))

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        """Store ``data`` as the new state: journal the difference to memory as one record."""
        live = self._live()
        with live.lock:
            operations: list[Operation] = [["d", name] for name in live.tables if name not in data]
            for name, table in data.items():
                new = {str(doc_id): doc for doc_id, doc in table.items()}
                old = live.tables.get(name)
                if old is None:
                    operations.append(["u", name, False, new, []])
                    continue
                puts = {key: doc for key, doc in new.items() if key not in old or old[key] != doc}
                deletes = [key for key in old if key not in new]
                if puts or deletes:
                    operations.append(["u", name, False, puts, deletes])
            if operations:
                live.commit(operations)

    def close(self) -> None:
        """Nothing to do: the vault owns the files (``Vault.seal`` / ``Vault.close``)."""

    # --- the fast path for VaultDB / VaultTable ------------------------------------------------

    def register(self, table: VaultTable) -> None:
        """Remember ``table`` so that its query cache can be dropped on seal and unseal."""
        self._tables.add(table)

    def forget_caches(self) -> None:
        """Drop every table's query cache and ID counter (on seal, unseal and restore)."""
        for table in list(self._tables):
            table.clear_cache()
            table._next_id = None

    def table_data(self, name: str) -> dict[str, Doc]:
        """The live documents of table ``name`` (read-only for the caller!)."""
        return self._live().tables.get(name) or {}

    def table_names(self) -> set[str]:
        """The names of all tables."""
        return set(self._live().tables)

    def update_table(
        self, name: str, updater: Callable[[MutableMapping[int, Doc]], None], id_class: Any
    ) -> None:
        """Run TinyDB's ``updater`` on a change-tracking view and journal what it changed."""
        live = self._live()
        with live.lock:
            table = live.tables.get(name)
            changes = _TableChanges(table if table is not None else {}, id_class)
            updater(changes)
            operation = changes.operation(name, exists=table is not None)
            if operation is not None:
                live.commit([operation])

    def drop_table(self, name: str) -> None:
        """Drop table ``name`` if it exists."""
        live = self._live()
        with live.lock:
            if name in live.tables:
                live.commit([["d", name]])

    def drop_tables(self) -> None:
        """Drop every table."""
        live = self._live()
        with live.lock:
            if live.tables:
                live.commit([["d", name] for name in live.tables])


class VaultTable(Table):
    """A TinyDB table whose writes touch only the changed documents."""

    _storage: VaultStorage

    def __init__(self, storage: Storage, name: str, *args: Any, **kwargs: Any) -> None:
        if not isinstance(storage, VaultStorage):
            raise TypeError("VaultTable needs a VaultStorage")
        storage.register(self)
        super().__init__(storage, name, *args, **kwargs)

    def _read_table(self) -> dict[str, Any]:
        return self._storage.table_data(self.name)

    def _update_table(self, updater: Callable[[dict[int, Any]], None]) -> None:
        try:
            self._storage.update_table(self.name, updater, self.document_id_class)
        except (StorageFull, OSError):
            self._next_id = None  # the IDs handed out for the failed write were never stored
            raise
        self.clear_cache()

    # TinyDB's updaters for a condition read every document through the updater's view, which
    # copies each one it hands out. Finding the matches on the stored documents first (read
    # only) and updating just those by ID gives the same result: a document that no condition
    # matches is never changed, so no later condition can match it either.

    def _matching_ids(self, conditions: list[Any]) -> list[int]:
        id_class = self.document_id_class
        return [
            id_class(doc_id)
            for doc_id, doc in self._read_table().items()
            if any(cond(doc) for cond in conditions)
        ]

    def update(self, fields: Any, cond: Any = None, doc_ids: Any = None) -> list[int]:
        if doc_ids is None and cond is not None:
            return super().update(fields, doc_ids=self._matching_ids([cond]))
        return super().update(fields, cond, doc_ids)

    def update_multiple(self, updates: Any) -> list[int]:
        if not isinstance(updates, Sequence):
            # TinyDB walks ``updates`` once per document: an iterator is used up by the first
            # one. Keep exactly that behaviour (slow path).
            return super().update_multiple(updates)
        candidates = self._matching_ids([cond for _, cond in updates])
        updated_ids: list[int] = []

        def updater(table: MutableMapping[int, Doc]) -> None:
            for doc_id in candidates:  # the same loop as TinyDB's, over the candidates only
                for fields, cond in updates:
                    if cond(table[doc_id]):
                        updated_ids.append(doc_id)
                        if callable(fields):
                            fields(table[doc_id])
                        else:
                            table[doc_id].update(fields)

        self._update_table(updater)
        return updated_ids

    def remove(self, cond: Any = None, doc_ids: Any = None) -> list[int]:
        if doc_ids is None and cond is not None:
            return super().remove(doc_ids=self._matching_ids([cond]))
        return super().remove(cond, doc_ids)

    def search(self, cond: Any) -> list[Document]:
        return [_unshare(doc) for doc in super().search(cond)]

    def get(self, cond: Any = None, doc_id: Any = None, doc_ids: Any = None) -> Any:
        result = super().get(cond, doc_id, doc_ids)
        if isinstance(result, list):
            return [_unshare(doc) for doc in result]
        return result if result is None else _unshare(result)

    def __iter__(self) -> Iterator[Document]:
        for doc in super().__iter__():
            yield _unshare(doc)


class VaultDB(TinyDB):
    """The TinyDB of an unsealed vault (``Vault.db``); every TinyDB API behaves as usual."""

    table_class = VaultTable

    def __init__(self, storage: VaultStorage) -> None:
        super().__init__(storage=lambda: storage)

    @property
    def vault_storage(self) -> VaultStorage:
        """The storage, typed."""
        return cast(VaultStorage, self._storage)

    def tables(self) -> set[str]:
        return self.vault_storage.table_names()

    def drop_tables(self) -> None:
        self.vault_storage.drop_tables()
        self._tables.clear()

    def drop_table(self, name: str) -> None:
        if name in self._tables:
            del self._tables[name]
        self.vault_storage.drop_table(name)
