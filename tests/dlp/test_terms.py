"""Client terms: case-insensitive, on word boundaries, accents tolerated both ways."""

from __future__ import annotations

import unicodedata

import pytest

from passerelle.dlp import Category, DlpSettings, ScanError, Scanner, TermSet
from tests.dlp.conftest import rules_found


@pytest.mark.parametrize(
    "written",
    [
        "Société Générale des Eaux",
        "societe generale des eaux",
        "SOCIÉTÉ GÉNÉRALE DES EAUX",
        "Société-Générale des Eaux",
        "Societe\u00a0Generale des Eaux",
        unicodedata.normalize("NFD", "Société Générale des Eaux"),
    ],
)
def test_term_variants(scanner: Scanner, written: str) -> None:
    text = f"Compte rendu : {written} demande un devis."
    result = scanner.scan(text)
    assert [(f.rule, f.extract(text)) for f in result.findings] == [("client_term", written)]
    finding = result.findings[0]
    assert finding.category is Category.CLIENT_TERM
    assert finding.client == "acme"
    assert finding.data_class == "restricted"


def test_accented_text_matches_plain_term(scanner: Scanner) -> None:
    # The term "Helios" is written without accents; the text has them.
    text = "Le projet Hélios avance."
    assert rules_found(scanner, text) == [("client_term", "Hélios")]
    assert scanner.scan(text).data_classes == {"internal"}


def test_word_boundaries(scanner: Scanner) -> None:
    assert rules_found(scanner, "le projet Orionis et Acme Industriesx, HeliosPlus") == []
    assert rules_found(scanner, "Projet Orion: kickoff") == [("client_term", "Projet Orion")]


def test_client_term_inside_an_email_still_raises_the_class(scanner: Scanner) -> None:
    text = "écrire à contact@helios.fr"
    result = scanner.scan(text)
    assert [f.rule for f in result.findings] == ["email"]
    assert result.data_classes == {"confidential", "internal"}


def test_term_sets_are_validated() -> None:
    with pytest.raises(ScanError, match="at least two characters"):
        Scanner(DlpSettings(term_sets=(TermSet("x", "internal", ("A",)),)))
    blank = Scanner(DlpSettings(term_sets=(TermSet("x", "internal", ("  ",)),)))
    assert blank.scan("x").findings == ()


def test_terms_with_punctuation() -> None:
    scanner = Scanner(
        DlpSettings(term_sets=(TermSet("lo", "confidential", ("L'Oréal", "C++ Corp")),))
    )
    assert rules_found(scanner, "chez L\u2019Oreal et C++ Corp.") == [
        ("client_term", "L\u2019Oreal"),
        ("client_term", "C++ Corp"),
    ]
