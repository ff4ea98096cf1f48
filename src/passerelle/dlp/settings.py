"""What a :class:`~passerelle.dlp.scanner.Scanner` is built from.

The settings are plain frozen values so that the gateway can build one scanner per configuration
(compiling is expensive) and reuse it for every request. They deliberately do not depend on the
configuration schema: the caller maps its configuration onto them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class TermSet:
    """One client's sensitive terms (its names, project code names), and the class they imply.

    Terms match case-insensitively, on word boundaries, with accents tolerated both ways:
    ``Societe Generale`` matches ``Société Générale`` and the reverse.
    """

    client: str
    data_class: str
    terms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DlpSettings:
    """Which detectors run and which data classes their findings imply."""

    term_sets: tuple[TermSet, ...] = ()
    person_names: bool = False
    """The person-name tier: first-name lists plus capitalisation. Off by default because it is
    a heuristic with far lower precision than the other detectors (see ``rules/names.py``)."""
    secret_class: str = "restricted"  # noqa: S105 (a data class name)
    personal_class: str = "confidential"
    disabled_rules: frozenset[str] = field(default_factory=frozenset)
    """Rule ids to leave out of the compiled database, e.g. ``{"ipv4", "ipv6"}``."""
    allowed_values: frozenset[str] = field(default_factory=frozenset)
    """Exact values that are never reported (a published test card number, a shared support
    address). A candidate equal to one of them is dropped before overlaps are resolved, so it
    raises no data class either."""
