"""Pure cryptographic helpers of the vault: AES-256-GCM, Argon2id, HKDF and X25519 sealed boxes."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import time
import unicodedata
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

_LOGGER = logging.getLogger(__name__)

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
SALT_BYTES: Final = 16
#: ephemeral public key + nonce + sealed 32-byte key + tag
SEALED_KEY_BYTES: Final = KEY_BYTES + NONCE_BYTES + KEY_BYTES + TAG_BYTES

_SEALED_BOX_INFO: Final = b"sprechzimmer/sealed-box/v1"

# Upper bounds for parameters read from disk: a forged header must not make an unseal
# allocate gigabytes or spin for minutes.
_MAX_MEMORY_KIB: Final = 1 << 20
_MAX_ITERATIONS: Final = 64
_MAX_LANES: Final = 64


class Unauthentic(Exception):
    """A ciphertext failed authentication: wrong key, wrong context, or modified bytes."""


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id costs; the default is RFC 9106's second recommendation with twice its memory
    (128 MiB, t=3, p=4): a login stays under half a second with two at once on two cores, and a
    guess costs four times as much (``bench/kdf_bench.py``)."""

    memory_kib: int = 131072
    iterations: int = 3
    lanes: int = 4

    def __post_init__(self) -> None:
        for name in ("memory_kib", "iterations", "lanes"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"KdfParams.{name} must be a positive int, not {value!r}")
        if self.memory_kib < 8 * self.lanes:
            raise ValueError("KdfParams.memory_kib must be at least 8 KiB per lane")

    @property
    def plausible(self) -> bool:
        """Whether the parameters are within the bounds an unseal is willing to spend."""
        return (
            self.memory_kib <= _MAX_MEMORY_KIB
            and self.iterations <= _MAX_ITERATIONS
            and self.lanes <= _MAX_LANES
        )

    def to_dict(self) -> dict[str, int]:
        """The JSON form stored in the snapshot header."""
        return {"memory_kib": self.memory_kib, "iterations": self.iterations, "lanes": self.lanes}

    @classmethod
    def from_dict(cls, data: object) -> KdfParams:
        """Parse the JSON form; raises ``ValueError`` on anything else."""
        if not isinstance(data, dict) or set(data) != {"memory_kib", "iterations", "lanes"}:
            raise ValueError("not a KdfParams object")
        return cls(data["memory_kib"], data["iterations"], data["lanes"])


def random_key() -> bytes:
    """A fresh random 256-bit key."""
    return os.urandom(KEY_BYTES)


def seal(key: bytes | AESGCM, plaintext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM encrypt with a random 96-bit nonce; returns ``nonce || ciphertext || tag``."""
    aead = key if isinstance(key, AESGCM) else AESGCM(key)
    nonce = os.urandom(NONCE_BYTES)
    return nonce + aead.encrypt(nonce, plaintext, aad)


def unseal(key: bytes | AESGCM, blob: bytes, aad: bytes) -> bytes:
    """Decrypt what :func:`seal` made; raises :class:`Unauthentic` on any mismatch."""
    if len(blob) < NONCE_BYTES + TAG_BYTES:
        raise Unauthentic("ciphertext too short")
    aead = key if isinstance(key, AESGCM) else AESGCM(key)
    try:
        return aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except InvalidTag:
        raise Unauthentic("authentication failed") from None


def normalize_password(password: str) -> bytes:
    """The bytes a password stands for: NFC-normalised UTF-8 (umlauts typed either way match)."""
    # "surrogatepass": a lone surrogate from JSON input is a (strange) password, not a crash
    return unicodedata.normalize("NFC", password).encode("utf-8", "surrogatepass")


def derive_password_key(password: str, salt: bytes, params: KdfParams) -> bytes:
    """A 256-bit key from a password with Argon2id (taken from :func:`prepare_password_key`'s
    work if it was done for these inputs in the last moments)."""
    secret = normalize_password(password)
    prepared = _PREPARED.take(salt, params, secret)
    return prepared if prepared is not None else _argon2id(secret, salt, params)


def prepare_password_key(password: str, salt: bytes, params: KdfParams) -> None:
    """Derive the key now, for a :func:`derive_password_key` call that follows shortly.

    Argon2id takes ~0.3 s and releases the GIL: a server runs this in a worker thread, so that
    the event loop (signaling heartbeats, other pages) is not blocked while someone logs in.
    """
    secret = normalize_password(password)
    _PREPARED.put(salt, params, secret, _argon2id(secret, salt, params))


#: one Argon2id derivation at a time: with lanes > 1, ``cryptography`` (50, on OpenSSL's thread
#: pool) deadlocks when two threads derive at once — two staff logging in at the same moment
#: hung the password workers for good. One derivation already runs its lanes on every core.
_ARGON2_ONE_AT_A_TIME: Final = threading.Lock()


def _argon2id(secret: bytes, salt: bytes, params: KdfParams) -> bytes:
    with _ARGON2_ONE_AT_A_TIME:
        return _derive_argon2id(secret, salt, params)


def _derive_argon2id(secret: bytes, salt: bytes, params: KdfParams) -> bytes:
    return Argon2id(
        salt=salt,
        length=KEY_BYTES,
        iterations=params.iterations,
        lanes=params.lanes,
        memory_cost=params.memory_kib,
    ).derive(secret)


class _PreparedKeys:
    """Keys derived ahead, each used once and forgotten after ``ttl_s`` (thread-safe)."""

    def __init__(self, ttl_s: float = 30.0, max_entries: int = 64) -> None:
        self._ttl_s = ttl_s
        self._max = max_entries
        self._lock = threading.Lock()
        self._entries: dict[bytes, tuple[float, bytes]] = {}

    @staticmethod
    def _id(salt: bytes, params: KdfParams, secret: bytes) -> bytes:
        # a keyed hash with a per-process key: the table reveals nothing about the passwords
        return hmac.new(_PROCESS_KEY, b"\0".join((
            salt, repr(params).encode(), secret)), hashlib.sha256).digest()

    def put(self, salt: bytes, params: KdfParams, secret: bytes, key: bytes) -> None:
        now = time.monotonic()
        with self._lock:
            entries = {k: v for k, v in self._entries.items() if now - v[0] < self._ttl_s}
            while len(entries) >= self._max:  # the oldest makes room: the newest is awaited
                del entries[next(iter(entries))]
            entries[self._id(salt, params, secret)] = (now, key)
            self._entries = entries

    def take(self, salt: bytes, params: KdfParams, secret: bytes) -> bytes | None:
        with self._lock:
            found = self._entries.pop(self._id(salt, params, secret), None)
        if found is None or time.monotonic() - found[0] >= self._ttl_s:
            return None
        return found[1]


_PROCESS_KEY: Final = os.urandom(32)
_PREPARED: Final = _PreparedKeys()


def hkdf(ikm: bytes, info: bytes, *, salt: bytes | None = None, length: int = KEY_BYTES) -> bytes:
    """HKDF-SHA256."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def generate_private_key() -> X25519PrivateKey:
    """A fresh X25519 private key."""
    return X25519PrivateKey.generate()


def private_key_from_bytes(raw: bytes) -> X25519PrivateKey:
    """An X25519 private key from its 32 raw bytes."""
    return X25519PrivateKey.from_private_bytes(raw)


def private_key_bytes(key: X25519PrivateKey) -> bytes:
    """The 32 raw bytes of an X25519 private key."""
    return key.private_bytes_raw()


def public_key_bytes(key: X25519PrivateKey | X25519PublicKey) -> bytes:
    """The 32 raw bytes of the public half of ``key``."""
    public = key.public_key() if isinstance(key, X25519PrivateKey) else key
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _box_key(shared: bytes, ephemeral_public: bytes, recipient_public: bytes) -> bytes:
    return hkdf(shared, _SEALED_BOX_INFO, salt=ephemeral_public + recipient_public)


def seal_to_public_key(recipient_public: bytes, plaintext: bytes, context: bytes) -> bytes:
    """Encrypt to an X25519 public key (ephemeral X25519 + HKDF + AES-GCM, ``context`` as AAD)."""
    recipient = X25519PublicKey.from_public_bytes(recipient_public)
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = public_key_bytes(ephemeral)
    key = _box_key(ephemeral.exchange(recipient), ephemeral_public, recipient_public)
    return ephemeral_public + seal(key, plaintext, context)


def open_sealed_box(private: X25519PrivateKey, blob: bytes, context: bytes) -> bytes:
    """Open what :func:`seal_to_public_key` made; raises :class:`Unauthentic` on any mismatch."""
    if len(blob) < KEY_BYTES + NONCE_BYTES + TAG_BYTES:
        raise Unauthentic("sealed box too short")
    ephemeral_public = blob[:KEY_BYTES]
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
    except ValueError:  # an all-zero shared secret: a forged ephemeral key
        raise Unauthentic("bad ephemeral key") from None
    key = _box_key(shared, ephemeral_public, public_key_bytes(private))
    return unseal(key, blob[KEY_BYTES:], context)
