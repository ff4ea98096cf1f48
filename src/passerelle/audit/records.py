"""The audit record and its canonical bytes, the exact text the hash chain covers.

A record is a plain value: who did what, through which route, at what cost, plus ``details`` for
everything that does not deserve a column. ``canonical_payload`` turns it into deterministic JSON
(sorted keys, no whitespace): the same record always gives the same bytes, so a hash over them can
be recomputed years later by ``audit verify`` or by anyone holding an export.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import orjson

RecordKind = Literal["request", "admin"]

#: Bumped when the payload's shape changes; verify accepts every version it knows how to read.
PAYLOAD_VERSION = 1

#: The longest record id the ``audit_log.record_id`` column holds.
MAX_RECORD_ID = 64

_KINDS: frozenset[str] = frozenset(get_args(RecordKind))
_MAX_BIGINT = 2**63 - 1
_OPTIONAL_TEXT = ("actor", "team", "project", "client", "model", "provider")
_COUNTERS = ("input_tokens", "output_tokens", "cost_micro_usd")
_PAYLOAD_KEYS = frozenset(
    {"v", "record_id", "kind", "ts_us", "status", "details", *_OPTIONAL_TEXT, *_COUNTERS}
)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One line of the audit trail: a request the gateway answered, or an administrative action.

    ``actor`` is the user's email, or ``cli:<os user>`` for command-line administration.
    ``model`` is the alias the caller asked for and ``provider`` the route that answered.
    ``details`` holds the rest (route model, latency, config hash, error code, attempts, admin
    action and target…); it must be JSON-serialisable with string keys.
    """

    record_id: str
    kind: RecordKind
    ts_us: int
    actor: str | None
    team: str | None
    project: str | None
    client: str | None
    model: str | None
    provider: str | None
    status: int | None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_micro_usd: int = 0
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Checked here, once, so that a bad record fails at its source instead of blocking the
        # background writer on a row the database refuses.
        if not isinstance(self.record_id, str) or not 0 < len(self.record_id) <= MAX_RECORD_ID:
            raise ValueError(f"record_id must be 1 to {MAX_RECORD_ID} characters")
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be one of {sorted(_KINDS)}, not {self.kind!r}")
        if not _is_int(self.ts_us) or self.ts_us < 0:
            raise ValueError("ts_us must be a non-negative integer (microseconds since the epoch)")
        for name in _COUNTERS:
            value = getattr(self, name)
            if not _is_int(value) or not 0 <= value <= _MAX_BIGINT:
                raise ValueError(f"{name} must be a non-negative integer")
        if self.status is not None and (not _is_int(self.status) or not 0 <= self.status < 1000):
            raise ValueError("status must be an HTTP status code or None")
        for name in _OPTIONAL_TEXT:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a string or None")

    @property
    def day(self) -> str:
        """The UTC day of ``ts_us``, ``YYYY-MM-DD``: the unit of spend reports and retention."""
        return day_of(self.ts_us)


def day_of(ts_us: int) -> str:
    """The UTC day (``YYYY-MM-DD``) containing ``ts_us`` microseconds since the epoch."""
    return dt.datetime.fromtimestamp(ts_us // 1_000_000, tz=dt.UTC).date().isoformat()


def canonical_payload(record: AuditRecord) -> bytes:
    """The record as deterministic JSON: sorted keys at every level, no insignificant spaces.

    This is the exact byte string the chain hashes and the ``payload`` column stores. Raises
    ``TypeError`` when ``details`` holds something JSON cannot represent."""
    return orjson.dumps(
        {
            "v": PAYLOAD_VERSION,
            "record_id": record.record_id,
            "kind": record.kind,
            "ts_us": record.ts_us,
            "actor": record.actor,
            "team": record.team,
            "project": record.project,
            "client": record.client,
            "model": record.model,
            "provider": record.provider,
            "status": record.status,
            "input_tokens": record.input_tokens,
            "output_tokens": record.output_tokens,
            "cost_micro_usd": record.cost_micro_usd,
            "details": record.details if isinstance(record.details, dict) else dict(record.details),
        },
        option=orjson.OPT_SORT_KEYS,
    )


def from_payload(payload: bytes | str) -> AuditRecord:
    """The record a payload encodes. Raises ``ValueError`` if it is not one."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"payload is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError("payload is not a JSON object")
    if data.get("v") != PAYLOAD_VERSION:
        raise ValueError(f"unknown payload version {data.get('v')!r}")
    if set(data) != _PAYLOAD_KEYS:
        unexpected = sorted(set(data) - _PAYLOAD_KEYS)
        missing = sorted(_PAYLOAD_KEYS - set(data))
        raise ValueError(f"payload fields differ: unexpected {unexpected}, missing {missing}")
    if not isinstance(data["details"], dict):
        raise ValueError("payload details is not an object")
    return AuditRecord(
        record_id=data["record_id"],
        kind=data["kind"],
        ts_us=data["ts_us"],
        actor=data["actor"],
        team=data["team"],
        project=data["project"],
        client=data["client"],
        model=data["model"],
        provider=data["provider"],
        status=data["status"],
        input_tokens=data["input_tokens"],
        output_tokens=data["output_tokens"],
        cost_micro_usd=data["cost_micro_usd"],
        details=data["details"],
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
