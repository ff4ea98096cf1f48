"""Appending records to the chain: the one transaction every writer goes through.

The background writer's batches, spool recovery and the command line's administrative actions all
call :func:`append_batch`, so there is a single definition of how a record becomes a row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from passerelle.audit.chain import GENESIS_HASH, link_hash
from passerelle.audit.records import AuditRecord
from passerelle.errors import AuditIntegrityError, StorageError
from passerelle.storage.db import Database, upsert
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


# The insert, written once per paramstyle: the writer runs it for every batch, and going through
# the driver's cursor costs a fraction of building and compiling a statement each time.
_COLUMNS = (
    "seq",
    "record_id",
    "kind",
    "ts",
    "day",
    "actor",
    "team",
    "project",
    "client",
    "model",
    "provider",
    "status",
    "input_tokens",
    "output_tokens",
    "cost_micro_usd",
    "payload",
    "prev_hash",
    "hash",
)


_HEAD = "SELECT seq, hash FROM audit_head WHERE id = 1"
_HEAD_FOR_UPDATE = "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE"


def _insert_sql(marker: str) -> str:
    columns = ", ".join(_COLUMNS)
    placeholders = ", ".join([marker] * len(_COLUMNS))
    return f"INSERT INTO audit_log ({columns}) VALUES ({placeholders})"  # noqa: S608 - constants only


def _row(record: AuditRecord, seq: int, payload: bytes, prev: str, digest: str) -> tuple[Any, ...]:
    return (
        seq,
        record.record_id,
        record.kind,
        record.ts_us,
        record.day,
        _fit(record.actor, _WIDTHS["actor"]),
        _fit(record.team, _WIDTHS["team"]),
        _fit(record.project, _WIDTHS["project"]),
        _fit(record.client, _WIDTHS["client"]),
        _fit(record.model, _WIDTHS["model"]),
        _fit(record.provider, _WIDTHS["provider"]),
        record.status,
        record.input_tokens,
        record.output_tokens,
        record.cost_micro_usd,
        payload.decode("utf-8"),
        prev,
        digest,
    )


def append_batch(
    db: Database, items: Sequence[Item], key: bytes | None, *, dedupe: bool = True
) -> AppendResult:
    """Append ``items`` in one transaction, in order, skipping record ids already in the trail.

    The head row is locked first (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN
    IMMEDIATE`` already holds the database's write lock), so writers in several processes or on
    several machines take turns and the chain stays a single line. Skipping known ids makes
    retries and spool recovery idempotent: a batch whose commit succeeded but whose
    acknowledgement was lost can be sent again.

    ``dedupe=False`` skips that lookup for records that cannot be in the trail yet (a live
    writer's first attempt at a batch of fresh ids); the unique index on ``record_id`` still
    refuses a duplicate, which fails the batch, and the retry runs with ``dedupe=True``."""
    with db.begin() as conn:
        seq, prev = _lock_head(conn)
        known = _existing_ids(conn, [record.record_id for record, _ in items]) if dedupe else set()
        rows: list[tuple[Any, ...]] = []
        skipped = 0
        for record, payload in items:
            if record.record_id in known:
                skipped += 1
                continue
            known.add(record.record_id)
            seq += 1
            digest = link_hash(prev, seq, payload, key)
            rows.append(_row(record, seq, payload, prev, digest))
            prev = digest
        if rows:
            marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
            with _cursor(conn) as cursor:
                cursor.executemany(_insert_sql(marker), rows)
                cursor.execute(
                    f"UPDATE audit_head SET seq = {marker}, hash = {marker} WHERE id = 1",  # noqa: S608
                    (seq, prev),
                )
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
    # The common case, through the driver: the head exists and the chain has started.
    with _cursor(conn) as cursor:
        cursor.execute(_HEAD_FOR_UPDATE if postgres else _HEAD)
        found = cursor.fetchone()
    if found is not None and int(found[0]) > 0:
        return int(found[0]), str(found[1])
    query = select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
    if postgres:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        # The first append creates the head. Two first writers may race here: the loser's
        # insert waits for the winner's commit, then does nothing, and both lock the same row.
        conn.execute(
            upsert(audit_head, sqlite=not postgres)
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


@contextmanager
def _cursor(conn: Connection) -> Iterator[Any]:
    """A driver cursor inside ``conn``'s transaction; driver errors become StorageError, worded
    like the engine's, without the statement or its values."""
    driver_error: type[Exception] = conn.dialect.loaded_dbapi.Error
    cursor = conn.connection.cursor()
    try:
        yield cursor
    except driver_error as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise StorageError(
            f"cannot append to the audit trail: {type(exc).__name__}: {first}"
        ) from exc
    finally:
        cursor.close()


def _fit(value: str | None, width: int) -> str | None:
    if value is None or width <= 0 or len(value) <= width:
        return value
    return value[: width - 1] + "…"
