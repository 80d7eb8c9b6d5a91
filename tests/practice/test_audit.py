"""The audit log: a hash chain that shows tampering, newest-first listing, purge with an anchor."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from tinydb import Query

from appliance.clock import ManualClock
from appliance.errors import AuditChainBroken
from appliance.practice import store
from appliance.practice.audit import GENESIS_HASH, AuditLog, entry_hash
from appliance.practice.models import StaffMember, to_utc_text

if TYPE_CHECKING:
    from appliance.vault import Vault


@pytest.fixture
def log(audit: AuditLog, admin: StaffMember, clock: ManualClock) -> AuditLog:
    """The audit log after onboarding (which wrote one entry), plus five more an hour apart."""
    for i in range(5):
        clock.advance(timedelta(hours=1))
        audit.record("admin", "patient.add", f"p{i}")
    return audit


def test_entries_form_a_chain(log: AuditLog) -> None:
    """Each entry points at its predecessor's hash; the first at the genesis hash."""
    entries = list(reversed(log.entries()))
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5, 6]
    assert entries[0].prev_hash == GENESIS_HASH
    for before, after in zip(entries, entries[1:], strict=False):
        assert after.prev_hash == before.hash
    first = entries[0]
    assert first.hash == entry_hash(seq=1, at=to_utc_text(first.at), actor=first.actor,
                                    action=first.action, target=first.target,
                                    prev_hash=GENESIS_HASH)
    assert log.verify() == 6


def test_entry_holds_who_what_when_and_an_id_only(log: AuditLog, clock: ManualClock) -> None:
    """An entry says who did what to which id and when, nothing else."""
    entry = log.record("dr.weber", "appointment.admit", "a1b2c3")
    assert (entry.actor, entry.action, entry.target) == ("dr.weber", "appointment.admit", "a1b2c3")
    assert entry.at == clock.now()
    assert set(entry.to_dict()) == {"seq", "at", "actor", "action", "target", "prev_hash", "hash"}


@pytest.mark.parametrize(
    ("field", "value"),
    [("actor", "mallory"), ("action", "login"), ("target", "p9"),
     ("at", "2020-01-01T00:00:00+00:00")],
)
def test_modified_entry_breaks_the_chain(log: AuditLog, vault: Vault, field: str,
                                         value: str) -> None:
    """Changing any field of a stored entry through vault.db is detected at that entry."""
    vault.db.table(store.AUDIT).update({field: value}, Query().seq == 3)
    with pytest.raises(AuditChainBroken) as raised:
        log.verify()
    assert raised.value.params == {"seq": 3}
    assert raised.value.status == 500


def test_rehashed_entry_breaks_the_next_link(log: AuditLog, vault: Vault) -> None:
    """Forging an entry with a fresh hash still breaks the following entry's link."""
    table = vault.db.table(store.AUDIT)
    doc = table.get(Query().seq == 3)
    forged = {**doc, "actor": "mallory"}
    forged["hash"] = entry_hash(**{k: forged[k] for k in
                                   ("seq", "at", "actor", "action", "target", "prev_hash")})
    table.update({"actor": "mallory", "hash": forged["hash"]}, Query().seq == 3)
    with pytest.raises(AuditChainBroken) as raised:
        log.verify()
    assert raised.value.params == {"seq": 4}


def test_removed_entry_breaks_the_chain(log: AuditLog, vault: Vault) -> None:
    """Deleting an entry from the middle is detected."""
    vault.db.table(store.AUDIT).remove(Query().seq == 4)
    with pytest.raises(AuditChainBroken) as raised:
        log.verify()
    assert raised.value.params == {"seq": 4}


def test_entries_newest_first_with_paging(log: AuditLog) -> None:
    """entries() lists newest first, limited, and pages with before_seq."""
    assert [e.seq for e in log.entries(limit=3)] == [6, 5, 4]
    assert [e.seq for e in log.entries(limit=3, before_seq=4)] == [3, 2, 1]
    assert log.entries(limit=3, before_seq=1) == []


def test_purge_keeps_the_chain_verifiable(log: AuditLog, clock: ManualClock) -> None:
    """R8: purging old entries leaves an anchor, so the rest still verifies and grows."""
    cutoff = clock.now() - timedelta(hours=2, minutes=30)
    assert log.purge_before(cutoff) == 3
    assert [e.seq for e in log.entries()] == [6, 5, 4]
    assert log.verify() == 3
    entry = log.record("admin", "login")
    assert entry.seq == 7
    assert log.verify() == 4
    assert log.purge_before(cutoff) == 0


def test_purge_everything_then_continue(log: AuditLog, clock: ManualClock) -> None:
    """After purging every entry the next one continues the chain from the anchor."""
    last = log.entries(limit=1)[0]
    assert log.purge_before(clock.now() + timedelta(seconds=1)) == 6
    assert log.verify() == 0
    entry = log.record("admin", "login")
    assert (entry.seq, entry.prev_hash) == (7, last.hash)
    assert log.verify() == 1


def test_tampering_after_purge_is_still_detected(log: AuditLog, vault: Vault,
                                                 clock: ManualClock) -> None:
    """The first entry after the anchor is checked against the anchor."""
    log.purge_before(clock.now() - timedelta(hours=2, minutes=30))
    vault.db.table(store.AUDIT).update({"actor": "mallory"}, Query().seq == 4)
    with pytest.raises(AuditChainBroken):
        log.verify()


def test_chain_survives_seal_and_unseal(log: AuditLog, vault: Vault, clock: ManualClock,
                                        passwords: dict[str, str]) -> None:
    """After a reboot-like seal/unseal the log verifies and the chain continues."""
    vault.seal()
    vault.unseal("admin", passwords["admin"])
    assert log.verify() == 6
    assert log.record("admin", "login").seq == 7
    fresh = AuditLog(vault, clock)
    assert fresh.record("admin", "login").seq == 8
    assert fresh.verify() == 8
