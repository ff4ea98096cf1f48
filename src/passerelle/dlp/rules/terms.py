"""Each client's own sensitive terms (client names, project code names), compiled into the scan.

A term matches case-insensitively, on word boundaries, with accents tolerated both ways:
``Societe Generale`` finds ``Société Générale`` and ``SOCIÉTÉ GÉNÉRALE``, and a term written with
accents finds the same words typed without. Spaces and hyphens between words are
interchangeable, as are straight and typographic apostrophes. Text in decomposed form (a letter
followed by a combining accent, as macOS file names have) matches too.

Hyperscan gets each letter as an alternation of the UTF-8 bytes of its variants, so no UTF-8
mode is needed (its behaviour on invalid UTF-8 input is undefined); Python confirms the word
boundaries. Every letter of every variant, each optionally followed by combining accents, made
the terms cost more than every other rule together (2.3 of 4.1 ms per MB of the Hyperscan pass,
with five terms). So each term has two triggers:

- a *common* one in the scanner's first database: ASCII and Latin-1 variants (French, Spanish,
  German, Portuguese, Nordic accents) plus the term's own letters, no combining accents, ASCII
  whitespace and no-break spaces between words. Hyperscan turns it into byte classes and
  literals: 0.35 ms per MB for five terms, 0.4 for a hundred;
- a *rare* one with every variant, combining accents and every Unicode space, in the second
  database, which scans a text only when a shared *gate* fired: a combining accent, a Latin
  letter outside Latin-1 that is some letter's variant, or a Unicode space outside ASCII and
  no-break space. Text without any of those cannot hold a match the common trigger misses.
"""

from __future__ import annotations

import unicodedata

from passerelle.dlp.findings import Category, ScanError
from passerelle.dlp.rules import CLIENT_TERM, Rule, Trigger, hs_literal
from passerelle.dlp.settings import TermSet

# Combining diacritical marks, as UTF-8 bytes (U+0300-U+036F) and as a Python class.
_HS_MARK = r"\xcc[\x80-\xbf]|\xcd[\x80-\xaf]"
_HS_MARKS = f"(?:{_HS_MARK})*"
_PY_MARKS = "[\u0300-\u036f]*"
# What Python's ``\s`` matches beyond ASCII whitespace and the no-break space.
_RARE_SPACES = (
    "\x85\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
)
# Hyperscan's \s is [\t\n\v\f\r ]; Python's also holds \x1c-\x1f.
_HS_SEPARATOR = r"(?:[\s\x1c-\x1f\-]|\xc2\xa0)+"
_HS_RARE_SEPARATOR = (
    r"(?:[\s\x1c-\x1f\-]|\xc2\xa0|" + "|".join(hs_literal(c) for c in _RARE_SPACES) + ")+"
)
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


def _term_expressions(
    term: str, variants: dict[str, tuple[str, ...]], *, rare: bool
) -> tuple[str, str] | None:
    """The Hyperscan and Python expressions of one term, or None if it is blank. With ``rare``
    False, the Hyperscan one is the common trigger (see the module's docstring)."""
    words = fold(term).split()
    if not words:
        return None
    separator = _HS_RARE_SEPARATOR if rare else _HS_SEPARATOR
    own = set(unicodedata.normalize("NFC", term))
    own |= {c.swapcase() for c in own if len(c.swapcase()) == 1}
    hs_parts: list[str] = []
    py_parts: list[str] = []
    for index, word in enumerate(words):
        if index:
            hs_parts.append(separator)
            py_parts.append(_PY_SEPARATOR)
        for char in word:
            if char == "-":
                hs_parts.append(separator)
                py_parts.append(_PY_SEPARATOR)
            elif char in _APOSTROPHES:
                hs_parts.append("(?:" + "|".join(hs_literal(a) for a in _APOSTROPHES) + ")")
                py_parts.append(f"[{_APOSTROPHES}]")
            elif char in variants:
                options = variants[char]
                chosen = options if rare else [v for v in options if v <= "\xff" or v in own]
                marks = _HS_MARKS if rare else ""
                hs_parts.append("(?:" + "|".join(hs_literal(v) for v in chosen) + ")" + marks)
                py_parts.append("[" + "".join(options) + "]" + _PY_MARKS)
            else:
                hs_parts.append(hs_literal(char))
                py_parts.append(_escape(char))
    return "".join(hs_parts), "".join(py_parts)


def rare_forms_gate(variants: dict[str, tuple[str, ...]]) -> str:
    """The gate of the rare term triggers: a combining accent, a variant of some letter outside
    Latin-1 (``œ`` and ``ł`` are nobody's variant, so French and Polish text only opens the gate
    where it holds such a letter), or a Unicode space beyond ASCII and the no-break space."""
    rare = sorted(
        {
            v
            for key, options in variants.items()
            # A letter outside Latin-1 whose variants are only its own two cases (œ/Œ, ł/Ł) is
            # covered by the common trigger of any term that holds it.
            if key <= "\xff" or len(options) > 2
            for v in options
            if v > "\xff"
        }
    )
    by_lead: dict[int, list[int]] = {}
    for char in [*rare, *_RARE_SPACES]:
        encoded = char.encode("utf-8")
        if len(encoded) == 2:
            by_lead.setdefault(encoded[0], []).append(encoded[1])
    parts = [_HS_MARK]
    for lead, trails in sorted(by_lead.items()):
        parts.append(f"\\x{lead:02x}[" + "".join(f"\\x{t:02x}" for t in sorted(trails)) + "]")
    parts.extend(hs_literal(c) for c in _RARE_SPACES if len(c.encode("utf-8")) != 2)
    return "|".join(parts)


def _escape(char: str) -> str:
    return "\\" + char if not char.isalnum() else char


def term_rules(term_sets: tuple[TermSet, ...]) -> tuple[Rule, ...]:
    """One rule per term set, with one trigger per term."""
    variants = letter_variants()
    gate = rare_forms_gate(variants)
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
            common = _term_expressions(term, variants, rare=False)
            complete = _term_expressions(term, variants, rare=True)
            if common is None or complete is None:
                continue
            width = 4 * len(term) + 8
            triggers.append(Trigger(common[0], before=width, after=8))
            triggers.append(Trigger(complete[0], before=width, after=8, rare=True))
            alternatives.append(common[1])
        if not triggers:
            continue
        triggers.append(Trigger(gate, before=0, after=0, single=True, gate=True))
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
