"""Personal data detectors: formats, checksums, context words, and what they leave alone."""

from __future__ import annotations

import random

import pytest

from passerelle.dlp import Category, Scanner
from tests.dlp._samples import card, fr_iban, luhn_digit, nir, rib_key, siren
from tests.dlp.conftest import rules_found


@pytest.mark.parametrize(
    "value",
    ["jean.dupont@acme-corp.fr", "m.durand+devis@solvel.co.uk", "ops_team42@mail.example-corp.io"],
)
def test_emails(scanner: Scanner, value: str) -> None:
    text = f"Écrivez à {value}, merci."
    assert rules_found(scanner, text) == [("email", value)]
    (finding,) = scanner.scan(text).findings
    assert finding.category is Category.PERSONAL
    assert finding.data_class == "confidential"


@pytest.mark.parametrize(
    "text",
    [
        "jane.doe@example.com and admin@sub.example.org",
        "icon@2x.png and logo@3x.webp",
        "git@github.com:acme/repo.git",
        "npm install @babel/core and @app.route('/')",
        "user@localhost",
        "sa@acme-prod.iam.gserviceaccount.com",
        "foo@bar.com",
        "sk-ssh-ed25519@openssh.com",
    ],
)
def test_email_look_alikes(scanner: Scanner, text: str) -> None:
    assert rules_found(scanner, text) == []


@pytest.mark.parametrize(
    "value",
    ["06 43 21 87 90", "06.43.21.87.90", "0643218790", "01-45-67-23-89", "+33 6 43 21 87 90",
     "+33 (0)6 43 21 87 90", "0033 6 43 21 87 90", "06\u00a043\u00a021\u00a087\u00a090"],
)  # fmt: skip
def test_french_phones(scanner: Scanner, value: str) -> None:
    assert rules_found(scanner, f"Tél. {value} (portable)") == [("phone_fr", value)]


@pytest.mark.parametrize(
    "value", ["+44 20 7946 0958", "+1 (415) 867-5309", "+49 30 9017324", "+351912748301"]
)
def test_international_phones(scanner: Scanner, value: str) -> None:
    assert rules_found(scanner, f"call {value} today") == [("phone_intl", value)]


@pytest.mark.parametrize(
    "text",
    [
        "06 12 34 56 78 is the usual example",  # runs of digits in order are placeholders
        "00 00 00 00 00",
        "tel:+14155550123 (a 555-01xx number, reserved for fiction)",
        "x = a+123456789",
        "+3 points for Gryffindor",
        "order 0612 3456 78",  # grouping that is not a phone number's
        "timestamp 1714564800123",
    ],
)
def test_phone_look_alikes(scanner: Scanner, text: str) -> None:
    assert rules_found(scanner, text) == []


def test_iban_spaced_compact_and_followed_by_words(scanner: Scanner) -> None:
    compact = fr_iban(random.Random(3))
    spaced = " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
    assert rules_found(scanner, f"IBAN {compact}.") == [("iban", compact)]
    assert rules_found(scanner, f"IBAN : {spaced} BIC AGRIFRPP") == [("iban", spaced)]
    assert rules_found(scanner, "DE89 3704 0044 0532 0130 00") == [
        ("iban", "DE89 3704 0044 0532 0130 00")
    ]
    broken = compact[:-1] + str((int(compact[-1]) + 1) % 10)
    assert rules_found(scanner, f"IBAN {broken}") == []


def test_rib_needs_its_key_and_a_banking_word(scanner: Scanner) -> None:
    bank, branch, account = "30004", "00550", "00012345678"
    key = rib_key(bank, branch, account)
    rib = f"{bank} {branch} {account} {key}"
    assert rules_found(scanner, f"RIB : {rib}") == [("fr_rib", rib)]
    wrong = f"{bank} {branch} {account} {(int(key) % 97) + 1:02d}"
    assert rules_found(scanner, f"RIB : {wrong}") == []
    assert rules_found(scanner, f"lot {rib}") == []


def test_cards(scanner: Scanner, rng: random.Random) -> None:
    visa = card(rng)
    grouped = " ".join(visa[i : i + 4] for i in range(0, 16, 4))
    assert rules_found(scanner, f"carte {grouped} exp 09/27") == [("credit_card", grouped)]
    assert rules_found(scanner, f"card={visa}") == [("credit_card", visa)]
    amex = card(rng, "37", 15)
    amex_grouped = f"{amex[:4]} {amex[4:10]} {amex[10:]}"
    assert rules_found(scanner, f"Amex {amex_grouped}") == [("credit_card", amex_grouped)]


def test_card_look_alikes(scanner: Scanner, rng: random.Random) -> None:
    visa = card(rng)
    not_luhn = visa[:-1] + str((int(visa[-1]) + 1) % 10)
    no_issuer = "1" + visa[1:-1]
    no_issuer += luhn_digit(no_issuer)
    for text in (
        f"card {not_luhn}",
        f"id {no_issuer}",
        "test card 4111 1111 1111 1111",  # published test numbers
        "4242 4242 4242 4242",
        f"version {visa[:4]}.{visa[4:8]}.{visa[8:12]}.{visa[12:]}",
    ):
        assert rules_found(scanner, text) == [], text


def test_nir(scanner: Scanner, rng: random.Random) -> None:
    value = nir(rng)
    spaced = " ".join(
        [value[0], value[1:3], value[3:5], value[5:7], value[7:10], value[10:13], value[13:]]
    )
    assert rules_found(scanner, f"NIR {value}") == [("fr_nir", value)]
    assert rules_found(scanner, f"n° de sécu : {spaced}") == [("fr_nir", spaced)]
    corsica = nir(rng, "2A")
    assert rules_found(scanner, f"sécu {corsica}") == [("fr_nir", corsica)]
    wrong = value[:-2] + f"{(int(value[-2:]) % 97) + 1:02d}"
    assert rules_found(scanner, f"NIR {wrong}") == []


def test_siren_and_siret_need_context(scanner: Scanner, rng: random.Random) -> None:
    number = siren(rng)
    grouped = f"{number[:3]} {number[3:6]} {number[6:]}"
    assert rules_found(scanner, f"SIREN : {grouped}") == [("fr_siren", grouped)]
    assert rules_found(scanner, f"immatriculée au RCS de Lyon sous le numéro {number}") == [
        ("fr_siren", number)
    ]
    assert rules_found(scanner, f"commande {number}") == []
    siret = number + "0001"
    siret += luhn_digit(siret)
    assert rules_found(scanner, f"SIRET {siret}") == [("fr_siret", siret)]
    assert rules_found(scanner, f"ref {siret}") == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("client_ip=81.57.203.14 status=200", "81.57.203.14"),
        ("ssh admin@185.12.64.210", "185.12.64.210"),
        ("src=2a01:e0a:1f3:4b50::1 port=443", "2a01:e0a:1f3:4b50::1"),
        ("from 2001:41d0:8:e8b3:0:0:0:1", "2001:41d0:8:e8b3:0:0:0:1"),
    ],
)
def test_ip_addresses(scanner: Scanner, text: str, value: str) -> None:
    assert rules_found(scanner, text) == [(text and "ipv6" if ":" in value else "ipv4", value)]


@pytest.mark.parametrize(
    "text",
    [
        "127.0.0.1 and 0.0.0.0 and 255.255.255.255",
        "10.0.3.17, 192.168.1.20, 172.16.4.2, 100.64.0.1",  # private and shared: by design
        "netmask 255.255.255.0",
        "version 2.10.4.1 and v1.12.0.3, numpy==1.26.4.2",
        "Section 4.10.22.7 of the spec",
        "ObjectIdentifier('2.5.29.14') and 1.3.6.1.4.1.311",
        "192.0.2.10, 198.51.100.7, 203.0.113.9 and 2001:db8::1",  # documentation ranges
        "81.2.0.0/16 and 2a01:e0a::/32 are networks",
        "1.2.3.4",
        "::1, fe80::1, fd12:3456::1",
        "std::vector<int> v; a[1::2]; 12:30:45",
    ],
)
def test_ip_look_alikes(scanner: Scanner, text: str) -> None:
    assert rules_found(scanner, text) == []


def test_person_names_are_off_by_default(scanner: Scanner, names_scanner: Scanner) -> None:
    text = "Réunion avec Marie Dupont et M. Lefèvre demain."
    assert rules_found(scanner, text) == []
    assert rules_found(names_scanner, text) == [
        ("person_name", "Marie Dupont"),
        ("person_name", "Lefèvre"),
    ]
    assert rules_found(names_scanner, "Pierre Et Marie") == []
