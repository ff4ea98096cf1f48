"""Detection rules as data: what to look for, how to confirm it, what it implies.

A rule has two halves, because the two engines are good at different things:

- **triggers** are Hyperscan expressions compiled together into one database. They are a
  *prefilter*: every true match of the rule must make at least one trigger fire, near it. They
  stay simple (a vendor prefix plus the shortest body, a context word) so that Hyperscan scans at
  memory speed and reports each candidate once.
- the **pattern** is a Python regular expression, the authority on what matches. It runs only on
  a small window around each trigger (``before``/``after`` characters of the trigger's end), so
  its cost is proportional to the candidates, not to the text. A named group ``v`` narrows the
  reported span to the value (``password = "[only this]"``).

Then, in order: the ``context`` expression must occur near the value, ``check`` (checksums,
structure) may reject the candidate or narrow its span, placeholders and published examples are
dropped (for rules that ask), and the entropy floor is applied.

Rules are built by functions, never at import time, and are immutable values: built-in rules
and client term sets go through the same type, so a deployment can add its own the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from passerelle.dlp.findings import Category

Span = tuple[int, int]
Check = Callable[[str, int, int], "Span | None"]
"""``check(text, start, end)``: the span to report (possibly narrowed), or None to reject."""

# Overlap resolution ranks: the higher wins when two findings overlap (see scanner.py).
INJECTION = 100
VENDOR_SECRET = 90
STRUCTURED_SECRET = 80
HEURISTIC_SECRET = 70
VALIDATED_PERSONAL = 60
PERSONAL = 50
CLIENT_TERM = 40
PERSON_NAME = 30


NUMBER_RUN = r"[0-9](?:[ .\-]?[0-9]){8}(?:[^0-9]|$)"
"""The shared trigger of the numeric rules (cards, phones, NIR, RIB): nine or more digits,
possibly grouped, ending where the digits end. One expression for all of them keeps Hyperscan
fast (many separate digit-class expressions defeat its acceleration), and anchoring on the end
of the run reports a long run of digits once instead of at every digit. Identical trigger
expressions are compiled once and feed every rule that declares them."""

TIMESTAMP_RUN = r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:"
"""A log timestamp (``2026-11-29 17:04:``): ten digits that :data:`NUMBER_RUN` would take for a
number, and the most frequent digit run in logs. Its run ends where the timestamp's does, so a
number-run match ending at the same offset is the timestamp's, and is skipped before any rule
looks at it; a real number beside a timestamp ends elsewhere and is still seen."""


@dataclass(frozen=True, slots=True)
class Trigger:
    """A Hyperscan expression that fires near every true match of its rule."""

    expression: str
    """Hyperscan syntax over UTF-8 bytes; ASCII only (write other bytes as ``\\xHH``)."""
    before: int
    """The farthest before the trigger's end that a match may start, in characters."""
    after: int
    """The farthest after the trigger's end that a match may end, in characters."""
    caseless: bool = False
    single: bool = False
    """Report only the first match in a text (``HS_FLAG_SINGLEMATCH``), for triggers that would
    fire on every character of a run (invisible characters); pair it with an ``after`` that
    reaches the end of any text, so that the pattern then finds every run after the first."""
    marks_start: bool = False
    """This trigger only marks where a match may start (with ``HS_FLAG_SOM_LEFTMOST``); it
    opens no window. A rule with such a trigger tries its pattern only at marked starts inside
    the windows of its other triggers: a cheap keyword marks the starts, a looser expression
    (too costly for start tracking) says whether there is anything worth confirming."""
    anchored: bool = False
    """The rule's pattern starts exactly where this trigger starts. Hyperscan then reports the
    start too (``HS_FLAG_SOM_LEFTMOST``) and the pattern is tried there once, over at most
    ``after`` characters, instead of searching a window: the cheapest confirmation, used for
    rules that begin with a keyword or a vendor prefix."""
    rare: bool = False
    """Compiled into the scanner's second database, which scans a text only when a ``gate``
    trigger fired in it. For rules whose exact trigger is costly because of forms that text
    seldom holds (combining accents, rarer Latin letters): the first database gets a cheap
    trigger that is exact for text without those forms, this one covers the rest."""
    gate: bool = False
    """Opens no window: when it fires (pair it with ``single``), the text is scanned again with
    the ``rare`` triggers. It must fire on every text where a rare trigger could match and the
    cheap one would not."""


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    """The detector type reported in findings; several rules may share one id."""
    category: Category
    triggers: tuple[Trigger, ...]
    pattern: str
    """Python ``re`` syntax, the authority; a named group ``v`` is the reported span."""
    priority: int
    check: Check | None = None
    context: str | None = None
    """A Python regex that must occur within ``context_before``/``context_after`` characters."""
    context_before: int = 64
    context_after: int = 0
    min_entropy: float = 0.0
    """Shannon entropy floor of the value, bits per character."""
    reject_placeholders: bool = False
    """Drop values that are placeholders or published examples (see allowlist.py)."""
    reject_sequences: bool = True
    """With ``reject_placeholders``: also drop values holding runs such as ``123456``."""
    label: str = ""
    """The pseudonym label, e.g. ``EMAIL`` for ``[EMAIL_1]``; defaults to the id upper-cased."""
    data_class: str | None = None
    """Overrides the category's class (client term sets carry their own)."""
    client: str | None = None

    @property
    def placeholder_label(self) -> str:
        return self.label or self.id.upper()


def token(
    rule_id: str,
    prefix: str,
    body: str,
    min_len: int,
    max_len: int | None = None,
    *,
    suffix: str = "",
    suffix_len: int = 0,
    min_entropy: float = 3.0,
    guard: str = "A-Za-z0-9_",
    check: Check | None = None,
    label: str = "",
) -> Rule:
    """A vendor token: a published ``prefix`` then ``min_len`` to ``max_len`` characters of the
    ``body`` class (and an optional fixed ``suffix``).

    The trigger is the prefix plus the shortest body, so Hyperscan reports one candidate per token
    whatever its length; a fixed-length token's trigger includes its ``suffix`` (at most
    ``suffix_len`` characters). ``prefix`` is written once and used by both engines, so it must
    stick to their common syntax (literals, ``\\.``, ``(?:a|b)``, classes, bounded repeats).
    """
    max_len = min_len if max_len is None else max_len
    body_class = f"[{body}]"
    quantifier = f"{{{min_len}}}" if min_len == max_len else f"{{{min_len},{max_len}}}"
    pattern = f"(?<![{guard}]){prefix}{body_class}{quantifier}{suffix}(?![{body}])"
    trigger_suffix = suffix if min_len == max_len else ""
    anchored = prefix[:1].isalnum() or prefix.startswith("(?:")
    longest = _literal_length(prefix) + max_len + suffix_len + 2
    trigger = Trigger(
        f"{prefix}{body_class}{{{min_len}}}{trigger_suffix}",
        before=longest,
        after=longest if anchored else max_len - min_len + suffix_len + 2,
        anchored=anchored,
    )
    return Rule(
        id=rule_id,
        category=Category.SECRET,
        triggers=(trigger,),
        pattern=pattern,
        priority=VENDOR_SECRET,
        check=check,
        min_entropy=min_entropy,
        reject_placeholders=True,
        label=label,
    )


def _literal_length(prefix: str) -> int:
    """An upper bound of how many characters ``prefix`` matches: the prefixes are literals,
    classes and small bounded repeats, never longer than their own source."""
    return len(prefix)


def hs_literal(text: str) -> str:
    """``text`` as a Hyperscan expression matching it literally: ASCII letters and digits as
    they are, every other byte of its UTF-8 encoding as ``\\xHH``."""
    out = []
    for char in text:
        if char.isascii() and char.isalnum():
            out.append(char)
        else:
            out.extend(f"\\x{byte:02x}" for byte in char.encode("utf-8"))
    return "".join(out)
