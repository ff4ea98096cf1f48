"""Checksums and structure checks that turn a pattern match into a confident detection.

Pure functions over strings. Each one implements a published algorithm:

- Luhn (ISO/IEC 7812-1) for payment cards, SIREN and SIRET;
- ISO 7064 MOD 97-10 for IBANs (ISO 13616), with the length each country registered;
- the French RIB key: ``97 - (89 * bank + 15 * branch + 3 * account) mod 97``, letters of the
  account number mapped to digits as the French banking standard does;
- the French NIR (social security number) key: ``97 - (number mod 97)`` over its 13 digits,
  Corsica's ``2A``/``2B`` departments counted as 19 and 18;
- Shannon entropy, in bits per character, for random-looking credentials.
"""

from __future__ import annotations

import math
from collections import Counter
from types import MappingProxyType

_IBAN_LENGTHS = MappingProxyType({
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
})  # fmt: skip

# Account-number letters in a French RIB: A/J -> 1, B/K/S -> 2, ... I/R/Z -> 9.
_RIB_LETTERS = MappingProxyType(
    str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "12345678912345678923456789")
)

# E.164 country codes: one- and two-digit codes listed; three-digit codes by their first two
# digits (the zones where ITU assigns three-digit codes).
_E164_SHORT = frozenset(
    [
        "1",
        "7",
        "20",
        "27",
        "30",
        "31",
        "32",
        "33",
        "34",
        "36",
        "39",
        "40",
        "41",
        "43",
        "44",
        "45",
        "46",
        "47",
        "48",
        "49",
        "51",
        "52",
        "53",
        "54",
        "55",
        "56",
        "57",
        "58",
        "60",
        "61",
        "62",
        "63",
        "64",
        "65",
        "66",
        "81",
        "82",
        "84",
        "86",
        "90",
        "91",
        "92",
        "93",
        "94",
        "95",
        "98",
    ]
)
_E164_LONG_ZONES = frozenset(
    [
        "21",
        "22",
        "23",
        "24",
        "25",
        "26",
        "29",
        "35",
        "37",
        "38",
        "42",
        "50",
        "59",
        "67",
        "68",
        "69",
        "80",
        "85",
        "87",
        "88",
        "96",
        "97",
        "99",
    ]
)


def luhn_ok(digits: str) -> bool:
    """The Luhn check over a string of ASCII digits (at least two)."""
    if len(digits) < 2 or not digits.isascii() or not digits.isdigit():
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    """A compact (no spaces), upper-case IBAN: registered length and MOD 97-10 remainder 1;
    French IBANs must also carry a valid RIB key."""
    country = iban[:2]
    if _IBAN_LENGTHS.get(country) != len(iban) or not iban.isascii() or not iban.isalnum():
        return False
    if not iban[2:4].isdigit():
        return False
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    if int(number) % 97 != 1:
        return False
    if country in ("FR", "MC"):
        bban = iban[4:]
        return fr_rib_key_ok(bban[:5], bban[5:10], bban[10:21], bban[21:23])
    return True


def iban_length(country: str) -> int | None:
    """The registered IBAN length for a two-letter country code, if any."""
    return _IBAN_LENGTHS.get(country)


def fr_rib_key_ok(bank: str, branch: str, account: str, key: str) -> bool:
    """The French RIB key over bank (5 digits), branch (5 digits), account (11 alphanumerics)."""
    if len(bank) != 5 or len(branch) != 5 or len(account) != 11 or len(key) != 2:
        return False
    if not (bank.isdigit() and branch.isdigit() and key.isdigit()):
        return False
    account_digits = account.upper().translate(_RIB_LETTERS)
    if not account_digits.isascii() or not account_digits.isdigit():
        return False
    remainder = (89 * int(bank) + 15 * int(branch) + 3 * int(account_digits)) % 97
    return 97 - remainder == int(key)


def nir_ok(nir: str) -> bool:
    """A compact French NIR: 13 characters plus a 2-digit key.

    Structure: sex (1, 2, or 3, 4, 7, 8 for provisional numbers), year, month (01-12, or the
    20-42 and 50-99 ranges INSEE uses when the month is unknown), department (01-99, 2A, 2B),
    commune, order number, key = 97 - (number mod 97).
    """
    if len(nir) != 15 or not nir.isascii():
        return False
    body, key = nir[:13].upper(), nir[13:]
    if not key.isdigit() or body[0] not in "123478":
        return False
    month = body[3:5]
    if not month.isdigit():
        return False
    month_value = int(month)
    if not (1 <= month_value <= 12 or 20 <= month_value <= 42 or 50 <= month_value <= 99):
        return False
    department = body[5:7]
    if department == "2A":
        number_text = body[:5] + "19" + body[7:]
    elif department == "2B":
        number_text = body[:5] + "18" + body[7:]
    else:
        number_text = body
    if not number_text.isdigit() or department == "00":
        return False
    if not body[7:].isdigit():
        return False
    expected = 97 - int(number_text) % 97
    return expected == int(key)


def siren_ok(siren: str) -> bool:
    """A 9-digit SIREN: Luhn."""
    return len(siren) == 9 and luhn_ok(siren)


def siret_ok(siret: str) -> bool:
    """A 14-digit SIRET: Luhn, except La Poste's establishments (SIREN 356000000), whose digits
    must add up to a multiple of 5."""
    if len(siret) != 14 or not siret.isdigit():
        return False
    if siret.startswith("356000000"):
        return sum(ord(char) - 48 for char in siret) % 5 == 0
    return luhn_ok(siret)


def card_issuer_ok(digits: str) -> bool:
    """Whether ``digits`` has the prefix and length of a card network that issues such numbers
    (Visa, Mastercard, American Express, Discover, Diners, JCB, UnionPay, Maestro, Mir)."""
    length = len(digits)
    if length < 12 or length > 19:
        return False
    two, four = int(digits[:2]), int(digits[:4])
    three, six = int(digits[:3]), int(digits[:6])
    if digits[0] == "4":
        return length in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return length == 16
    if two in (34, 37):
        return length == 15
    if four == 6011 or 644 <= three <= 649 or two == 65 or 622126 <= six <= 622925:
        return 16 <= length <= 19
    if 300 <= three <= 305 or two in (36, 38, 39):
        return 14 <= length <= 19
    if 3528 <= four <= 3589:
        return 16 <= length <= 19
    if two == 62:
        return 16 <= length <= 19
    if 2200 <= four <= 2204:
        return 16 <= length <= 19
    if two == 50 or 56 <= two <= 58 or digits[0] == "6":
        return 12 <= length <= 19
    return False


def e164_country_ok(digits: str) -> bool:
    """Whether an international number (digits after ``+``) starts with a country code that
    ITU assigns, and has the 8 to 15 digits E.164 allows."""
    if not 8 <= len(digits) <= 15 or not digits.isdigit():
        return False
    return digits[:1] in _E164_SHORT or digits[:2] in _E164_SHORT or digits[:2] in _E164_LONG_ZONES


def shannon_entropy(value: str) -> float:
    """Bits per character of ``value``'s own character distribution."""
    if not value:
        return 0.0
    length = len(value)
    # H = log2(n) - sum(c * log2(c)) / n; characters seen once add nothing to the sum.
    spread = sum(count * math.log2(count) for count in Counter(value).values() if count > 1)
    return math.log2(length) - spread / length


def char_classes(value: str) -> int:
    """How many of lower case, upper case, digits and other characters ``value`` uses."""
    return (
        any(c.islower() for c in value)
        + any(c.isupper() for c in value)
        + any(c.isdigit() for c in value)
        + any(not c.isalnum() for c in value)
    )
