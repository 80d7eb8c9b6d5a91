"""The key hierarchy: the data key, its wraps for staff members and the recovery key."""

from __future__ import annotations

import base64
import hmac
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from appliance.errors import (
    MalformedRecoveryKey,
    VaultSealed,
    VaultTampered,
    WrongCredentials,
    WrongRecoveryKey,
)
from appliance.vault import crypto
from appliance.vault.crypto import KdfParams, Unauthentic

_LOGGER = logging.getLogger(__name__)

KEY_ID_BYTES: Final = 16

# Crockford's base32 alphabet: no I, L, O (read as 1, 1, 0) and no U.
_ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_VALUE: Final = {char: index for index, char in enumerate(_ALPHABET)}
_CONFUSIONS: Final = str.maketrans({"O": "0", "I": "1", "L": "1"})
_SEPARATORS: Final = re.compile(r"[\s\-\u2010-\u2015_.]+")
_DATA_SYMBOLS: Final = 52  # 256 bits in 5-bit symbols, 4 zero bits of padding
_PAD_BITS: Final = _DATA_SYMBOLS * 5 - 256
_GROUP: Final = 4
# A weighted sum modulo a prime below 32**2: every single substitution and every swap of two
# neighbours changes it, so the two check symbols catch the typical typos for certain.
_CHECK_MODULUS: Final = 1021

_RECOVERY_VAULT_INFO: Final = b"sprechzimmer/recovery/vault-x25519/v1"
_RECOVERY_PURPOSE_INFO: Final = b"sprechzimmer/recovery/purpose/v1/"
_MEMBER_KEY_CONTEXT: Final = b"sprechzimmer/member-private-key/v1\0"
_DATA_KEY_CONTEXT: Final = b"sprechzimmer/data-key/v1\0"
_MEMBER_SALT_INFO: Final = b"sprechzimmer/member-salt/v1\0"
_INDEX_CONTEXT: Final = b"sprechzimmer/member-index/v1\0"
_INDEX_PADDING: Final = 512


def _checksum(symbols: list[int]) -> int:
    return sum((index + 1) * value for index, value in enumerate(symbols)) % _CHECK_MODULUS


class RecoveryKey:
    """256 random bits that open the vault alone; printed once on the emergency sheet."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes) or len(secret) != crypto.KEY_BYTES:
            raise ValueError("a recovery key is exactly 32 bytes")
        self._secret = secret

    @classmethod
    def generate(cls) -> RecoveryKey:
        """A fresh random recovery key."""
        return cls(os.urandom(crypto.KEY_BYTES))

    @classmethod
    def parse(cls, text: str) -> RecoveryKey:
        """Read the printed form; forgives case, spaces, dashes and O/0, I/L/1 mix-ups."""
        if not isinstance(text, str):
            raise MalformedRecoveryKey()
        clean = _SEPARATORS.sub("", text).upper().translate(_CONFUSIONS)
        if len(clean) != _DATA_SYMBOLS + 2 or any(char not in _VALUE for char in clean):
            raise MalformedRecoveryKey()
        symbols = [_VALUE[char] for char in clean]
        data, check = symbols[:_DATA_SYMBOLS], symbols[_DATA_SYMBOLS:]
        if check[0] * 32 + check[1] != _checksum(data):
            raise MalformedRecoveryKey()
        number = 0
        for value in data:
            number = number << 5 | value
        if number & ((1 << _PAD_BITS) - 1):
            raise MalformedRecoveryKey()
        return cls((number >> _PAD_BITS).to_bytes(crypto.KEY_BYTES, "big"))

    def __str__(self) -> str:
        """The printed form: groups of four symbols and a final group of two check symbols."""
        number = int.from_bytes(self._secret, "big") << _PAD_BITS
        symbols = [(number >> (5 * shift)) & 31 for shift in reversed(range(_DATA_SYMBOLS))]
        check = _checksum(symbols)
        text = "".join(_ALPHABET[value] for value in symbols)
        groups = [text[start : start + _GROUP] for start in range(0, len(text), _GROUP)]
        groups.append(_ALPHABET[check // 32] + _ALPHABET[check % 32])
        return "-".join(groups)

    def __repr__(self) -> str:
        return "RecoveryKey(<hidden>)"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RecoveryKey):
            return NotImplemented
        return hmac.compare_digest(self._secret, other._secret)

    def __hash__(self) -> int:
        return hash(crypto.hkdf(self._secret, b"sprechzimmer/recovery/hash"))

    def derive(self, purpose: bytes) -> bytes:
        """A 256-bit key for ``purpose`` (e.g. ``b"backup"``), independent of the vault's key."""
        if not isinstance(purpose, bytes) or not purpose:
            raise ValueError("purpose must be non-empty bytes")
        return crypto.hkdf(self._secret, _RECOVERY_PURPOSE_INFO + purpose)

    def vault_private_key(self) -> crypto.X25519PrivateKey:
        """The X25519 private key whose public half the vault seals its data key to."""
        return crypto.private_key_from_bytes(crypto.hkdf(self._secret, _RECOVERY_VAULT_INFO))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object, length: int | None = None) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not a base64 string")
    raw = base64.b64decode(text.encode("ascii"), validate=True)
    if length is not None and len(raw) != length:
        raise ValueError("wrong length")
    return raw


def _member_context(member_id: str, public_key: bytes) -> bytes:
    return _MEMBER_KEY_CONTEXT + member_id.encode("utf-8") + b"\0" + public_key


def _data_key_context(key_id: bytes, recipient: str) -> bytes:
    return _DATA_KEY_CONTEXT + key_id + b"\0" + recipient.encode("utf-8")


def _member_salt(ring_salt: bytes, member_id: str) -> bytes:
    """A member's Argon2id salt: derived from the vault's salt and the login name, never stored,
    so that no wrap says whose it is."""
    return crypto.hkdf(ring_salt, _MEMBER_SALT_INFO + member_id.encode("utf-8"),
                       length=crypto.SALT_BYTES)


@dataclass(frozen=True, slots=True)
class MemberWrap:
    """One member's key pair (private half under their password) and the data key sealed to it.

    Nothing in it names the member: the private half is sealed under a key derived from the
    password and a salt derived from the login name, with the name in its associated data, so
    only the right name and password open it.
    """

    public_key: bytes
    private_key: bytes
    kdf: KdfParams
    data_key: bytes

    def to_dict(self) -> dict[str, Any]:
        """The JSON form in the snapshot header."""
        return {
            "public_key": _b64(self.public_key),
            "private_key": _b64(self.private_key),
            "kdf": self.kdf.to_dict(),
            "data_key": _b64(self.data_key),
        }

    @classmethod
    def from_dict(cls, data: object) -> MemberWrap:
        """Parse the JSON form; raises ``ValueError`` on anything else."""
        if not isinstance(data, dict):
            raise ValueError("not an object")
        private_key_len = crypto.NONCE_BYTES + crypto.KEY_BYTES + crypto.TAG_BYTES
        return cls(
            public_key=_unb64(data.get("public_key"), crypto.KEY_BYTES),
            private_key=_unb64(data.get("private_key"), private_key_len),
            kdf=KdfParams.from_dict(data.get("kdf")),
            data_key=_unb64(data.get("data_key"), crypto.SEALED_KEY_BYTES),
        )


@dataclass(frozen=True, slots=True)
class RecoveryWrap:
    """The recovery key's public key and the data key sealed to it."""

    public_key: bytes
    data_key: bytes

    @classmethod
    def create(cls, recovery_key: RecoveryKey, data_key: bytes, key_id: bytes) -> RecoveryWrap:
        """``data_key`` sealed to ``recovery_key``'s public key."""
        public = crypto.public_key_bytes(recovery_key.vault_private_key())
        return cls(public, crypto.seal_to_public_key(
            public, data_key, _data_key_context(key_id, "recovery")))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form in the snapshot header."""
        return {"public_key": _b64(self.public_key), "data_key": _b64(self.data_key)}

    @classmethod
    def from_dict(cls, data: object) -> RecoveryWrap:
        """Parse the JSON form; raises ``ValueError`` on anything else."""
        if not isinstance(data, dict):
            raise ValueError("not an object")
        return cls(
            public_key=_unb64(data.get("public_key"), crypto.KEY_BYTES),
            data_key=_unb64(data.get("data_key"), crypto.SEALED_KEY_BYTES),
        )


def _wrap_member(member_id: str, password: str, ring_salt: bytes, data_key: bytes,
                 key_id: bytes, kdf: KdfParams) -> MemberWrap:
    private = crypto.generate_private_key()
    public = crypto.public_key_bytes(private)
    password_key = crypto.derive_password_key(password, _member_salt(ring_salt, member_id), kdf)
    return MemberWrap(
        public_key=public,
        private_key=crypto.seal(
            password_key, crypto.private_key_bytes(private), _member_context(member_id, public)
        ),
        kdf=kdf,
        data_key=crypto.seal_to_public_key(
            public, data_key, _data_key_context(key_id, "member\0" + member_id)
        ),
    )


def _seal_index(names: Mapping[str, bytes], data_key: bytes, key_id: bytes) -> bytes:
    text = json.dumps({name: _b64(names[name]) for name in sorted(names)},
                      separators=(",", ":")).encode("utf-8")
    padded = text + b" " * (-len(text) % _INDEX_PADDING)  # the length hides the names' lengths
    return crypto.seal(data_key, padded, _INDEX_CONTEXT + key_id)


def _open_index(sealed: bytes, data_key: bytes, key_id: bytes) -> dict[str, bytes]:
    try:
        raw = json.loads(crypto.unseal(data_key, sealed, _INDEX_CONTEXT + key_id))
        if not isinstance(raw, dict):
            raise ValueError("not an object")
        return {str(name): _unb64(public, crypto.KEY_BYTES) for name, public in raw.items()}
    except (Unauthentic, ValueError):
        raise VaultTampered(detail="Das Verzeichnis der Mitglieder ist nicht authentisch") from None


@dataclass(frozen=True)
class KeyRing:
    """Every wrap of the current data key; immutable, each change gives a new ring.

    On the disk the ring names nobody: the member wraps are anonymous and the index from login
    names to wraps is sealed under the data key. A ring read from a header therefore knows its
    members' names only after :meth:`named` (the data key opened); a login needs no index: it
    derives one key from name and password and tries it on every wrap.
    """

    key_id: bytes
    salt: bytes
    wraps: tuple[MemberWrap, ...]
    recovery: RecoveryWrap
    #: login name -> public key of that member's wrap; ``None`` while the data key is unknown
    names: Mapping[str, bytes] | None = None
    #: the index as read from the disk, opened by :meth:`named`
    sealed_index: bytes = b""

    @classmethod
    def create(
        cls, member_id: str, password: str, kdf: KdfParams
    ) -> tuple[KeyRing, bytes, RecoveryKey]:
        """A new hierarchy: a data key, its first member and a recovery key."""
        data_key = crypto.random_key()
        recovery_key = RecoveryKey.generate()
        key_id = os.urandom(KEY_ID_BYTES)
        salt = os.urandom(crypto.SALT_BYTES)
        wrap = _wrap_member(member_id, password, salt, data_key, key_id, kdf)
        ring = cls(key_id, salt, (wrap,), RecoveryWrap.create(recovery_key, data_key, key_id),
                   {member_id: wrap.public_key})
        return ring, data_key, recovery_key

    # --- members -------------------------------------------------------------------------------

    @property
    def members(self) -> tuple[str, ...]:
        """The login names, sorted; raises :class:`VaultSealed` before :meth:`named`."""
        return tuple(sorted(self._names()))

    def _names(self) -> Mapping[str, bytes]:
        if self.names is None:
            raise VaultSealed()
        return self.names

    def named(self, data_key: bytes) -> KeyRing:
        """This ring with its index opened by ``data_key``; checks it matches the wraps."""
        if self.names is not None:
            return self
        names = _open_index(self.sealed_index, data_key, self.key_id)
        listed = sorted(names.values())
        if listed != sorted(wrap.public_key for wrap in self.wraps) or len(set(listed)) != len(
            listed
        ):
            raise VaultTampered(detail="Die Schlüssel der Mitglieder passen nicht zum Verzeichnis")
        return replace(self, names=names)

    # --- opening -------------------------------------------------------------------------------

    def _kdfs(self) -> list[KdfParams]:
        """The distinct Argon2id settings of the wraps (one, unless they are being raised)."""
        kdfs = list(dict.fromkeys(wrap.kdf for wrap in self.wraps))
        if not all(kdf.plausible for kdf in kdfs):
            raise VaultTampered(detail="Die Schlüsselparameter eines Mitglieds sind unplausibel")
        return kdfs or [KdfParams()]

    def _member_private_key(
        self, member_id: str, password: str
    ) -> tuple[MemberWrap, crypto.X25519PrivateKey]:
        if not isinstance(password, str) or not isinstance(member_id, str):
            raise WrongCredentials()
        salt = _member_salt(self.salt, member_id)
        # The same work for every name, known or not: the answer must not reveal who exists.
        keys = [(kdf, crypto.derive_password_key(password, salt, kdf)) for kdf in self._kdfs()]
        for kdf, password_key in keys:
            for wrap in self.wraps:
                if wrap.kdf != kdf:
                    continue
                try:
                    raw = crypto.unseal(
                        password_key, wrap.private_key,
                        _member_context(member_id, wrap.public_key))
                except Unauthentic:
                    continue
                private = crypto.private_key_from_bytes(raw)
                if not hmac.compare_digest(crypto.public_key_bytes(private), wrap.public_key):
                    raise VaultTampered(
                        detail="Das Schlüsselpaar eines Mitglieds passt nicht zusammen")
                return wrap, private
        raise WrongCredentials()

    def prepare_password(self, member_id: str, password: str) -> None:
        """Do the Argon2id work of a coming check of ``member_id``'s password now (e.g. in a
        worker thread). An unknown member gets the same work as a known one."""
        if not isinstance(password, str) or not isinstance(member_id, str):
            return
        salt = _member_salt(self.salt, member_id)
        try:
            kdfs = self._kdfs()
        except VaultTampered:
            return  # the check itself says so
        for kdf in kdfs:
            crypto.prepare_password_key(password, salt, kdf)

    def check_password(self, member_id: str, password: str) -> bool:
        """Whether ``password`` opens ``member_id``'s private key."""
        try:
            self._member_private_key(member_id, password)
        except WrongCredentials:
            return False
        return True

    def open_member(self, member_id: str, password: str) -> bytes:
        """The data key, opened with a member's password."""
        wrap, private = self._member_private_key(member_id, password)
        context = _data_key_context(self.key_id, "member\0" + member_id)
        try:
            return crypto.open_sealed_box(private, wrap.data_key, context)
        except Unauthentic:
            raise VaultTampered(
                detail="Der Datenschlüssel eines Mitglieds ist nicht authentisch"
            ) from None

    def open_recovery(self, recovery_key: RecoveryKey) -> bytes:
        """The data key, opened with the recovery key."""
        private = recovery_key.vault_private_key()
        if not hmac.compare_digest(crypto.public_key_bytes(private), self.recovery.public_key):
            raise WrongRecoveryKey()
        context = _data_key_context(self.key_id, "recovery")
        try:
            return crypto.open_sealed_box(private, self.recovery.data_key, context)
        except Unauthentic:
            raise VaultTampered(
                detail="Der Datenschlüssel des Wiederherstellungsschlüssels ist nicht authentisch"
            ) from None

    # --- changing (on a named ring) -------------------------------------------------------------

    def _with_names(self, names: Mapping[str, bytes], wraps: list[MemberWrap]) -> KeyRing:
        ordered = tuple(sorted(wraps, key=lambda wrap: wrap.public_key))  # no order of joining
        return replace(self, wraps=ordered, names=dict(names), sealed_index=b"")

    def with_member(
        self, member_id: str, password: str, data_key: bytes, kdf: KdfParams
    ) -> KeyRing:
        """This ring plus (or with a new key pair for) ``member_id``."""
        names = dict(self._names())
        old = names.get(member_id)
        wrap = _wrap_member(member_id, password, self.salt, data_key, self.key_id, kdf)
        names[member_id] = wrap.public_key
        wraps = [w for w in self.wraps if w.public_key != old]
        return self._with_names(names, [*wraps, wrap])

    def without_member(self, member_id: str) -> KeyRing:
        """This ring without ``member_id``'s wrap (re-key it before it is stored!)."""
        names = dict(self._names())
        gone = names.pop(member_id)
        return self._with_names(names, [w for w in self.wraps if w.public_key != gone])

    def with_recovery_key(self, recovery_key: RecoveryKey, data_key: bytes) -> KeyRing:
        """This ring with a new recovery key in place of the old (re-key it before storing!)."""
        return replace(self, recovery=RecoveryWrap.create(recovery_key, data_key, self.key_id))

    def rekeyed(self, data_key: bytes) -> KeyRing:
        """A new key id with ``data_key`` sealed to every member's and the recovery public key.

        No password is needed: sealing needs only the public keys.
        """
        key_id = os.urandom(KEY_ID_BYTES)
        owner = {public: name for name, public in self._names().items()}
        wraps = [
            replace(wrap, data_key=crypto.seal_to_public_key(
                wrap.public_key, data_key,
                _data_key_context(key_id, "member\0" + owner[wrap.public_key])))
            for wrap in self.wraps
        ]
        recovery = RecoveryWrap(
            public_key=self.recovery.public_key,
            data_key=crypto.seal_to_public_key(
                self.recovery.public_key, data_key, _data_key_context(key_id, "recovery")
            ),
        )
        return replace(self._with_names(self._names(), wraps), key_id=key_id, recovery=recovery)

    # --- JSON ----------------------------------------------------------------------------------

    def to_dict(self, data_key: bytes) -> dict[str, Any]:
        """The key part of the snapshot header (the index sealed under ``data_key``)."""
        return {
            "key_id": self.key_id.hex(),
            "salt": _b64(self.salt),
            "members": [wrap.to_dict() for wrap in self.wraps],
            "index": _b64(_seal_index(self._names(), data_key, self.key_id)),
            "recovery": self.recovery.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KeyRing:
        """Parse the key part of a snapshot header; raises ``ValueError`` on anything else."""
        key_id = bytes.fromhex(data["key_id"])
        if len(key_id) != KEY_ID_BYTES:
            raise ValueError("bad key id")
        wraps = data["members"]
        if not isinstance(wraps, list) or not wraps:
            raise ValueError("no members")
        return cls(
            key_id=key_id,
            salt=_unb64(data["salt"], crypto.SALT_BYTES),
            wraps=tuple(MemberWrap.from_dict(wrap) for wrap in wraps),
            recovery=RecoveryWrap.from_dict(data["recovery"]),
            sealed_index=_unb64(data["index"]),
        )
