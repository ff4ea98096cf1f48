"""Spend and usage, aggregated from the audit trail's request records.

The audit trail is the ledger: every request's tokens and cost are on its (hash-chained) record,
so spend reports cannot disagree with what the audit proves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import func, select

from passerelle.storage.db import Database
from passerelle.storage.tables import audit_log


class Dimension(StrEnum):
    USER = "user"
    TEAM = "team"
    PROJECT = "project"
    CLIENT = "client"
    MODEL = "model"
    PROVIDER = "provider"
    DAY = "day"


_COLUMNS = {
    Dimension.USER: audit_log.c.actor,
    Dimension.TEAM: audit_log.c.team,
    Dimension.PROJECT: audit_log.c.project,
    Dimension.CLIENT: audit_log.c.client,
    Dimension.MODEL: audit_log.c.model,
    Dimension.PROVIDER: audit_log.c.provider,
    Dimension.DAY: audit_log.c.day,
}


@dataclass(frozen=True, slots=True)
class SpendFilter:
    since_day: str | None = None
    until_day: str | None = None
    user: str | None = None
    team: str | None = None
    project: str | None = None
    client: str | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class SpendRow:
    group: dict[str, str | None]
    requests: int
    input_tokens: int
    output_tokens: int
    cost_micro_usd: int


def query_spend(db: Database, group_by: Sequence[Dimension], where: SpendFilter) -> list[SpendRow]:
    """Totals per group, most expensive first. Days are inclusive, UTC, ``YYYY-MM-DD``."""
    columns = [_COLUMNS[dim].label(dim.value) for dim in group_by]
    query = select(
        *columns,
        func.count().label("requests"),
        func.coalesce(func.sum(audit_log.c.input_tokens), 0).label("input_tokens"),
        func.coalesce(func.sum(audit_log.c.output_tokens), 0).label("output_tokens"),
        func.coalesce(func.sum(audit_log.c.cost_micro_usd), 0).label("cost"),
    ).where(audit_log.c.kind == "request")
    if where.since_day:
        query = query.where(audit_log.c.day >= where.since_day)
    if where.until_day:
        query = query.where(audit_log.c.day <= where.until_day)
    for dim, value in (
        (Dimension.USER, where.user),
        (Dimension.TEAM, where.team),
        (Dimension.PROJECT, where.project),
        (Dimension.CLIENT, where.client),
        (Dimension.MODEL, where.model),
    ):
        if value is not None:
            query = query.where(_COLUMNS[dim] == value)
    if columns:
        query = query.group_by(*[_COLUMNS[dim] for dim in group_by])
    query = query.order_by(func.coalesce(func.sum(audit_log.c.cost_micro_usd), 0).desc())
    with db.read() as conn:
        rows = conn.execute(query).all()
    return [
        SpendRow(
            group={dim.value: getattr(row, dim.value) for dim in group_by},
            requests=int(row.requests),
            input_tokens=int(row.input_tokens),
            output_tokens=int(row.output_tokens),
            cost_micro_usd=int(row.cost),
        )
        for row in rows
    ]


def format_usd(micro_usd: int) -> str:
    """Exact decimal rendering of micro-USD, e.g. 1234567 -> '1.234567'."""
    sign = "-" if micro_usd < 0 else ""
    units, micros = divmod(abs(micro_usd), 1_000_000)
    return f"{sign}{units}.{micros:06d}"


_BUDGET_COLUMNS = {
    "user": audit_log.c.actor,
    "team": audit_log.c.team,
    "project": audit_log.c.project,
    "client": audit_log.c.client,
}


def spent_micro_usd(db: Database, scope: str, name: str, since_day: str, until_day: str) -> int:
    """What the audit trail says one budget's scope spent between two UTC days (inclusive):
    where a budget counter starts when its period begins, an instance restarts or Redis lost it.

    A key's spend is found through the key prefix the record's payload carries (canonical JSON,
    so the match is exact); the day index bounds that scan to the period."""
    query = select(func.coalesce(func.sum(audit_log.c.cost_micro_usd), 0)).where(
        audit_log.c.kind == "request",
        audit_log.c.day >= since_day,
        audit_log.c.day <= until_day,
    )
    if scope == "key":
        needle = orjson.dumps({"key_prefix": name}).decode()[1:-1]
        query = query.where(audit_log.c.payload.contains(needle, autoescape=True))
    else:
        query = query.where(_BUDGET_COLUMNS[scope] == name)
    with db.read() as conn:
        return int(conn.execute(query).scalar_one())


def budget_alerts(
    db: Database, *, since_day: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Budget alerts (soft thresholds crossed, caps reached), newest first, from the audit trail
    where the gateway records each one as an administrative event."""
    query = (
        select(audit_log.c.record_id, audit_log.c.ts, audit_log.c.payload)
        .where(
            audit_log.c.kind == "admin",
            audit_log.c.payload.contains('"action":"budget.', autoescape=True),
        )
        .order_by(audit_log.c.seq.desc())
        .limit(limit)
    )
    if since_day:
        query = query.where(audit_log.c.day >= since_day)
    with db.read() as conn:
        rows = conn.execute(query).all()
    out: list[dict[str, Any]] = []
    for row in rows:
        details = orjson.loads(row.payload).get("details", {})
        out.append(
            {
                "id": row.record_id,
                "ts_us": row.ts,
                "level": details.get("action", "")[7:],
                **{k: v for k, v in details.items() if k not in ("action", "target")},
            }
        )
    return out
