"""Records to audit and an empty trail, for the audit tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import delete

from passerelle.audit.records import AuditRecord
from passerelle.storage.db import Database
from passerelle.storage.tables import audit_head, audit_log

# 2026-11-22T12:00:00Z
NOON_US = 1_795_348_800_000_000

MakeRecord = Callable[..., AuditRecord]


def request_record(n: int, **overrides: Any) -> AuditRecord:
    fields: dict[str, Any] = {
        "record_id": f"req_{n:06d}",
        "kind": "request",
        "ts_us": NOON_US + n,
        "actor": "ada@acme.test",
        "team": "web",
        "project": "alpha" if n % 2 else "beta",
        "client": "acme",
        "model": "chat",
        "provider": "primary",
        "status": 200,
        "input_tokens": 100 + n,
        "output_tokens": 50 + n,
        "cost_micro_usd": 1_000 + n,
        "details": {"route_model": "gpt-4o-mini", "latency_ms": 12.5, "attempts": [{"n": n}]},
    }
    fields.update(overrides)
    return AuditRecord(**fields)


@pytest.fixture
def make_record() -> MakeRecord:
    return request_record


@pytest.fixture
def audit_db(module_db: Database) -> Database:
    """The module's shared database (SQLite, then PostgreSQL) with an empty audit trail."""
    with module_db.begin() as conn:
        conn.execute(delete(audit_log))
        conn.execute(delete(audit_head))
    return module_db
