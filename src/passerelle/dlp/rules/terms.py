"""Each client's own sensitive terms (client names, project code names), compiled into the scan.

A term matches case-insensitively, on word boundaries, with accents tolerated both ways:
``Societe Generale`` finds ``Société Générale`` and ``SOCIÉTÉ GÉNÉRALE``, and a term written with
accents finds the same words typed without. Spaces and hyphens between words are
interchangeable, as are straight and typographic apostrophes. Text in decomposed form (a letter
followed by a combining accent, as macOS file names have) matches too.

Hyperscan gets each letter as an alternation of the UTF-8 bytes of all its variants, so no
UTF-8 mode is needed (its behaviour on invalid UTF-8 input is undefined); Python confirms the
word boundaries.
"""

from __future__ import annotations

import unicodedata

from passerelle.dlp.findings import Category, ScanError
from passerelle.dlp.rules import CLIENT_TERM, Rule, Trigger, hs_literal
from passerelle.dlp.settings import TermSet

# Combining diacritical marks, as UTF-8 bytes (U+0300-U+036F) and as a Python class.
_HS_MARKS = r"(?:\xcc[\x80-\xbf]|\xcd[\x80-\xaf])*"
_PY_MARKS = "[\u0300-\u036f]*"
_HS_SEPARATOR = r"(?:[\s\-]|\xc2\xa0)+"
_PY_SEPARATOR = r"[\s\-]+"
_APOSTROPHES = "'\u2019"


def fold(text: str) -> str:
    """Lower case, accents removed: the form terms are compared in."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def letter_variants() -> dict[str, tuple[str, ...]]:
    """Every Latin character up to U+024F, grouped by its folded form: ``e`` -> ``eEèéêë...``."""
    variants: dict[str, list[str]] = {}
    for code in range(0x20, 0x250):
        char = chr(code)
        if not char.isalpha():
            continue
        folded = fold(char)
        if len(folded) == 1:
            variants.setdefault(folded, []).append(char)
    return {key: tuple(chars) for key, chars in variants.items()}


def _term_expressions(term: str, variants: dict[str, tuple[str, ...]]) -> tuple[str, str] | None:
    """The Hyperscan and Python expressions of one term, or None if it is blank."""
    words = fold(term).split()
    if not words:
        return None
    hs_parts: list[str] = []
    py_parts: list[str] = []
    for index, word in enumerate(words):
        if index:
            hs_parts.append(_HS_SEPARATOR)
            py_parts.append(_PY_SEPARATOR)
        for char in word:
            if char == "-":
                hs_parts.append(_HS_SEPARATOR)
                py_parts.append(_PY_SEPARATOR)
            elif char in _APOSTROPHES:
                hs_parts.append("(?:" + "|".join(hs_literal(a) for a in _APOSTROPHES) + ")")
                py_parts.append(f"[{_APOSTROPHES}]")
            elif char in variants:
                options = variants[char]
                hs_parts.append("(?:" + "|".join(hs_literal(v) for v in options) + ")" + _HS_MARKS)
                py_parts.append("[" + "".join(options) + "]" + _PY_MARKS)
            else:
                hs_parts.append(hs_literal(char))
                py_parts.append(_escape(char))
    return "".join(hs_parts), "".join(py_parts)


def _escape(char: str) -> str:
    return "\\" + char if not char.isalnum() else char


def term_rules(term_sets: tuple[TermSet, ...]) -> tuple[Rule, ...]:
    """One rule per term set, with one trigger per term."""
    variants = letter_variants()
    rules: list[Rule] = []
    for term_set in term_sets:
        triggers: list[Trigger] = []
        alternatives: list[str] = []
        for term in term_set.terms:
            folded = fold(term).strip()
            if not folded:
                continue
            if len(folded) < 2:
                raise ScanError(
                    f"client {term_set.client!r}: a term must have at least two characters"
                )
            expressions = _term_expressions(term, variants)
            if expressions is None:
                continue
            hs_expression, py_expression = expressions
            width = 4 * len(term) + 8
            triggers.append(Trigger(hs_expression, before=width, after=8))
            alternatives.append(py_expression)
        if not triggers:
            continue
        alternatives.sort(key=len, reverse=True)
        rules.append(
            Rule(
                id="client_term",
                category=Category.CLIENT_TERM,
                triggers=tuple(triggers),
                pattern="(?<!\\w)(?:" + "|".join(alternatives) + ")(?!\\w)",
                priority=CLIENT_TERM,
                label="CLIENT",
                data_class=term_set.data_class,
                client=term_set.client,
            )
        )
    return tuple(rules)
