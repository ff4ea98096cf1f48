"""Reading files for ``passerelle scan`` and shaping what it reports.

Kept apart from the scanner, which is pure: this is the one DLP module that touches the disk.
Reports carry rule, category, class and position, never the value found.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from passerelle.dlp.findings import Finding

STDIN = "-"
MAX_FILE_BYTES = 64 * 1024 * 1024
# Directories that hold tools' state or third-party code rather than the project's own text.
_SKIPPED_DIRECTORIES = frozenset(
    {".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache",
     ".ruff_cache", ".pytest_cache", ".tox", ".envs"}
)  # fmt: skip


class UnreadableFile(Exception):
    """A file that cannot be scanned; the message says why, never what it holds."""


@dataclass(frozen=True, slots=True)
class Located:
    """A finding with its 1-based line and column (in characters)."""

    finding: Finding
    line: int
    column: int


def expand(paths: Iterable[str]) -> Iterator[str]:
    """Files named, and the files under directories named (tool and vendor directories
    skipped), in a stable order. ``-`` stands for standard input."""
    for raw in paths:
        if raw == STDIN:
            yield raw
            continue
        path = Path(raw)
        if not path.is_dir():
            yield raw
            continue
        for root, directories, files in os.walk(path):
            directories[:] = sorted(d for d in directories if d not in _SKIPPED_DIRECTORIES)
            for name in sorted(files):
                yield os.path.join(root, name)


def read_text(name: str) -> str | None:
    """The text of a file (UTF-8; undecodable bytes replaced), or None for a binary file."""
    try:
        if name == STDIN:
            data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
        else:
            with open(name, "rb") as handle:
                data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise UnreadableFile(exc.strerror or type(exc).__name__) from None
    if len(data) > MAX_FILE_BYTES:
        raise UnreadableFile(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8-sig", errors="replace")


def locate(text: str, findings: Iterable[Finding]) -> list[Located]:
    """Line and column of each finding (findings in any order; one pass over the text)."""
    located: list[Located] = []
    line = 1
    line_start = 0
    position = 0
    for finding in sorted(findings, key=lambda f: f.start):
        newlines = text.count("\n", position, finding.start)
        if newlines:
            line += newlines
            line_start = text.rfind("\n", position, finding.start) + 1
        position = finding.start
        located.append(Located(finding, line, finding.start - line_start + 1))
    return located


def json_finding(path: str, item: Located) -> dict[str, object]:
    finding = item.finding
    return {
        "path": path,
        "line": item.line,
        "column": item.column,
        "start": finding.start,
        "end": finding.end,
        "rule": finding.rule,
        "category": finding.category.value,
        "data_class": finding.data_class,
        "client": finding.client,
    }
