"""What a scan reports: findings that carry a rule, a class and a span, never the text itself.

A finding is safe to log, audit and put in an error message: its ``repr`` holds the rule id, the
category, the data class and the character span, and nothing that was matched. The caller that
really needs the matched text (to redact or pseudonymize it) asks for it explicitly with
:meth:`Finding.extract`, passing the text it already holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from passerelle.errors import PasserelleError


class ScanError(PasserelleError):
    """The scanner could not build or could not finish a scan.

    DLP fails closed: a caller that gets this error must block the request, never forward it
    unscanned. The message never quotes the scanned text.
    """


class Category(StrEnum):
    """What kind of thing a rule finds; each category implies a data class differently."""

    SECRET = "secret"  # noqa: S105 (a category name, not a credential)
    """Credentials: API keys, tokens, private keys, passwords. Imply the secret class."""
    PERSONAL = "personal"
    """Personal data: emails, phones, bank and card numbers, national ids, IP addresses, names."""
    CLIENT_TERM = "client_term"
    """A client's own sensitive terms: its name, project code names. Imply that client's class."""
    INJECTION = "injection"
    """Prompt-injection signatures. Not data: they raise a flag and imply no class."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One detection, as a half-open character span ``[start, end)`` of the scanned ``str``."""

    rule: str
    """The detector's type, e.g. ``aws_access_key``, ``email``, ``client_term``."""
    category: Category
    data_class: str | None
    """The class this finding implies; ``None`` for prompt-injection signatures."""
    start: int
    end: int
    client: str | None = None
    """For client terms, the client whose term set matched."""

    def extract(self, text: str) -> str:
        """The matched text. Only for the code that replaces it (redaction, pseudonymization):
        never log, audit or display what this returns."""
        return text[self.start : self.end]


@dataclass(frozen=True, slots=True)
class ScanResult:
    """Everything one scan learnt about a text.

    ``findings`` are sorted by start and never overlap, so that redaction is well defined.
    ``data_classes`` is computed before overlaps are resolved: a client term hidden inside an
    email address still raises the request to that client's class even though only the email is
    reported as a finding.
    """

    findings: tuple[Finding, ...] = ()
    data_classes: frozenset[str] = frozenset()
    injection: bool = False

    @property
    def clean(self) -> bool:
        return not self.findings and not self.data_classes and not self.injection

    def rules(self) -> dict[str, int]:
        """How many findings of each rule, for audit records and metrics (no values)."""
        counts: dict[str, int] = {}
        for finding in self.findings:
            counts[finding.rule] = counts.get(finding.rule, 0) + 1
        return counts
