"""Client terms: case-insensitive, on word boundaries, accents tolerated both ways."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from passerelle.dlp import Category, DlpSettings, ScanError, Scanner, TermSet
from passerelle.dlp.rules.terms import fold, letter_variants
from tests.dlp.conftest import TERM_SETS, rules_found


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


@pytest.mark.parametrize(
    "written",
    [
        "Soci\u0113t\u0113 G\u00e9n\u00e9rale des Eaux",  # a macron: a variant outside Latin-1
        "Projet\u2003Orion",  # an em space between the words
        "Projet\u3000Orion",
        "Projet\x1cOrion",  # Python's \s holds \x1c-\x1f, Hyperscan's does not
        "Projet\u00a0\u2009Orion",
    ],
)
def test_rare_forms_open_the_second_database(scanner: Scanner, written: str) -> None:
    text = f"Note: {written} est en retard."
    assert rules_found(scanner, text) == [("client_term", written)]


def test_a_term_with_letters_outside_latin1() -> None:
    scanner = Scanner(
        DlpSettings(term_sets=(TermSet("cz", "confidential", ("Škoda Łódź", "Skoda Auto")),))
    )
    assert rules_found(scanner, "chez ŠKODA ŁÓDŹ et škoda łódź") == [
        ("client_term", "ŠKODA ŁÓDŹ"),
        ("client_term", "škoda łódź"),
    ]
    # Written without accents in the configuration, typed with them (rare forms).
    assert rules_found(scanner, "la réunion avec Škoda Auto, puis Śkoda Auto") == [
        ("client_term", "Škoda Auto"),
        ("client_term", "Śkoda Auto"),
    ]


_VARIANTS = letter_variants()
_SPACES = (" ", "-", "\u00a0", "\u2003", "\u3000", "\x1c", "\u202f")


@st.composite
def _typed_term(draw: st.DrawFn) -> str:
    """A term of the acme set as someone might type it: any variant of each letter, sometimes
    decomposed, any kind of space between the words."""
    term = draw(st.sampled_from(TERM_SETS[0].terms))
    out = []
    for char in fold(term):
        if char == " ":
            out.append(draw(st.sampled_from(_SPACES)))
        elif char in _VARIANTS:
            out.append(draw(st.sampled_from(_VARIANTS[char])))
            out.append(draw(st.sampled_from(("", "", "", "\u0301", "\u0308"))))
        else:
            out.append(char)
    return "".join(out)


_NOISE = st.lists(st.sampled_from(sorted(set(" .,:xé-") | {"œ", "\u0301"})), max_size=4)


@settings(max_examples=300, deadline=None)
@given(_NOISE.map("".join), _typed_term(), _NOISE.map("".join))
def test_the_triggers_never_miss_what_the_pattern_matches(
    scanner: Scanner, before: str, typed: str, after: str
) -> None:
    """Hyperscan is only a prefilter: whatever the Python pattern finds in the text, the scan
    must report, whichever database's trigger let it through."""
    text = before + typed + after
    rule = next(r for r in scanner.rules if r.id == "client_term" and r.client == "acme")
    expected = [m.span() for m in re.finditer(rule.pattern, text)]
    found = [(f.start, f.end) for f in scanner.scan(text).findings if f.client == "acme"]
    assert found == expected


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["Projet Orion", "Acme Industries", "projet-orion"]),
    st.lists(st.sampled_from(sorted(set("oOéèöÖōŌœŒ\u0301 "))), max_size=6).map("".join),
)
def test_terms_among_french_text(scanner: Scanner, term: str, noise: str) -> None:
    text = f"{noise}Le {term} cœur {noise}"
    assert [f.extract(text) for f in scanner.scan(text).findings if f.client == "acme"] == [term]


def test_the_gate_knows_every_space_python_does() -> None:
    """Python's ``\\s`` between words is what the pattern accepts; every such character outside
    ASCII and the no-break space must open the second database."""
    from passerelle.dlp.rules.terms import _RARE_SPACES

    spaces = {chr(c) for c in range(0x80, 0x110000) if re.match(r"\s", chr(c))}
    assert spaces - {"\u00a0"} == set(_RARE_SPACES)
