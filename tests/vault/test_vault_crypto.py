"""R9: the cryptographic building blocks of the vault."""

from __future__ import annotations

import os
import threading

import pytest

from appliance.vault import KdfParams, Vault, crypto
from appliance.vault.crypto import Unauthentic

from .conftest import PASSWORD


def test_aead_round_trip_and_fresh_nonces() -> None:
    """R9: AES-256-GCM opens what it sealed, with a new random 96-bit nonce every time."""
    key = crypto.random_key()
    first = crypto.seal(key, b"Termin 08:15", b"context")
    second = crypto.seal(key, b"Termin 08:15", b"context")
    assert first[: crypto.NONCE_BYTES] != second[: crypto.NONCE_BYTES]
    assert len(first) == crypto.NONCE_BYTES + len(b"Termin 08:15") + crypto.TAG_BYTES
    assert crypto.unseal(key, first, b"context") == b"Termin 08:15"


@pytest.mark.parametrize("change", ["key", "aad", "nonce", "ciphertext", "tag", "short"])
def test_aead_rejects_any_change(change: str) -> None:
    """R9: a different key or AAD, or any flipped byte, fails authentication."""
    key = crypto.random_key()
    blob = bytearray(crypto.seal(key, b"Befund", b"aad"))
    aad = b"aad"
    if change == "key":
        key = crypto.random_key()
    elif change == "aad":
        aad = b"aae"
    elif change == "nonce":
        blob[0] ^= 1
    elif change == "ciphertext":
        blob[crypto.NONCE_BYTES] ^= 1
    elif change == "tag":
        blob[-1] ^= 0x80
    else:
        blob = blob[:20]
    with pytest.raises(Unauthentic):
        crypto.unseal(key, bytes(blob), aad)


def test_argon2id_is_deterministic_and_salted(kdf: KdfParams) -> None:
    """R9: Argon2id gives the same key for the same password and salt, another for another."""
    salt = os.urandom(crypto.SALT_BYTES)
    key = crypto.derive_password_key("geheim", salt, kdf)
    assert len(key) == 32
    assert crypto.derive_password_key("geheim", salt, kdf) == key
    assert crypto.derive_password_key("geheim", os.urandom(16), kdf) != key
    assert crypto.derive_password_key("Geheim", salt, kdf) != key
    assert crypto.derive_password_key("geheim", salt, KdfParams(2048, 1, 1)) != key


def test_password_keys_derived_in_many_threads_at_once() -> None:
    """R9: two staff logging in at the same moment (two password workers, four lanes as on the
    box) both get their keys; ``cryptography`` deadlocked on two derivations at once."""
    params = KdfParams(memory_kib=1024, iterations=1, lanes=4)
    salts = [os.urandom(crypto.SALT_BYTES) for _ in range(4)]
    keys: dict[int, bytes] = {}

    def derive(number: int) -> None:
        keys[number] = crypto.derive_password_key(f"passwort-{number}", salts[number], params)

    workers = [threading.Thread(target=derive, args=(n,), daemon=True) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert not any(worker.is_alive() for worker in workers), "a derivation hangs"
    assert len(set(keys.values())) == 4
    assert keys[2] == crypto.derive_password_key("passwort-2", salts[2], params)


def test_password_is_nfc_normalised(kdf: KdfParams) -> None:
    """R9: an umlaut typed precomposed or decomposed is the same password."""
    salt = os.urandom(crypto.SALT_BYTES)
    assert crypto.derive_password_key("M\u00fcller", salt, kdf) == crypto.derive_password_key(
        "Mu\u0308ller", salt, kdf
    )


def test_kdf_params_defaults_and_validation() -> None:
    """R9: the default is RFC 9106's second recommendation with twice its memory (measured in
    bench/kdf_bench.py); nonsense costs are refused."""
    assert KdfParams() == KdfParams(memory_kib=131072, iterations=3, lanes=4)
    assert KdfParams.from_dict(KdfParams().to_dict()) == KdfParams()
    for bad in ({"memory_kib": 0}, {"iterations": 0}, {"lanes": 0}, {"memory_kib": 16, "lanes": 4}):
        with pytest.raises(ValueError):
            KdfParams(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        KdfParams.from_dict({"memory_kib": 1024})
    assert not KdfParams(memory_kib=1 << 22).plausible


def test_hkdf_separates_purposes() -> None:
    """R9: HKDF-SHA256 output depends on the info string."""
    ikm = os.urandom(32)
    assert crypto.hkdf(ikm, b"a") == crypto.hkdf(ikm, b"a")
    assert crypto.hkdf(ikm, b"a") != crypto.hkdf(ikm, b"b")


def test_sealed_box_round_trip() -> None:
    """R9: a key sealed to an X25519 public key opens only with its private key and context."""
    recipient = crypto.generate_private_key()
    public = crypto.public_key_bytes(recipient)
    data_key = crypto.random_key()
    box = crypto.seal_to_public_key(public, data_key, b"ctx")
    assert len(box) == crypto.SEALED_KEY_BYTES
    assert crypto.seal_to_public_key(public, data_key, b"ctx") != box  # ephemeral key each time
    assert crypto.open_sealed_box(recipient, box, b"ctx") == data_key
    with pytest.raises(Unauthentic):
        crypto.open_sealed_box(crypto.generate_private_key(), box, b"ctx")
    with pytest.raises(Unauthentic):
        crypto.open_sealed_box(recipient, box, b"other")
    for position in (0, 40, len(box) - 1):
        broken = bytearray(box)
        broken[position] ^= 1
        with pytest.raises(Unauthentic):
            crypto.open_sealed_box(recipient, bytes(broken), b"ctx")


def test_sealed_box_refuses_a_zero_ephemeral_key() -> None:
    """R9: a forged all-zero ephemeral key is an authentication failure, not a crash."""
    recipient = crypto.generate_private_key()
    with pytest.raises(Unauthentic):
        crypto.open_sealed_box(recipient, bytes(crypto.SEALED_KEY_BYTES), b"ctx")


def test_prepared_password_work_is_used_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server derives the password key in a worker thread first (Argon2id releases the GIL);
    the check that follows on the event loop then costs no Argon2id run. Each preparation
    serves one check of exactly that password and salt."""
    runs: list[bytes] = []
    real = crypto._argon2id

    def counted(secret: bytes, salt: bytes, params: KdfParams) -> bytes:
        runs.append(salt)
        return real(secret, salt, params)

    monkeypatch.setattr(crypto, "_argon2id", counted)
    params = KdfParams(memory_kib=1024, iterations=1, lanes=1)
    salt = b"\x01" * crypto.SALT_BYTES
    crypto.prepare_password_key("Passwort 1", salt, params)
    assert len(runs) == 1
    key = crypto.derive_password_key("Passwort 1", salt, params)
    assert len(runs) == 1  # served from the preparation
    assert crypto.derive_password_key("Passwort 1", salt, params) == key
    assert len(runs) == 2  # used once: the next check derives again
    crypto.prepare_password_key("Passwort 1", salt, params)
    other = crypto.derive_password_key("Passwort 2", salt, params)
    assert other != key and len(runs) == 4  # another password never gets the prepared key
    assert crypto.derive_password_key("Passwort 1", b"\x02" * crypto.SALT_BYTES, params) != key


def test_vault_prepares_known_and_unknown_members_alike(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The vault prepares the check of a member's password and of an unknown name the same way
    (the answer must not reveal who exists), and the check then runs no Argon2id itself."""
    runs: list[bytes] = []
    real = crypto._argon2id
    monkeypatch.setattr(crypto, "_argon2id", lambda secret, salt, params: (
        runs.append(salt) or real(secret, salt, params)))
    for member in ("anna", "niemand"):
        vault.prepare_password(member, PASSWORD)
    assert len(runs) == 2
    assert vault.check_password("anna", PASSWORD) is True
    assert vault.check_password("niemand", PASSWORD) is False
    assert len(runs) == 2
