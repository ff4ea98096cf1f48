"""One compiled scanner per test session: compiling the Hyperscan database takes about a second."""

from __future__ import annotations

import random

import pytest

from passerelle.dlp import DlpSettings, Scanner, TermSet

TERM_SETS = (
    TermSet("acme", "restricted", ("Acme Industries", "Projet Orion", "Société Générale des Eaux")),
    TermSet("helios", "internal", ("Helios",)),
)


@pytest.fixture(scope="session")
def scanner() -> Scanner:
    return Scanner(DlpSettings(term_sets=TERM_SETS))


@pytest.fixture(scope="session")
def names_scanner() -> Scanner:
    return Scanner(DlpSettings(person_names=True))


@pytest.fixture
def rng() -> random.Random:
    return random.Random(1234)


def rules_found(scanner: Scanner, text: str) -> list[tuple[str, str]]:
    """(rule, matched text) of each finding, for assertions."""
    return [(f.rule, f.extract(text)) for f in scanner.scan(text).findings]
