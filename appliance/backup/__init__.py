"""Off-site replication of the vault's ciphertext (restic); arrives with the backup issue.

It will read only the vault's files on disk (``snapshot`` and ``journal``), never the data key.
"""
