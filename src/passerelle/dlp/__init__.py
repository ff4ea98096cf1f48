"""Data loss prevention: find secrets, personal data, client terms and prompt injections in
text, then redact or pseudonymize them.

::

    scanner = Scanner(DlpSettings(term_sets=(TermSet("acme", "restricted", ("Acme",)),)))
    result = scanner.scan(prompt)            # build once, scan many times, from any thread
    safe = redact(prompt, result.findings)   # "[REDACTED:aws_access_key]"

    vault = Vault()
    masked = pseudonymize(prompt, result.findings, vault)    # "[EMAIL_1]"
    restorer = Restorer(vault)
    for chunk in stream: send(restorer.feed(chunk))          # originals back, across chunks
    send(restorer.flush())

Everything here is pure computation over strings; the scanner fails closed with
:class:`ScanError`. See ``scanner.py`` for how a scan works and how overlaps are resolved.
"""

from passerelle.dlp.actions import Vault, pseudonymize, redact
from passerelle.dlp.findings import Category, Finding, ScanError, ScanResult
from passerelle.dlp.restore import Restorer
from passerelle.dlp.scanner import Scanner
from passerelle.dlp.settings import DlpSettings, TermSet

__all__ = [
    "Category",
    "DlpSettings",
    "Finding",
    "Restorer",
    "ScanError",
    "ScanResult",
    "Scanner",
    "TermSet",
    "Vault",
    "pseudonymize",
    "redact",
]
