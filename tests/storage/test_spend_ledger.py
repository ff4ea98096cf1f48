"""Where budget counters start: what the audit trail says each scope spent in a period, on
SQLite and PostgreSQL alike."""

from __future__ import annotations

import datetime as dt

from passerelle.audit.records import AuditRecord
from passerelle.audit.writer import append_now
from passerelle.storage.db import Database
from passerelle.storage.spend import spent_micro_usd


def record(
    n: int, day: str, cost: int, *, key: str, user: str, kind: str = "request"
) -> AuditRecord:
    ts = int(dt.datetime.fromisoformat(f"{day}T12:00:00+00:00").timestamp() * 1_000_000) + n
    return AuditRecord(
        record_id=f"req_{n}",
        kind=kind,  # type: ignore[arg-type]
        ts_us=ts,
        actor=user,
        team="web",
        project="alpha",
        client="acme",
        model="chat",
        provider="up",
        status=200,
        cost_micro_usd=cost,
        details={"key_prefix": key, "note": 'a "quoted" value and a % sign'},
    )


def test_spend_per_scope_and_period_comes_from_the_trail(db: Database) -> None:
    append_now(
        db,
        [
            record(1, "2026-11-02", 100, key="pk_aaa", user="ana@acme.test"),
            record(2, "2026-11-29", 250, key="pk_aaa", user="ana@acme.test"),
            record(3, "2026-11-29", 40, key="pk_aaab", user="bob@acme.test"),  # prefix of none
            record(4, "2026-10-31", 999, key="pk_aaa", user="ana@acme.test"),  # other month
            record(5, "2026-11-29", 7, key="pk_a%", user="eve@acme.test"),  # LIKE wildcard
        ],
    )
    month = ("2026-11-01", "2026-11-30")
    assert spent_micro_usd(db, "key", "pk_aaa", *month) == 350
    assert spent_micro_usd(db, "key", "pk_aaab", *month) == 40
    assert spent_micro_usd(db, "key", "pk_a%", *month) == 7  # not every key starting pk_a
    assert spent_micro_usd(db, "key", "pk_a", *month) == 0
    assert spent_micro_usd(db, "user", "ana@acme.test", "2026-11-29", "2026-11-29") == 250
    assert spent_micro_usd(db, "team", "web", *month) == 397
    assert spent_micro_usd(db, "project", "alpha", "2026-10-01", "2026-11-30") == 1396
    assert spent_micro_usd(db, "client", "globex", *month) == 0
