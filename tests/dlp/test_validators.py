"""The checksums, against values with a known answer."""

from __future__ import annotations

import pytest

from passerelle.dlp.allowlist import has_sequence, is_hex_hash, is_placeholder, is_uuid
from passerelle.dlp.validators import (
    card_issuer_ok,
    e164_country_ok,
    fr_rib_key_ok,
    iban_ok,
    luhn_ok,
    nir_ok,
    shannon_entropy,
    siren_ok,
    siret_ok,
)


@pytest.mark.parametrize(
    ("digits", "ok"),
    [
        ("79927398713", True),  # the classic worked example
        ("4111111111111111", True),
        ("378282246310005", True),
        ("79927398710", False),
        ("4111111111111112", False),
        ("1", False),
        ("12a4", False),
    ],
)
def test_luhn(digits: str, ok: bool) -> None:
    assert luhn_ok(digits) is ok


@pytest.mark.parametrize(
    ("iban", "ok"),
    [
        ("FR7630006000011234567890189", True),  # the French example IBAN (RIB key 89)
        ("DE89370400440532013000", True),
        ("GB82WEST12345698765432", True),
        ("BE68539007547034", True),
        ("FR7630006000011234567890188", False),  # one digit changed
        ("DE89370400440532013001", False),
        ("GB82WEST1234569876543", False),  # wrong length for GB
        ("XX89370400440532013000", False),  # unknown country
    ],
)
def test_iban(iban: str, ok: bool) -> None:
    assert iban_ok(iban) is ok


def test_french_iban_needs_a_valid_rib_key() -> None:
    # Valid RIB key, then the same account with the RIB key broken and the IBAN check digits
    # recomputed so that MOD 97 alone would pass.
    assert fr_rib_key_ok("30006", "00001", "12345678901", "89")
    assert not fr_rib_key_ok("30006", "00001", "12345678901", "88")
    bban = "3000600001123456789018" + "8"
    numeric = "".join(str(int(c, 36)) for c in bban + "FR00")
    forged = f"FR{98 - int(numeric) % 97:02d}{bban}"
    assert not iban_ok(forged)


def test_rib_key_maps_account_letters() -> None:
    # Letters in the account number count as digits: A/J -> 1, B/K/S -> 2...
    bank, branch = "20041", "01005"
    for key in range(100):
        if fr_rib_key_ok(bank, branch, "0500013M026", f"{key:02d}"):
            break
    else:
        pytest.fail("no RIB key accepted")
    assert fr_rib_key_ok(bank, branch, "0500013M026", f"{key:02d}")
    assert fr_rib_key_ok(bank, branch, "05000134026", f"{key:02d}")  # M counts as 4


@pytest.mark.parametrize(
    ("nir", "ok"),
    [
        ("185057800608491", True),  # body 1850578006084, key 97 - (n mod 97)
        ("185057800608492", False),
        ("2690299341732", False),  # too short (no key)
        ("385057800608491", False),  # sex 3 is valid, but then the key differs
        ("186135800608400", False),  # month 13
        ("100002A00100100", False),  # month 00
    ],
)
def test_nir(nir: str, ok: bool) -> None:
    assert nir_ok(nir) is ok


def test_nir_corsica_departments() -> None:
    body_2a = "1850"  # sex 1, year 85, month 0.. completed below
    for department, substitute in (("2A", "19"), ("2B", "18")):
        body = "185" + "05" + department + "123" + "456"
        numeric = body[:5] + substitute + body[7:]
        key = f"{97 - int(numeric) % 97:02d}"
        assert nir_ok(body + key), department
        assert not nir_ok(body + f"{(int(key) % 97) + 1:02d}"), department
    assert body_2a


def test_siren_and_siret() -> None:
    assert siren_ok("732829320")
    assert not siren_ok("732829321")
    assert siret_ok("73282932000074")
    assert not siret_ok("73282932000075")
    assert siret_ok("35600000000001")  # La Poste: digits add up to a multiple of 5
    assert not siret_ok("35600000000002")


@pytest.mark.parametrize(
    ("digits", "ok"),
    [
        ("4111111111111111", True),
        ("5555555555554444", True),
        ("2223003122003222", True),
        ("378282246310005", True),
        ("6011111111111117", True),
        ("3566002020360505", True),
        ("411111111111111", False),  # Visa, 15 digits
        ("1234567812345670", False),  # no network issues numbers starting with 1
        ("9111111111111111", False),
    ],
)
def test_card_issuers(digits: str, ok: bool) -> None:
    assert card_issuer_ok(digits) is ok


def test_e164() -> None:
    assert e164_country_ok("33612345678")
    assert e164_country_ok("14155550123")
    assert e164_country_ok("351912345678")
    assert not e164_country_ok("2812345678")  # 28x is not assigned
    assert not e164_country_ok("1234567")  # too short
    assert not e164_country_ok("1234567890123456")  # too long


def test_entropy() -> None:
    assert shannon_entropy("") == 0
    assert shannon_entropy("aaaa") == 0
    assert shannon_entropy("abcd") == pytest.approx(2.0)


def test_look_alikes() -> None:
    assert is_uuid("123e4567-e89b-12d3-a456-426614174000")
    assert not is_uuid("123e4567-e89b-12d3-a456-42661417400")
    assert is_hex_hash("d41d8cd98f00b204e9800998ecf8427e")
    assert is_hex_hash("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert not is_hex_hash("d41d8cd98f00b204e9800998ecf8427")
    assert has_sequence("key-123456-x") and has_sequence("abcdefgh")
    assert not has_sequence("a1b2c3d4e5")


@pytest.mark.parametrize(
    "value",
    [
        "<YOUR_API_KEY>",
        "${OPENAI_API_KEY}",
        "{{ secrets.TOKEN }}",
        "your-api-key-here",
        "xxxxxxxxxxxxxxxx",
        "password",
        "password123",
        "changeme",
        "%(password)s",
        "$DB_PASSWORD",
        "********",
        "REDACTED",
        "aaaaaaaaaaaaaaaaaaaaaaaa",
    ],
)
def test_placeholders(value: str) -> None:
    assert is_placeholder(value)


@pytest.mark.parametrize("value", ["hunter2!", "Xk7#pL9q", "d8Fj3kLq0Zp9Wm2R"])
def test_not_placeholders(value: str) -> None:
    assert not is_placeholder(value)
