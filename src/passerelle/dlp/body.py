"""The text inside a JSON request or answer, whatever its wire format, scanned in one pass.

Every API the gateway speaks carries text in its own places: system prompts, message parts, tool
definitions (descriptions and JSON schemas), tool call arguments, tool results, Responses
``input`` items, Gemini ``parts``. Rather than one extractor per format, which would miss the
field a vendor adds next month, :func:`text_slots` walks the parsed body and keeps every string
value except those that are not text:

- identifiers and enumerations, by key: ``model``, ``role``, ``type``, ``id``, ``call_id``,
  ``name`` (tool and function names must survive unchanged), ``status``, ``media_type``, a JSON
  schema's ``required`` list…;
- opaque data: ``signature``, ``encrypted_content``, ``thoughtSignature``, the ``data`` of
  base64 sources, Gemini inline data and redacted thinking;
- ``data:`` URIs and long base64 blobs (images, documents, audio), whatever their key.

Dictionary keys are not scanned (they are field or property names). Each kept string is a
:class:`TextSlot` that remembers where it lives, so that a finding can be replaced in place and
the rest of the body stays exactly as the caller sent it (unknown fields included).

Thinking text is scanned like any other. Anthropic signs thinking blocks: one whose text must be
rewritten no longer matches its signature and the provider refuses the request, which fails
rather than leaks. (Answers' thinking is not restored, so placeholders the model thought with
come back unchanged in the next turn and the signature still holds.)

**One scan per body.** Scanning each string separately would cost a scanner call per message
part; the slots are joined with a separator no rule matches across (a line break, a NUL, a line
break) and scanned once, and each finding is mapped back to its slot. A finding that still
straddles two slots (a heuristic rule reading across the separator) makes those slots be
scanned on their own.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from passerelle.dlp.findings import Category, Finding, ScanResult
from passerelle.dlp.scanner import Scanner

SEPARATOR = "\n\x00\n"

NOT_TEXT_KEYS = frozenset(
    {
        # identifiers and enumerations of the four wire formats
        "model", "role", "type", "object", "id", "call_id", "tool_call_id", "tool_use_id",
        "item_id", "response_id", "previous_response_id", "file_id", "container_id", "name",
        "status", "detail", "format", "media_type", "mime_type", "mimeType", "finish_reason",
        "stop_reason", "finishReason", "reasoning_effort", "effort", "service_tier",
        "truncation", "anthropic_version", "prompt_cache_key", "file_uri", "fileUri",
        "responseMimeType", "response_mime_type", "tool_choice",
        # opaque reasoning state: never text, and providers reject it altered
        "signature", "encrypted_content", "thoughtSignature", "thought_signature",
    }
)  # fmt: skip
"""Keys whose string values are identifiers, enumerations or opaque data, never prompt text
(an object or a list under such a key is still walked: ``text.format`` holds a JSON schema)."""

OPAQUE_KEYS = frozenset({"required", "cache_control"})
"""Keys skipped whatever their value: a schema's list of property names, cache directives."""

JSON_TEXT_KEYS = frozenset({"arguments", "partial_json"})
"""Keys whose string values are themselves JSON (tool call arguments): an original value put
back into them must be JSON-escaped."""

_BASE64_BLOB = re.compile(r"[A-Za-z0-9+/_\-]+={0,2}")
_MIN_BLOB = 256
_OPAQUE_DATA_TYPES = frozenset({"base64", "redacted_thinking"})


@dataclass(frozen=True, slots=True)
class TextSlot:
    """One string of a body that carries text, and where it lives (``container[key]``)."""

    container: dict[str, Any] | list[Any]
    key: str | int
    text: str

    @property
    def json_text(self) -> bool:
        return self.key in JSON_TEXT_KEYS


def _is_binary(value: str) -> bool:
    """A ``data:`` URI, or a long run of base64 without a space: an image or a document."""
    if value.startswith("data:"):
        return ";base64," in value[:200]
    if len(value) < _MIN_BLOB or " " in value or "\n" in value:
        return False
    return _BASE64_BLOB.fullmatch(value) is not None


def _opaque_data(container: Mapping[str, Any]) -> bool:
    """Whether ``container["data"]`` is encoded media or encrypted state rather than text: an
    Anthropic base64 source or redacted thinking, a Gemini ``inlineData``. (An Anthropic plain
    text document source, ``{"type": "text", "data": ...}``, is text and is scanned.)"""
    return (
        container.get("type") in _OPAQUE_DATA_TYPES
        or "mimeType" in container
        or "mime_type" in container
    )


def _children(value: dict[str, Any] | list[Any]) -> Iterator[tuple[Any, Any, Any]]:
    if isinstance(value, dict):
        for key, child in value.items():
            if key in OPAQUE_KEYS or (key == "data" and _opaque_data(value)):
                continue
            if key in NOT_TEXT_KEYS and not isinstance(child, (dict, list)):
                continue
            yield value, key, child
    else:
        for index, child in enumerate(value):
            yield value, index, child


def text_slots(body: Any) -> list[TextSlot]:
    """Every string of ``body`` that carries text, in document order (iteratively: a deeply
    nested body cannot exhaust the interpreter's stack)."""
    slots: list[TextSlot] = []
    if not isinstance(body, (dict, list)):
        return slots
    stack: list[Iterator[tuple[Any, Any, Any]]] = [_children(body)]
    while stack:
        step = next(stack[-1], None)
        if step is None:
            stack.pop()
            continue
        container, key, value = step
        if isinstance(value, str):
            if value and not _is_binary(value):
                slots.append(TextSlot(container, key, value))
        elif isinstance(value, (dict, list)):
            stack.append(_children(value))
    return slots


@dataclass(frozen=True, slots=True)
class BodyScan:
    """What one scan of a body found, finding spans relative to each slot's text."""

    slots: tuple[TextSlot, ...]
    findings: tuple[tuple[Finding, ...], ...]
    """Per slot, sorted and disjoint."""
    data_classes: frozenset[str]
    injection: bool

    @property
    def found(self) -> bool:
        return any(self.findings)

    def counts(self) -> dict[str, int]:
        """Findings by detector type (no values), for audit records and error messages."""
        counts: dict[str, int] = {}
        for findings in self.findings:
            for finding in findings:
                counts[finding.rule] = counts.get(finding.rule, 0) + 1
        return counts

    def categories(self) -> frozenset[Category]:
        return frozenset(f.category for findings in self.findings for f in findings)


EMPTY_SCAN = BodyScan((), (), frozenset(), False)


def scan_texts(scanner: Scanner, texts: Sequence[str]) -> tuple[list[list[Finding]], ScanResult]:
    """Scan several texts in one call: per text, its findings (spans relative to it); and the
    joined scan's result, for its data classes and injection flag. Raises ScanError."""
    if not texts:
        return [], ScanResult()
    if len(texts) == 1:
        result = scanner.scan(texts[0])
        return [list(result.findings)], result
    starts: list[int] = []
    position = 0
    for text in texts:
        starts.append(position)
        position += len(text) + len(SEPARATOR)
    result = scanner.scan(SEPARATOR.join(texts))
    per_text: list[list[Finding]] = [[] for _ in texts]
    straddling: set[int] = set()
    for finding in result.findings:
        index = bisect.bisect_right(starts, finding.start) - 1
        start = finding.start - starts[index]
        end = finding.end - starts[index]
        if end > len(texts[index]):
            last = bisect.bisect_right(starts, finding.end - 1) - 1
            straddling.update(range(index, last + 1))
            continue
        per_text[index].append(replace(finding, start=start, end=end))
    classes = set(result.data_classes)
    injection = result.injection
    for index in sorted(straddling):
        alone = scanner.scan(texts[index])
        per_text[index] = list(alone.findings)
        classes |= alone.data_classes
        injection = injection or alone.injection
    return per_text, ScanResult(
        findings=result.findings, data_classes=frozenset(classes), injection=injection
    )


def scan_body(scanner: Scanner, body: Any) -> BodyScan:
    """Scan every text of ``body`` at once. Raises ScanError."""
    slots = text_slots(body)
    if not slots:
        return EMPTY_SCAN
    per_slot, result = scan_texts(scanner, [slot.text for slot in slots])
    return BodyScan(
        slots=tuple(slots),
        findings=tuple(tuple(findings) for findings in per_slot),
        data_classes=result.data_classes,
        injection=result.injection,
    )


def copy_with(body: dict[str, Any], new_texts: Mapping[int, str]) -> dict[str, Any]:
    """A copy of ``body`` with the texts of the given slots (by index in :func:`text_slots`
    order) replaced; the caller's body is left as it was."""
    copy: dict[str, Any] = orjson.loads(orjson.dumps(body))
    slots = text_slots(copy)
    for index, text in new_texts.items():
        slot = slots[index]
        slot.container[slot.key] = text  # type: ignore[index]
    return copy


def rewrite_texts(body: Any, rewrite: Callable[[TextSlot], str]) -> int:
    """Replace, in place, every text slot of ``body`` by ``rewrite(slot)``; how many changed.
    For answers the gateway owns (a parsed provider response), not for a caller's body."""
    changed = 0
    for slot in text_slots(body):
        new = rewrite(slot)
        if new != slot.text:
            slot.container[slot.key] = new  # type: ignore[index]
            changed += 1
    return changed
