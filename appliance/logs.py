"""The box's logging policy: which logger speaks at which level, and no address in any line.

The box logs what its administrator needs (starts, stops, failures, record ids), never personal
data: no names, no login names, no codes or tokens, no client addresses (docs/logging.md). The
box's own code keeps to that by what it writes. Libraries do not: aioice logs candidate pairs
with the patient's addresses at INFO, so every logger but the box's own (``appliance.*``) is
held at WARNING, and the codecs' at ERROR. As the last
line of defence, every line (and every traceback) is passed through :class:`RedactAddresses`,
which replaces each IPv4 and IPv6 address by ``[Adresse]`` — except the box's own addresses,
which an admin needs to read (where coturn or a site listens).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import sys
from collections.abc import Iterable
from typing import Final, TextIO

FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED: Final = "[Adresse]"
#: every library speaks at WARNING and above (aioice logs the patient's candidate pairs at INFO,
#: aiortc RTP details at DEBUG); these are held tighter still
LIBRARY_LEVEL: Final = logging.WARNING
STRICTER: Final = {"av": logging.ERROR}  # the codecs' chatter
_IPV4: Final = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
#: anything that may be an IPv6 address (validated before it is replaced): hex groups and colons,
#: possibly ending in an embedded IPv4 address; times like 17:59:49 do not parse and are kept
_IPV6: Final = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|"
                          r"[0-9A-Fa-f]{0,4})(?:%[\w.-]+)?(?![\w:.])")


def redact_addresses(text: str, keep: frozenset[str] = frozenset()) -> str:
    """``text`` with every IP address outside ``keep`` replaced by ``[Adresse]``."""

    def replace(match: re.Match[str]) -> str:
        candidate = match.group(0)
        try:
            address = ipaddress.ip_address(candidate.partition("%")[0])
        except ValueError:
            return candidate
        return candidate if str(address) in keep else REDACTED

    return _IPV4.sub(replace, _IPV6.sub(replace, text))


class RedactAddresses(logging.Filter):
    """Replace the addresses in a record's message and traceback (the box's own are kept)."""

    def __init__(self, keep: Iterable[str] = ()) -> None:
        super().__init__()
        self.keep = frozenset(str(ipaddress.ip_address(a)) for a in keep if _is_ip(a))

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record`` in place; never drops it."""
        message = record.getMessage()
        redacted = redact_addresses(message, self.keep)
        if redacted != message or record.args:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_addresses(record.exc_text, self.keep)
        if record.stack_info:
            record.stack_info = redact_addresses(record.stack_info, self.keep)
        return True


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def setup_logging(*, keep: Iterable[str] = (), level: int = logging.INFO,
                  stream: TextIO | None = None) -> logging.Handler:
    """Configure logging by the policy: one handler with the redacting filter, the box's own
    loggers at ``level``, every library at :data:`LIBRARY_LEVEL` (or :data:`STRICTER`)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RedactAddresses(keep))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(LIBRARY_LEVEL, level))
    logging.getLogger("appliance").setLevel(level)
    for name, stricter in STRICTER.items():
        logging.getLogger(name).setLevel(max(stricter, level))
    return handler
