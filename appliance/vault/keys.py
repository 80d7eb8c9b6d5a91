"""The key hierarchy: the data key, its wraps for staff members and the recovery key."""

from __future__ import annotations

import base64
import hmac
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from appliance.errors import (
    MalformedRecoveryKey,
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
_DUMMY_SALT: Final = b"\0" * crypto.SALT_BYTES


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


@dataclass(frozen=True, slots=True)
class MemberWrap:
    """One member's key pair (private half under their password) and the data key sealed to it."""

    public_key: bytes
    private_key: bytes
    salt: bytes
    kdf: KdfParams
    data_key: bytes

    def to_dict(self) -> dict[str, Any]:
        """The JSON form in the snapshot header."""
        return {
            "public_key": _b64(self.public_key),
            "private_key": _b64(self.private_key),
            "salt": _b64(self.salt),
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
            salt=_unb64(data.get("salt"), crypto.SALT_BYTES),
            kdf=KdfParams.from_dict(data.get("kdf")),
            data_key=_unb64(data.get("data_key"), crypto.SEALED_KEY_BYTES),
        )


@dataclass(frozen=True, slots=True)
class RecoveryWrap:
    """The recovery key's public key and the data key sealed to it."""

    public_key: bytes
    data_key: bytes

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


def _wrap_member(
    member_id: str, password: str, data_key: bytes, key_id: bytes, kdf: KdfParams
) -> MemberWrap:
    private = crypto.generate_private_key()
    public = crypto.public_key_bytes(private)
    salt = os.urandom(crypto.SALT_BYTES)
    password_key = crypto.derive_password_key(password, salt, kdf)
    return MemberWrap(
        public_key=public,
        private_key=crypto.seal(
            password_key, crypto.private_key_bytes(private), _member_context(member_id, public)
        ),
        salt=salt,
        kdf=kdf,
        data_key=crypto.seal_to_public_key(
            public, data_key, _data_key_context(key_id, "member\0" + member_id)
        ),
    )


@dataclass(frozen=True)
class KeyRing:
    """Every wrap of the current data key; immutable, each change gives a new ring."""

    key_id: bytes
    members: Mapping[str, MemberWrap]
    recovery: RecoveryWrap

    @classmethod
    def create(
        cls, member_id: str, password: str, kdf: KdfParams
    ) -> tuple[KeyRing, bytes, RecoveryKey]:
        """A new hierarchy: a data key, its first member and a recovery key."""
        data_key = crypto.random_key()
        recovery_key = RecoveryKey.generate()
        key_id = os.urandom(KEY_ID_BYTES)
        recovery_public = crypto.public_key_bytes(recovery_key.vault_private_key())
        ring = cls(
            key_id=key_id,
            members={member_id: _wrap_member(member_id, password, data_key, key_id, kdf)},
            recovery=RecoveryWrap(
                public_key=recovery_public,
                data_key=crypto.seal_to_public_key(
                    recovery_public, data_key, _data_key_context(key_id, "recovery")
                ),
            ),
        )
        return ring, data_key, recovery_key

    # --- opening -------------------------------------------------------------------------------

    def _member_private_key(self, member_id: str, password: str) -> crypto.X25519PrivateKey:
        if not isinstance(password, str):
            raise WrongCredentials()
        wrap = self.members.get(member_id)
        if wrap is None:
            # Spend the same time as for a real member: the answer must not reveal who exists.
            crypto.derive_password_key(password, _DUMMY_SALT, self._typical_kdf())
            raise WrongCredentials()
        if not wrap.kdf.plausible:
            raise VaultTampered(detail="Die Schlüsselparameter eines Mitglieds sind unplausibel")
        password_key = crypto.derive_password_key(password, wrap.salt, wrap.kdf)
        try:
            raw = crypto.unseal(
                password_key, wrap.private_key, _member_context(member_id, wrap.public_key)
            )
        except Unauthentic:
            raise WrongCredentials() from None
        private = crypto.private_key_from_bytes(raw)
        if not hmac.compare_digest(crypto.public_key_bytes(private), wrap.public_key):
            raise VaultTampered(detail="Das Schlüsselpaar eines Mitglieds passt nicht zusammen")
        return private

    def prepare_password(self, member_id: str, password: str) -> None:
        """Do the Argon2id work of a coming check of ``member_id``'s password now (e.g. in a
        worker thread). An unknown member gets the same work as a known one."""
        if not isinstance(password, str):
            return
        wrap = self.members.get(member_id)
        if wrap is None:
            crypto.prepare_password_key(password, _DUMMY_SALT, self._typical_kdf())
        elif wrap.kdf.plausible:
            crypto.prepare_password_key(password, wrap.salt, wrap.kdf)

    def _typical_kdf(self) -> KdfParams:
        for wrap in self.members.values():
            if wrap.kdf.plausible:
                return wrap.kdf
        return KdfParams()

    def check_password(self, member_id: str, password: str) -> bool:
        """Whether ``password`` opens ``member_id``'s private key."""
        try:
            self._member_private_key(member_id, password)
        except WrongCredentials:
            return False
        return True

    def open_member(self, member_id: str, password: str) -> bytes:
        """The data key, opened with a member's password."""
        private = self._member_private_key(member_id, password)
        context = _data_key_context(self.key_id, "member\0" + member_id)
        try:
            return crypto.open_sealed_box(private, self.members[member_id].data_key, context)
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

    # --- changing ------------------------------------------------------------------------------

    def with_member(
        self, member_id: str, password: str, data_key: bytes, kdf: KdfParams
    ) -> KeyRing:
        """This ring plus (or with a new key pair for) ``member_id``."""
        members = dict(self.members)
        members[member_id] = _wrap_member(member_id, password, data_key, self.key_id, kdf)
        return KeyRing(self.key_id, members, self.recovery)

    def without_member(self, member_id: str) -> KeyRing:
        """This ring without ``member_id``'s wrap (re-key it before it is stored!)."""
        members = {name: wrap for name, wrap in self.members.items() if name != member_id}
        return KeyRing(self.key_id, members, self.recovery)

    def rekeyed(self, data_key: bytes) -> KeyRing:
        """A new key id with ``data_key`` sealed to every member's and the recovery public key.

        No password is needed: sealing needs only the public keys.
        """
        key_id = os.urandom(KEY_ID_BYTES)
        members = {
            name: MemberWrap(
                public_key=wrap.public_key,
                private_key=wrap.private_key,
                salt=wrap.salt,
                kdf=wrap.kdf,
                data_key=crypto.seal_to_public_key(
                    wrap.public_key, data_key, _data_key_context(key_id, "member\0" + name)
                ),
            )
            for name, wrap in self.members.items()
        }
        recovery = RecoveryWrap(
            public_key=self.recovery.public_key,
            data_key=crypto.seal_to_public_key(
                self.recovery.public_key, data_key, _data_key_context(key_id, "recovery")
            ),
        )
        return KeyRing(key_id, members, recovery)

    # --- JSON ----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The key part of the snapshot header."""
        return {
            "key_id": self.key_id.hex(),
            "members": {name: self.members[name].to_dict() for name in sorted(self.members)},
            "recovery": self.recovery.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KeyRing:
        """Parse the key part of a snapshot header; raises ``ValueError`` on anything else."""
        key_id = bytes.fromhex(data["key_id"])
        if len(key_id) != KEY_ID_BYTES:
            raise ValueError("bad key id")
        members = data["members"]
        if not isinstance(members, dict) or not members:
            raise ValueError("no members")
        return cls(
            key_id=key_id,
            members={str(name): MemberWrap.from_dict(wrap) for name, wrap in members.items()},
            recovery=RecoveryWrap.from_dict(data["recovery"]),
        )
