"""Export: filtered, paged, and checkable without the database."""

from __future__ import annotations

from collections.abc import Callable

import orjson
from sqlalchemy import update

from passerelle.audit.chain import GENESIS_HASH, link_hash
from passerelle.audit.export import iter_records
from passerelle.audit.records import AuditRecord, from_payload
from passerelle.audit.writer import append_now
from passerelle.storage.db import Database
from passerelle.storage.tables import audit_log

MakeRecord = Callable[..., AuditRecord]
KEY = b"audit-key-for-tests"
HOUR_US = 3_600_000_000


def test_export_filters_and_pages(audit_db: Database, make_record: MakeRecord) -> None:
    records = [make_record(n, ts_us=make_record(n).ts_us + n * HOUR_US) for n in range(1, 11)]
    records.append(make_record(11, kind="admin", project=None, details={"action": "key.revoke"}))
    append_now(audit_db, records, key=KEY)

    everything = list(iter_records(audit_db, page_size=3))
    assert [r["seq"] for r in everything] == list(range(1, 12))
    first = everything[0]
    assert first["record_id"] == "req_000001" and first["prev_hash"] == GENESIS_HASH
    assert first["details"]["route_model"] == "gpt-4o-mini"

    since, until = records[2].ts_us, records[5].ts_us  # records 3, 4, 5 (until is exclusive)
    window = list(iter_records(audit_db, since_us=since, until_us=until, kind="request"))
    assert [r["record_id"] for r in window] == ["req_000003", "req_000004", "req_000005"]
    alpha = list(iter_records(audit_db, project="alpha", page_size=2))
    assert [r["record_id"] for r in alpha] == [f"req_{n:06d}" for n in (1, 3, 5, 7, 9)]
    admin = list(iter_records(audit_db, kind="admin"))
    assert [r["details"]["action"] for r in admin] == ["key.revoke"]


def test_an_export_verifies_offline(audit_db: Database, make_record: MakeRecord) -> None:
    append_now(audit_db, [make_record(n) for n in range(1, 6)], key=KEY)
    lines = [orjson.dumps(r) for r in iter_records(audit_db)]

    prev = GENESIS_HASH
    for line in lines:
        exported = orjson.loads(line)
        seq, prev_hash, digest = (
            exported.pop("seq"),
            exported.pop("prev_hash"),
            exported.pop("hash"),
        )
        payload = orjson.dumps(exported, option=orjson.OPT_SORT_KEYS)
        from_payload(payload)  # still a record
        assert prev_hash == prev
        assert link_hash(prev_hash, seq, payload, KEY) == digest
        prev = digest


def test_a_mangled_payload_does_not_stop_the_export(
    audit_db: Database, make_record: MakeRecord
) -> None:
    append_now(audit_db, [make_record(1), make_record(2)], key=KEY)
    with audit_db.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == 1).values(payload="oops"))
    exported = list(iter_records(audit_db))
    assert exported[0]["unreadable_payload"] == "oops"
    assert exported[1]["record_id"] == "req_000002"
