"""What to do with findings: redact them, or pseudonymize them with a per-request vault.

Both are pure functions of the text and its findings (the vault is an explicit, per-request
value, never shared state).

**Placeholder format.** A pseudonym is ``[LABEL_N]``: ASCII, square brackets, an upper-case
English label (``EMAIL``, ``PHONE``, ``IBAN``, ``CLIENT``, ``AWS_ACCESS_KEY``...) and a 1-based
ordinal per label, e.g. ``[EMAIL_1]``, ``[EMAIL_2]``, ``[PHONE_1]``. Models copy such tokens
verbatim: they read as identifiers, are not translated (``[EMAIL_1]`` stays ``[EMAIL_1]`` in a
French answer), are not taken for markup (as ``<PERSON>`` can be) and survive Markdown. Unicode
brackets were rejected because models and tokenizers normalise or drop them. The same value gets
the same placeholder everywhere in a request; a placeholder that already occurs in the text
(someone pasted ``[EMAIL_1]``) is skipped, so that restoring never rewrites a user's own words.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from passerelle.dlp.findings import Category, Finding


def _label(rule: str) -> str:
    """The placeholder label of a rule: one per kind of value, not per detector variant."""
    if rule.startswith("phone_"):
        return "PHONE"
    if rule in ("ipv4", "ipv6"):
        return "IP"
    if rule == "client_term":
        return "CLIENT"
    if rule == "person_name":
        return "PERSON"
    if rule == "credit_card":
        return "CARD"
    if rule.startswith("fr_"):
        return rule[3:].upper()
    return rule.upper()


def _checked(text: str, findings: Sequence[Finding]) -> list[Finding]:
    """Findings sorted by start; overlapping or out-of-range spans are a caller's bug."""
    ordered = sorted(findings, key=lambda f: (f.start, f.end))
    previous_end = 0
    for finding in ordered:
        if finding.start < previous_end or finding.end > len(text) or finding.start >= finding.end:
            raise ValueError("findings must be disjoint, non-empty spans of the text")
        previous_end = finding.end
    return ordered


def _replace(text: str, replacements: Iterable[tuple[int, int, str]]) -> str:
    out: list[str] = []
    position = 0
    for start, end, value in replacements:
        out.append(text[position:start])
        out.append(value)
        position = end
    out.append(text[position:])
    return "".join(out)


def redact(text: str, findings: Sequence[Finding]) -> str:
    """Each finding replaced by ``[REDACTED:<rule>]``, e.g. ``[REDACTED:aws_access_key]``."""
    return _replace(
        text, ((f.start, f.end, f"[REDACTED:{f.rule}]") for f in _checked(text, findings))
    )


class Vault:
    """One request's pseudonyms: original value <-> placeholder, both ways.

    Create one per request and never share it: it holds the originals, which are exactly what
    must not leak into another request, a log or an audit record.
    """

    def __init__(self) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._by_placeholder: dict[str, str] = {}
        self._counters: dict[str, int] = {}
        self._seen: list[str] = []

    def observe(self, text: str) -> None:
        """Note text of this request, so that no placeholder already written in it is issued."""
        self._seen.append(text)

    def placeholder(self, label: str, original: str) -> str:
        """The placeholder for ``original``, issuing the next free ordinal for ``label``."""
        key = (label, original)
        existing = self._by_value.get(key)
        if existing is not None:
            return existing
        number = self._counters.get(label, 0)
        while True:
            number += 1
            candidate = f"[{label}_{number}]"
            if candidate not in self._by_placeholder and not any(
                candidate in t for t in self._seen
            ):
                break
        self._counters[label] = number
        self._by_value[key] = candidate
        self._by_placeholder[candidate] = original
        return candidate

    def original(self, placeholder: str) -> str | None:
        return self._by_placeholder.get(placeholder)

    def mapping(self) -> dict[str, str]:
        """Placeholder -> original, a copy."""
        return dict(self._by_placeholder)

    def __len__(self) -> int:
        return len(self._by_placeholder)

    def __repr__(self) -> str:
        return f"Vault({len(self)} pseudonyms)"  # never the originals


def pseudonymize(text: str, findings: Sequence[Finding], vault: Vault) -> str:
    """Each data finding replaced by its placeholder from ``vault`` (issued on first use).

    Prompt-injection findings are left in place: they are not data to hide and give back, and
    the policy decides what to do with them.
    """
    vault.observe(text)
    replacements = [
        (f.start, f.end, vault.placeholder(_label(f.rule), f.extract(text)))
        for f in _checked(text, [f for f in findings if f.category is not Category.INJECTION])
    ]
    return _replace(text, replacements)
