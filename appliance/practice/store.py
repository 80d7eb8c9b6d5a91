"""Where the practice keeps its records in the vault: table names and the small settings table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from tinydb import Query

if TYPE_CHECKING:
    from appliance.vault import Vault

STAFF: Final = "staff"
PATIENTS: Final = "patients"
APPOINTMENTS: Final = "appointments"
AUDIT: Final = "audit"
SETTINGS: Final = "settings"


def get_setting(vault: Vault, key: str) -> Any:
    """The value stored under ``key`` in the settings table, or ``None``."""
    doc = vault.db.table(SETTINGS).get(Query().key == key)
    return None if doc is None else doc["value"]


def put_setting(vault: Vault, key: str, value: Any) -> None:
    """Store ``value`` (plain JSON data) under ``key`` in the settings table."""
    vault.db.table(SETTINGS).upsert({"key": key, "value": value}, Query().key == key)
