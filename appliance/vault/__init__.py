"""The end-to-end encrypted store: a TinyDB kept decrypted in memory only while unsealed."""

from appliance.vault.crypto import KdfParams
from appliance.vault.keys import RecoveryKey
from appliance.vault.vault import Vault, VaultStatus

__all__ = ["KdfParams", "RecoveryKey", "Vault", "VaultStatus"]
