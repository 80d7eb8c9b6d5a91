"""Retention (R8): appointment metadata, the audit log and idle patients last 90 days at most."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Final

from appliance.clock import Clock
from appliance.practice import store
from appliance.practice.audit import AuditLog
from appliance.practice.models import Appointment, from_utc_text

if TYPE_CHECKING:
    from appliance.practice.appointments import AppointmentBook
    from appliance.vault import Vault

_LOGGER = logging.getLogger(__name__)

#: R8: metadata is deleted after three months at the latest
MAX_DAYS: Final = 90
SYSTEM_ACTOR: Final = "system"


@dataclass(frozen=True, kw_only=True)
class PurgeReport:
    """How many records one purge deleted."""

    appointments: int
    patients: int
    audit_entries: int


class RetentionPolicy:
    """Deletes what is older than ``days`` (1 to 90) from the vault."""

    def __init__(
        self,
        vault: Vault,
        audit: AuditLog,
        clock: Clock,
        days: int = MAX_DAYS,
        *,
        book: AppointmentBook | None = None,
    ) -> None:
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
            raise ValueError(f"retention days must be 1..{MAX_DAYS}, not {days!r}")
        self._vault = vault
        self._audit = audit
        self._clock = clock
        self._book = book
        self.days = days

    def purge(self) -> PurgeReport:
        """Delete what is older than ``days``; audit a ``retention.purge`` if anything went."""
        cutoff = self._clock.now() - timedelta(days=self.days)
        db = self._vault.db
        appointments = db.table(store.APPOINTMENTS)
        old = [
            doc for doc in appointments.all() if Appointment.from_dict(doc).end < cutoff
        ]
        appointments.remove(doc_ids=[doc.doc_id for doc in old])
        if self._book is not None:
            self._book.forget(doc["id"] for doc in old)
        audit_entries = self._audit.purge_before(cutoff)
        booked = {doc["patient_id"] for doc in appointments.all()}
        patients = db.table(store.PATIENTS)
        idle = [
            doc.doc_id
            for doc in patients.all()
            if doc["id"] not in booked and from_utc_text(doc["created_at"]) < cutoff
        ]
        patients.remove(doc_ids=idle)
        report = PurgeReport(
            appointments=len(old), patients=len(idle), audit_entries=audit_entries
        )
        if report.appointments or report.patients or report.audit_entries:
            # the deleted records must leave the files too, not wait for the next compaction
            self._vault.compact()
            self._audit.record(
                SYSTEM_ACTOR,
                "retention.purge",
                f"appointments={report.appointments} patients={report.patients} "
                f"audit_entries={report.audit_entries}",
            )
            _LOGGER.info("retention purge: %s", report)
        return report
