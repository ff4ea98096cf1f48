"""Reading the audit trail out, page by page, for ``passerelle audit export`` (JSON lines).

Each exported record is its payload's fields plus ``seq``, ``prev_hash`` and ``hash``. The
payload's canonical bytes are ``orjson.dumps(fields, option=OPT_SORT_KEYS)`` of the payload
fields, so anyone holding an export (and, for a keyed chain, the key) can recompute the hashes
with :func:`passerelle.audit.chain.link_hash` and check it without access to the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from sqlalchemy import select

from passerelle.storage.db import Database
from passerelle.storage.tables import audit_log


def iter_records(
    db: Database,
    *,
    since_us: int | None = None,
    until_us: int | None = None,
    kind: str | None = None,
    project: str | None = None,
    page_size: int = 1_000,
) -> Iterator[dict[str, Any]]:
    """Records in ``seq`` order with ``since_us <= ts < until_us``, of ``kind`` and ``project``
    when given.

    Memory stays flat whatever the trail's size: rows are read ``page_size`` at a time, each page
    in a short read, so a slow consumer holds no transaction open."""
    query = select(audit_log.c.seq, audit_log.c.payload, audit_log.c.prev_hash, audit_log.c.hash)
    if since_us is not None:
        query = query.where(audit_log.c.ts >= since_us)
    if until_us is not None:
        query = query.where(audit_log.c.ts < until_us)
    if kind is not None:
        query = query.where(audit_log.c.kind == kind)
    if project is not None:
        query = query.where(audit_log.c.project == project)
    after: int | None = None
    while True:
        page = query if after is None else query.where(audit_log.c.seq > after)
        with db.read() as conn:
            rows = conn.execute(page.order_by(audit_log.c.seq).limit(page_size)).all()
        for row in rows:
            record = _fields(row.payload)
            record["seq"] = int(row.seq)
            record["prev_hash"] = row.prev_hash
            record["hash"] = row.hash
            yield record
        if len(rows) < page_size:
            return
        after = int(rows[-1].seq)


def _fields(payload: str) -> dict[str, Any]:
    # A payload edited into something that is not a record is exported as it stands, flagged,
    # rather than stopping the export: ``audit verify`` is where it gets explained.
    try:
        fields = orjson.loads(payload)
    except orjson.JSONDecodeError:
        fields = None
    if isinstance(fields, dict):
        return fields
    return {"unreadable_payload": payload}
