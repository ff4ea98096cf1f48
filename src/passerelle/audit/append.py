"""Appending records to the chain: the one transaction every writer goes through.

The background writer's batches, spool recovery and the command line's administrative actions all
call :func:`append_batch`, so there is a single definition of how a record becomes a row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from passerelle.audit.chain import GENESIS_HASH, link_hash
from passerelle.audit.records import AuditRecord
from passerelle.errors import AuditIntegrityError
from passerelle.storage.db import Database
from passerelle.storage.tables import audit_head, audit_log

#: A record with its canonical payload, computed once by whoever produced it.
Item = tuple[AuditRecord, bytes]

# Bound parameters per ``IN (...)`` lookup; old SQLite builds accept at most 999.
_LOOKUP_CHUNK = 500
# Records read to tell whether the key matches the trail.
_KEY_CHECK_ROWS = 8

# Text columns copied from the payload, with their width. A longer value (a model name typed by a
# caller, say) is cut in the column, marked with an ellipsis; the payload keeps it whole.
_WIDTHS: dict[str, int] = {
    name: int(getattr(audit_log.c[name].type, "length", 0) or 0)
    for name in ("actor", "team", "project", "client", "model", "provider")
}


@dataclass(frozen=True, slots=True)
class AppendResult:
    inserted: int
    skipped: int
    last_seq: int


def column_values(record: AuditRecord) -> dict[str, Any]:
    """The queryable columns of ``record``'s row, as stored and as ``audit verify`` expects them."""
    return {
        "record_id": record.record_id,
        "kind": record.kind,
        "ts": record.ts_us,
        "day": record.day,
        "actor": _fit(record.actor, _WIDTHS["actor"]),
        "team": _fit(record.team, _WIDTHS["team"]),
        "project": _fit(record.project, _WIDTHS["project"]),
        "client": _fit(record.client, _WIDTHS["client"]),
        "model": _fit(record.model, _WIDTHS["model"]),
        "provider": _fit(record.provider, _WIDTHS["provider"]),
        "status": record.status,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "cost_micro_usd": record.cost_micro_usd,
    }


def append_batch(db: Database, items: Sequence[Item], key: bytes | None) -> AppendResult:
    """Append ``items`` in one transaction, in order, skipping record ids already in the trail.

    The head row is locked first (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN
    IMMEDIATE`` already holds the database's write lock), so writers in several processes or on
    several machines take turns and the chain stays a single line. Skipping known ids makes
    retries and spool recovery idempotent: a batch whose commit succeeded but whose
    acknowledgement was lost can be sent again."""
    with db.begin() as conn:
        seq, prev = _lock_head(conn)
        known = _existing_ids(conn, [record.record_id for record, _ in items])
        rows: list[dict[str, Any]] = []
        skipped = 0
        for record, payload in items:
            if record.record_id in known:
                skipped += 1
                continue
            known.add(record.record_id)
            seq += 1
            digest = link_hash(prev, seq, payload, key)
            rows.append(
                {
                    "seq": seq,
                    **column_values(record),
                    "payload": payload.decode("utf-8"),
                    "prev_hash": prev,
                    "hash": digest,
                }
            )
            prev = digest
        if rows:
            conn.execute(insert(audit_log), rows)
            conn.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=seq, hash=prev))
    return AppendResult(inserted=len(rows), skipped=skipped, last_seq=seq)


def check_key(db: Database, key: bytes | None) -> None:
    """Refuse to append with a key the trail was not written with.

    Appending with the wrong key (or with a key to a trail written without one, or the reverse)
    would add records that can never verify. The last few records tell: if none of them
    verifies with ``key``, the key is wrong, or every one of them was tampered with; either way
    a person has to look (``passerelle audit verify``) before more records are added."""
    with db.read() as conn:
        recent = conn.execute(
            select(audit_log.c.seq, audit_log.c.payload, audit_log.c.prev_hash, audit_log.c.hash)
            .order_by(audit_log.c.seq.desc())
            .limit(_KEY_CHECK_ROWS)
        ).all()
    if not recent or any(_verifies(row, key) for row in recent):
        return
    if key is not None and any(_verifies(row, None) for row in recent):
        raise AuditIntegrityError(
            "the audit trail was written without a key, but an audit key is configured; "
            "adding a key to an existing trail is not supported: remove audit.key, or start "
            "a new database"
        )
    if key is None:
        raise AuditIntegrityError(
            "the audit trail's last records do not verify without a key: the trail is keyed "
            "(the audit key is needed) or was tampered with (run `passerelle audit verify`)"
        )
    raise AuditIntegrityError(
        "the audit trail's last records do not verify with the configured audit key: the key "
        "is wrong, or the trail was tampered with (run `passerelle audit verify`)"
    )


def _verifies(row: Any, key: bytes | None) -> bool:
    try:
        digest = link_hash(row.prev_hash, int(row.seq), str(row.payload).encode("utf-8"), key)
    except ValueError:
        return False
    return bool(digest == row.hash)


def read_head(conn: Connection) -> tuple[int, str] | None:
    """The chain's head ``(seq, hash)``, or None when nothing was ever appended."""
    row = conn.execute(
        select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
    ).first()
    return None if row is None else (int(row.seq), str(row.hash))


def _lock_head(conn: Connection) -> tuple[int, str]:
    postgres = conn.dialect.name == "postgresql"
    query = select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
    if postgres:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        # The first append creates the head. Two first writers may race here: the loser's
        # insert waits for the winner's commit, then does nothing, and both lock the same row.
        maker = pg_insert if postgres else sqlite_insert
        conn.execute(
            maker(audit_head)
            .values(id=1, seq=0, hash=GENESIS_HASH)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        row = conn.execute(query).first()
        if row is None:
            raise AuditIntegrityError("the audit head row cannot be created")
    # Checked with the head locked, so a concurrent first append cannot be mistaken for it:
    # an empty head over existing records means the head was removed, and starting a second
    # chain over the first would hide that.
    if int(row.seq) == 0 and conn.execute(select(audit_log.c.seq).limit(1)).first() is not None:
        raise AuditIntegrityError(
            "the audit head row is missing but the audit log has records; refusing to append "
            "until `passerelle audit verify` has been run and the head restored"
        )
    return int(row.seq), str(row.hash)


def _existing_ids(conn: Connection, record_ids: list[str]) -> set[str]:
    found: set[str] = set()
    unique = list(dict.fromkeys(record_ids))
    for start in range(0, len(unique), _LOOKUP_CHUNK):
        chunk = unique[start : start + _LOOKUP_CHUNK]
        found.update(
            conn.execute(select(audit_log.c.record_id).where(audit_log.c.record_id.in_(chunk)))
            .scalars()
            .all()
        )
    return found


def _fit(value: str | None, width: int) -> str | None:
    if value is None or width <= 0 or len(value) <= width:
        return value
    return value[: width - 1] + "…"
