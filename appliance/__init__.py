"""Sprechzimmer: a self-hosted video consultation appliance for medical practices."""

import os
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

# BSI TR-02102-2: TLS 1.3 with AES-GCM only. OpenSSL reads its configuration once, when the ssl
# module first loads; so the box names its own before anything imports ssl (docs/tls.md).
if "ssl" not in sys.modules:
    os.environ["OPENSSL_CONF"] = str(Path(__file__).parent / "tls" / "openssl.cnf")

try:
    __version__ = version("sprechzimmer")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
