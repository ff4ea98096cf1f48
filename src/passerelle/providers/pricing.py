"""What a request cost, in integer micro-USD, from a versioned offline price table.

Money never touches a float. Prices are micro-USD per million tokens (``$2.50 / 1M`` is
``2_500_000``), so the cost of a request is a sum of ``tokens * price`` products divided by a
million once, rounding half up, at the very end: a request is rounded once, not once per kind
of token, so its cost is the exact figure to the nearest micro-USD.

The shipped table (``prices.json`` next to this module) is data, not code: it carries a
``version`` and, for every entry, the vendor page the figures came from. Operators override or
extend it from the configuration file (``prices:``), keyed the same way:
``"<provider kind>/<model id>"``.

Everything here is pure: the JSON is read only when :meth:`PriceTable.load_default` is called,
and the caller keeps the resulting table (``create_app`` builds it once).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from importlib import resources
from types import MappingProxyType
from typing import Any

TOKENS_PER_PRICE_UNIT = 1_000_000
"""Prices are quoted per million tokens."""

_CURRENCY = "USD"
_UNIT = "micro_usd_per_million_tokens"
_TABLE_FIELDS = frozenset({"version", "currency", "unit", "models"})

_AZURE_OPENAI = "azure_openai"
_OPENAI = "openai"

# Bedrock cross-Region inference profiles put a geography in front of the model id
# (``us.anthropic.claude-…``, ``global.anthropic.claude-…``). The price is the model's own
# unless the table has an entry for the prefixed id.
_REGION_PREFIX = re.compile(r"^(?:us|us-gov|eu|apac|jp|au|ca|global)\.(?=[a-z0-9-]+\.)")

# Snapshot and version suffixes, tried in this order and stripped one at a time, so a dated
# snapshot finds the price of its family without ever landing on a *different* model
# (``gpt-4o-mini-2024-07-18`` becomes ``gpt-4o-mini``, never ``gpt-4o``).
_VERSION_SUFFIXES = (
    re.compile(r"@[^@/]*$"),  # Vertex AI: claude-sonnet-4-5@20250929
    re.compile(r"-v\d+(?::\d+)*$"),  # Bedrock: -v1:0, -v2:0; Vertex: claude-3-5-sonnet-v2
    re.compile(r"-\d{4}-\d{2}-\d{2}$"),  # OpenAI: gpt-4o-2024-08-06
    re.compile(r"-\d{8}$"),  # Anthropic: claude-sonnet-4-5-20250929
    re.compile(r"-\d{3,4}$"),  # Mistral: mistral-large-2411; Google: gemini-2.0-flash-001
    re.compile(r"-latest$"),  # mistral-large-latest, claude-3-5-haiku-latest
)


@dataclass(frozen=True, slots=True)
class Price:
    """One model's prices, in micro-USD per million tokens.

    ``None`` for an optional price means "no special rate": cached input and cache writes are
    billed as plain input, reasoning tokens as plain output (the usual case).
    """

    input: int
    output: int
    cached_input: int | None = None
    cache_write: int | None = None
    reasoning: int | None = None
    source: str | None = None
    notes: str | None = None

    def __post_init__(self) -> None:
        for name in ("input", "output", "cached_input", "cache_write", "reasoning"):
            value = getattr(self, name)
            if value is None and name not in ("input", "output"):
                continue
            # bool is an int subclass; a price of ``true`` is a typo, not one micro-USD.
            if type(value) is not int or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        for name in ("source", "notes"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a string, got {value!r}")


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Token counts of one request, in the gateway's normalised form.

    ``cached_input_tokens`` and ``cache_write_tokens`` are *subsets* of ``input_tokens``, and
    ``reasoning_tokens`` is a *subset* of ``output_tokens``. Vendors disagree on this and the
    per-vendor converter, not the pricing code, is responsible for normalising:

    - OpenAI already reports this way: ``prompt_tokens_details.cached_tokens`` is inside
      ``prompt_tokens`` and ``completion_tokens_details.reasoning_tokens`` inside
      ``completion_tokens``.
    - Anthropic reports ``cache_read_input_tokens`` and ``cache_creation_input_tokens`` *beside*
      ``input_tokens``; the converter adds all three into ``input_tokens``.
    - Gemini counts ``cachedContentTokenCount`` inside ``promptTokenCount`` but reports
      ``thoughtsTokenCount`` beside ``candidatesTokenCount``; the converter adds thoughts into
      ``output_tokens``.

    A subset larger than its total (a provider bug) is capped at the total when pricing, so a
    bad report can never make a cost negative or fail the bookkeeping.
    """

    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if value < 0:
                raise ValueError(f"{item.name} must not be negative, got {value}")


def cost_micro_usd(usage: TokenUsage, price: Price) -> int:
    """The cost of ``usage`` at ``price`` in micro-USD, rounded half up once."""
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    written = min(usage.cache_write_tokens, usage.input_tokens - cached)
    fresh = usage.input_tokens - cached - written
    reasoning = min(usage.reasoning_tokens, usage.output_tokens)
    visible = usage.output_tokens - reasoning

    cached_rate = price.input if price.cached_input is None else price.cached_input
    write_rate = price.input if price.cache_write is None else price.cache_write
    reasoning_rate = price.output if price.reasoning is None else price.reasoning

    scaled = (
        fresh * price.input
        + cached * cached_rate
        + written * write_rate
        + visible * price.output
        + reasoning * reasoning_rate
    )
    return (scaled + TOKENS_PER_PRICE_UNIT // 2) // TOKENS_PER_PRICE_UNIT


class PriceTable:
    """Prices keyed ``"<provider kind>/<model id>"``, with a version for the audit trail.

    Keys are compared in lower case. :meth:`lookup` tries, in order: the exact id; the id with
    its snapshot suffixes stripped one at a time; the same without a Bedrock geography prefix;
    and, for ``azure_openai`` only, all of that again under ``openai``. Self-hosted
    ``openai_compatible`` servers get no fallback: unless the operator priced the model, the
    price is unknown (``None``) and the caller records a cost of 0 and says so.
    """

    __slots__ = ("_found", "_prices", "_version")

    def __init__(self, prices: Mapping[str, Price], *, version: str) -> None:
        normalised: dict[str, Price] = {}
        for key, price in prices.items():
            canonical = _check_key(key)
            if canonical in normalised:
                raise ValueError(f"price key {key!r} is given twice (keys ignore case)")
            if not isinstance(price, Price):
                raise ValueError(f"price {key!r} must be a Price, got {type(price).__name__}")
            normalised[canonical] = price
        self._prices = normalised
        self._version = version
        # Answers to ``lookup``, kept because the table never changes and the suffix matching
        # costs more than the rest of settling a request. Bounded: model names come from callers.
        self._found: dict[tuple[str, str], Price | None] = {}

    @classmethod
    def load_default(cls) -> PriceTable:
        """The table shipped with this package."""
        data = resources.files(__package__).joinpath("prices.json").read_bytes()
        return cls.from_json(data)

    @classmethod
    def from_json(cls, data: str | bytes) -> PriceTable:
        """Parse and validate a table in the ``prices.json`` format."""
        try:
            document = json.loads(data, object_pairs_hook=_no_duplicate_keys)
        except json.JSONDecodeError as exc:
            raise ValueError(f"price table is not valid JSON: {exc}") from exc
        return cls.from_document(document)

    @classmethod
    def from_document(cls, document: object) -> PriceTable:
        """Validate an already-parsed table; every error names the offending key."""
        if not isinstance(document, dict):
            raise ValueError("price table must be a JSON object")
        _reject_unknown("price table", document, _TABLE_FIELDS)
        version = document.get("version")
        if not isinstance(version, str) or not version:
            raise ValueError("price table 'version' must be a non-empty string")
        if document.get("currency") != _CURRENCY:
            raise ValueError(f"price table 'currency' must be {_CURRENCY!r}")
        if document.get("unit") != _UNIT:
            raise ValueError(f"price table 'unit' must be {_UNIT!r}")
        models = document.get("models")
        if not isinstance(models, dict):
            raise ValueError("price table 'models' must be an object")
        prices = {key: _parse_entry(key, entry) for key, entry in models.items()}
        return cls(prices, version=version)

    @property
    def version(self) -> str:
        """The shipped table's version. Overrides keep it: the config hash identifies them."""
        return self._version

    @property
    def entries(self) -> Mapping[str, Price]:
        """Every price, read-only, by canonical key."""
        return MappingProxyType(self._prices)

    def __len__(self) -> int:
        return len(self._prices)

    def with_overrides(self, overrides: Mapping[str, Price]) -> PriceTable:
        """A new table where each override replaces (or adds) the entry with its key."""
        merged = dict(self._prices)
        seen: set[str] = set()
        for key, price in overrides.items():
            canonical = _check_key(key)
            if canonical in seen:
                raise ValueError(f"price key {key!r} is given twice (keys ignore case)")
            seen.add(canonical)
            merged[canonical] = price
        return PriceTable(merged, version=self._version)

    def lookup(self, provider_kind: str, model: str) -> Price | None:
        """The price of ``model`` served by a provider of ``provider_kind``, or ``None``."""
        memo = (provider_kind, model)
        if memo in self._found:
            return self._found[memo]
        price = self._search(provider_kind, model)
        if len(self._found) < 4096:
            self._found[memo] = price
        return price

    def _search(self, provider_kind: str, model: str) -> Price | None:
        kinds = [provider_kind.lower()]
        if kinds[0] == _AZURE_OPENAI:
            kinds.append(_OPENAI)
        for kind in kinds:
            for candidate in _candidates(model.lower()):
                price = self._prices.get(f"{kind}/{candidate}")
                if price is not None:
                    return price
        return None


def _candidates(model: str) -> Iterator[str]:
    yield from _without_suffixes(model)
    unprefixed = _REGION_PREFIX.sub("", model, count=1)
    if unprefixed != model:
        yield from _without_suffixes(unprefixed)


def _without_suffixes(model: str) -> Iterator[str]:
    yield model
    current = model
    while True:
        for pattern in _VERSION_SUFFIXES:
            stripped = pattern.sub("", current, count=1)
            if stripped != current:
                break
        else:
            return
        if not stripped:
            return
        current = stripped
        yield current


def _check_key(key: object) -> str:
    if not isinstance(key, str):
        raise ValueError(f"price key {key!r} must be a string")
    kind, slash, model = key.partition("/")
    if not slash or not kind or not model or kind != kind.strip() or model != model.strip():
        raise ValueError(f"price key {key!r} must be '<provider kind>/<model id>'")
    return key.lower()


_ENTRY_FIELDS = frozenset(item.name for item in fields(Price))


def _parse_entry(key: str, entry: object) -> Price:
    _check_key(key)
    if not isinstance(entry, dict):
        raise ValueError(f"price {key!r} must be an object")
    _reject_unknown(f"price {key!r}", entry, _ENTRY_FIELDS)
    for required in ("input", "output", "source"):
        if required not in entry:
            raise ValueError(f"price {key!r} is missing {required!r}")
    source = entry["source"]
    if not isinstance(source, str) or not source.startswith("https://"):
        raise ValueError(f"price {key!r} 'source' must be an https:// URL")
    try:
        return Price(**entry)
    except ValueError as exc:
        raise ValueError(f"price {key!r}: {exc}") from exc


def _reject_unknown(where: str, mapping: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(mapping) - set(allowed))
    if unknown:
        raise ValueError(f"{where} has unknown fields {unknown}; allowed: {sorted(allowed)}")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"key {key!r} appears twice in the price table")
        result[key] = value
    return result
