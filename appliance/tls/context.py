"""The TLS parameters of both sites, per BSI TR-02102-2: TLS 1.2 and 1.3 only; TLS 1.2 with
ECDHE and AES-GCM only; TLS 1.3 with AES-GCM only (the last through ``openssl.cnf``)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Final

#: TLS 1.2: forward secrecy (ECDHE) and AEAD (AES-GCM), nothing else
TLS12_CIPHERS: Final = "ECDHE+AESGCM:!aNULL:!eNULL"
#: the OpenSSL configuration that restricts TLS 1.3 to AES-GCM (read at OpenSSL's start)
OPENSSL_CONF: Final = Path(__file__).with_name("openssl.cnf")


def server_context(certificate: Path, key: Path) -> ssl.SSLContext:
    """A server context with ``certificate`` (the chain, PEM) and ``key``; :func:`reload`
    swaps them later without touching the listener."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.set_ecdh_curve("prime256v1")
    context.load_cert_chain(certificate, key)
    return context


def reload(context: ssl.SSLContext, certificate: Path, key: Path) -> None:
    """Put a new certificate into a running context: connections open from now on get it,
    open ones keep theirs."""
    context.load_cert_chain(certificate, key)
