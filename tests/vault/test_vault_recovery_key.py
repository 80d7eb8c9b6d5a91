"""The recovery key: its printed form, typo tolerance and checksum."""

from __future__ import annotations

import os
import re

import pytest

from appliance.errors import MalformedRecoveryKey
from appliance.vault import RecoveryKey

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


@pytest.fixture
def key() -> RecoveryKey:
    """A fixed recovery key."""
    return RecoveryKey(bytes(range(32)))


def test_printed_form(key: RecoveryKey) -> None:
    """Groups of four unambiguous symbols and a final group of two check symbols."""
    text = str(key)
    assert re.fullmatch(r"([0-9A-Z]{4}-){13}[0-9A-Z]{2}", text), text
    assert set(text.replace("-", "")) <= set(_ALPHABET)
    assert "RecoveryKey(<hidden>)" == repr(key)
    assert text not in repr(key)


def test_round_trip_of_random_keys() -> None:
    """Every key reads back from its printed form."""
    for _ in range(200):
        key = RecoveryKey.generate()
        assert RecoveryKey.parse(str(key)) == key


@pytest.mark.parametrize(
    "mangle",
    [
        str.lower,
        lambda text: text.replace("-", ""),
        lambda text: text.replace("-", " "),
        lambda text: "  " + text.replace("-", " - ") + "\n",
        lambda text: text.replace("-", "--"),
        lambda text: text[:7] + "-" + text[7:],
        lambda text: text.replace("-", "\u2013"),  # an en dash from a copied PDF
        lambda text: text.replace("0", "O").replace("1", "I"),
        lambda text: text.replace("1", "l").lower(),
    ],
    ids=["lower", "no-dashes", "spaces", "padding", "double-dashes", "extra-dash", "en-dash",
         "O-and-I", "l"],
)
def test_parse_forgives_typical_slips(mangle: object) -> None:
    """Case, spaces, missing or extra dashes and O/0, I/L/1 mix-ups do not matter."""
    key = RecoveryKey(bytes.fromhex("01" * 8 + "10" * 8 + "ff" * 8 + "00" * 8))
    text = str(key)
    assert "0" in text and "1" in text
    assert RecoveryKey.parse(mangle(text)) == key  # type: ignore[operator]


def test_every_single_substitution_is_caught(key: RecoveryKey) -> None:
    """The checksum catches every wrong symbol, at every position."""
    symbols = str(key).replace("-", "")
    for position, original in enumerate(symbols):
        for replacement in _ALPHABET:
            if replacement == original:
                continue
            typo = symbols[:position] + replacement + symbols[position + 1 :]
            with pytest.raises(MalformedRecoveryKey):
                RecoveryKey.parse(typo)


def test_every_neighbour_swap_is_caught() -> None:
    """The checksum catches every swap of two different neighbouring symbols."""
    for _ in range(20):
        symbols = str(RecoveryKey.generate()).replace("-", "")
        for position in range(len(symbols) - 1):
            a, b = symbols[position], symbols[position + 1]
            if a == b:
                continue
            typo = symbols[:position] + b + a + symbols[position + 2 :]
            with pytest.raises(MalformedRecoveryKey):
                RecoveryKey.parse(typo)


@pytest.mark.parametrize(
    "text",
    ["", "ABCD", "not a key", None, 42],
    ids=["empty", "short", "words", "none", "int"],
)
def test_garbage_is_malformed(text: object) -> None:
    """Wrong length or type is a MalformedRecoveryKey."""
    with pytest.raises(MalformedRecoveryKey):
        RecoveryKey.parse(text)  # type: ignore[arg-type]


def test_length_and_characters_are_checked(key: RecoveryKey) -> None:
    """A missing or extra symbol, a U or a punctuation mark is a MalformedRecoveryKey."""
    text = str(key)
    for bad in (text[:-1], text + "0", text[:-3] + "U" + text[-2:], text.replace("-", "!", 1),
                "U" + text[1:]):
        with pytest.raises(MalformedRecoveryKey):
            RecoveryKey.parse(bad)


def test_padding_bits_must_be_zero(key: RecoveryKey) -> None:
    """The four unused bits at the end must be zero (with a checksum that fits)."""
    symbols = [_ALPHABET.index(char) for char in str(key).replace("-", "")][:52]
    symbols[-1] |= 1
    check = sum((index + 1) * value for index, value in enumerate(symbols)) % 1021
    text = "".join(_ALPHABET[value] for value in symbols) + _ALPHABET[check // 32]
    text += _ALPHABET[check % 32]
    with pytest.raises(MalformedRecoveryKey):
        RecoveryKey.parse(text)


def test_derive_is_deterministic_and_separated(key: RecoveryKey) -> None:
    """derive(purpose) gives a stable 256-bit key per purpose, unrelated to other keys."""
    backup = key.derive(b"backup")
    assert len(backup) == 32
    assert key.derive(b"backup") == backup
    assert key.derive(b"other") != backup
    assert RecoveryKey(os.urandom(32)).derive(b"backup") != backup
    with pytest.raises(ValueError):
        key.derive(b"")


def test_constructor_wants_32_bytes() -> None:
    """A RecoveryKey is exactly 256 bits."""
    with pytest.raises(ValueError):
        RecoveryKey(b"short")
