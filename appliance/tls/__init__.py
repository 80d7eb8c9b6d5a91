"""HTTPS for both sites: the practice CA and the LAN certificate, the public site's certificates,
the TLS parameters of BSI TR-02102-2 (docs/tls.md).

This floor stands beside the vault: it needs no key of the practice's data, because the box must
serve HTTPS before the onboarding and while the vault is sealed after a reboot.
"""
