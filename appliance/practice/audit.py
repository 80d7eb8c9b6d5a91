"""The audit log: who did what to which record and when, as a tamper-evident hash chain."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Final

from tinydb import Query
from tinydb.table import Document

from appliance.clock import Clock
from appliance.errors import AuditChainBroken
from appliance.practice import store
from appliance.practice.models import AuditEntry, from_utc_text, to_utc_text

if TYPE_CHECKING:
    from appliance.vault import Vault

_LOGGER = logging.getLogger(__name__)

#: the ``prev_hash`` of the very first entry
GENESIS_HASH: Final = "0" * 64
#: settings key of the last purged entry's (seq, hash), from which verification starts
ANCHOR_KEY: Final = "audit_anchor"


def entry_hash(*, seq: int, at: str, actor: str, action: str, target: str | None,
               prev_hash: str) -> str:
    """SHA-256 (hex) over the canonical JSON of an entry's fields."""
    canonical = json.dumps(
        {"seq": seq, "at": at, "actor": actor, "action": action, "target": target,
         "prev_hash": prev_hash},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class AuditLog:
    """Appends entries to the chain, verifies it, lists it and purges its old part."""

    def __init__(self, vault: Vault, clock: Clock) -> None:
        self._vault = vault
        self._clock = clock
        #: (seq, hash) of the newest entry, checked against the table before each use
        self._last: tuple[int, str] | None = None

    def record(self, actor: str, action: str, target: str | None = None) -> AuditEntry:
        """Append who (``actor``) did what (``action``) to which id (``target``), now."""
        if not actor or not action:
            raise ValueError("actor and action are required")
        seq, prev_hash = self._head()
        at = to_utc_text(self._clock.now())
        seq += 1
        digest = entry_hash(seq=seq, at=at, actor=actor, action=action, target=target,
                            prev_hash=prev_hash)
        data = {"seq": seq, "at": at, "actor": actor, "action": action, "target": target,
                "prev_hash": prev_hash, "hash": digest}
        # the doc id is the sequence number: the head is found without reading the whole table
        self._vault.db.table(store.AUDIT).insert(Document(data, doc_id=seq))
        self._last = (seq, digest)
        return AuditEntry.from_dict(data)

    def verify(self) -> int:
        """Check every link from the anchor on; the number checked, or ``AuditChainBroken``."""
        seq, prev_hash = self._anchor()
        checked = 0
        for data in self._sorted():
            seq += 1
            if data.get("seq") != seq or data.get("prev_hash") != prev_hash:
                _LOGGER.error("audit chain broken at entry %s", seq)
                raise AuditChainBroken(seq=seq)
            expected = entry_hash(seq=seq, at=data["at"], actor=data["actor"],
                                  action=data["action"], target=data.get("target"),
                                  prev_hash=prev_hash)
            if data.get("hash") != expected:
                _LOGGER.error("audit chain broken at entry %s", seq)
                raise AuditChainBroken(seq=seq)
            prev_hash = expected
            checked += 1
        return checked

    def entries(self, limit: int = 100, before_seq: int | None = None) -> list[AuditEntry]:
        """Up to ``limit`` entries, newest first, older than ``before_seq`` if given."""
        table = self._vault.db.table(store.AUDIT)
        docs = table.all() if before_seq is None else table.search(Query().seq < before_seq)
        docs.sort(key=lambda doc: doc["seq"], reverse=True)
        return [AuditEntry.from_dict(doc) for doc in docs[: max(limit, 0)]]

    def purge_before(self, moment: datetime) -> int:
        """Remove the entries older than ``moment``; the chain stays verifiable from an anchor."""
        docs = self._sorted()
        # always a prefix of the chain, so it stays verifiable from the anchor: up to the last
        # entry older than ``moment`` — an entry stamped in the future by a clock that ran
        # ahead goes with it rather than holding older entries back past the retention (R8)
        old = [i for i, doc in enumerate(docs) if from_utc_text(doc["at"]) < moment]
        last_removed = docs[old[-1]] if old else None
        doomed = [doc.doc_id for doc in docs[: old[-1] + 1]] if old else []
        if last_removed is None:
            return 0
        store.put_setting(self._vault, ANCHOR_KEY,
                          {"seq": last_removed["seq"], "hash": last_removed["hash"]})
        self._vault.db.table(store.AUDIT).remove(doc_ids=doomed)
        return len(doomed)

    def _sorted(self) -> list:
        docs = self._vault.db.table(store.AUDIT).all()
        docs.sort(key=lambda doc: doc.get("seq", 0))
        return docs

    def _anchor(self) -> tuple[int, str]:
        anchor = store.get_setting(self._vault, ANCHOR_KEY)
        if anchor is None:
            return 0, GENESIS_HASH
        return int(anchor["seq"]), str(anchor["hash"])

    def _head(self) -> tuple[int, str]:
        table = self._vault.db.table(store.AUDIT)
        if self._last is not None:
            seq, digest = self._last
            doc = table.get(doc_id=seq)
            if doc is not None and doc.get("hash") == digest and not table.contains(doc_id=seq + 1):
                return self._last
        docs = table.all()
        if not docs:
            self._last = self._anchor()
        else:
            last = max(docs, key=lambda doc: doc["seq"])
            self._last = (int(last["seq"]), str(last["hash"]))
        return self._last
