"""Every kind of tampering is detected and named, on SQLite and PostgreSQL, with and without a key.

The tampering is done the way an intruder with database access would: plain SQL on the tables.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, text, update

from passerelle.audit.append import column_values
from passerelle.audit.chain import link_hash
from passerelle.audit.records import AuditRecord, canonical_payload
from passerelle.audit.verify import VerifyReport, verify_chain
from passerelle.audit.writer import append_now
from passerelle.storage.db import Database
from passerelle.storage.tables import audit_head, audit_log

MakeRecord = Callable[..., AuditRecord]
KEY = b"audit-key-for-tests"
N = 8


# Where the key changes what an intruder can do, tests run with and without it.
both_keys = pytest.mark.parametrize("key", [None, KEY], ids=["sha256", "hmac"])


@pytest.fixture
def key() -> bytes | None:
    return KEY


@pytest.fixture
def chain(audit_db: Database, key: bytes | None, make_record: MakeRecord) -> Database:
    """A trail of N records, seq 1 to N."""
    assert append_now(audit_db, [make_record(n) for n in range(1, N + 1)], key=key) == N
    return audit_db


def found(report: VerifyReport) -> set[tuple[str, int | None]]:
    return {(p.kind, p.seq) for p in report.problems}


def row(db: Database, seq: int) -> Any:
    with db.read() as conn:
        return conn.execute(select(audit_log).where(audit_log.c.seq == seq)).one()


def move(db: Database, pairs: list[tuple[int, int]]) -> None:
    """Renumber rows (old seq -> new seq) in one transaction, through negative seqs so that the
    primary key never collides midway."""
    with db.begin() as conn:
        for old, _new in pairs:
            conn.execute(update(audit_log).where(audit_log.c.seq == old).values(seq=-old))
        for old, new in pairs:
            conn.execute(update(audit_log).where(audit_log.c.seq == -old).values(seq=new))


@both_keys
def test_an_intact_chain_verifies_in_pages(chain: Database, key: bytes | None) -> None:
    calls: list[tuple[int, int]] = []
    report = verify_chain(
        chain, key, progress=lambda done, total: calls.append((done, total)), page_size=3
    )
    assert report.ok, report.problems
    assert report.checked == N
    assert calls[-1] == (N, N) and len(calls) == 3
    assert report.head_seq == N and report.head_hash == row(chain, N).hash


def test_empty_trail_verifies(audit_db: Database) -> None:
    report = verify_chain(audit_db, None)
    assert report.ok and report.checked == 0


def test_modified_payload(chain: Database, key: bytes | None) -> None:
    payload = row(chain, 4).payload.replace('"cost_micro_usd":1004', '"cost_micro_usd":4')
    with chain.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == 4).values(payload=payload))
    report = verify_chain(chain, key)
    assert not report.ok
    assert ("modified", 4) in found(report)
    problem = next(p for p in report.problems if p.kind == "modified")
    assert problem.record_id == "req_000004"
    # The column still says 1004: it no longer agrees with the (edited) payload either.
    assert found(report) == {("modified", 4), ("column_mismatch", 4)}


def test_modified_column(chain: Database, key: bytes | None) -> None:
    with chain.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == 5).values(cost_micro_usd=1))
    report = verify_chain(chain, key)
    assert found(report) == {("column_mismatch", 5)}
    assert "cost_micro_usd is 1 in the column but 1005 in the payload" in report.problems[0].message


def test_deleted_middle_record(chain: Database, key: bytes | None) -> None:
    with chain.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.seq == 4))
    report = verify_chain(chain, key)
    assert found(report) == {("deleted", 4)}
    assert report.problems[0].record_id is None


def test_deleted_last_record(chain: Database, key: bytes | None) -> None:
    with chain.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.seq == N))
    report = verify_chain(chain, key)
    assert found(report) == {("deleted", N)}
    assert "head" in report.problems[0].message


def test_deleted_record_and_renumbered_the_rest(chain: Database, key: bytes | None) -> None:
    with chain.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.seq == 4))
    move(chain, [(seq, seq - 1) for seq in range(5, N + 1)])
    with chain.begin() as conn:
        conn.execute(update(audit_head).values(seq=N - 1))
    report = verify_chain(chain, key)
    # The head now names seq N-1 but carries the hash of the record written at seq N.
    assert found(report) == {("deleted", 4), ("renumbered", 4), ("head_mismatch", N - 1)}


@both_keys
def test_inserted_forged_record_with_renumbering(
    chain: Database, key: bytes | None, make_record: MakeRecord
) -> None:
    # The forger knows the format but not the key: the best it can do is a plain SHA-256 link,
    # which is valid when the chain has no key.
    move(chain, [(seq, seq + 1) for seq in range(N, 3, -1)])
    forged = make_record(99, cost_micro_usd=0)
    payload = canonical_payload(forged)
    prev = row(chain, 3).hash
    with chain.begin() as conn:
        conn.execute(
            insert(audit_log).values(
                seq=4,
                **column_values(forged),
                payload=payload.decode(),
                prev_hash=prev,
                hash=link_hash(prev, 4, payload, None),
            )
        )
    report = verify_chain(chain, key)
    assert found(report) == {("inserted", 4), ("renumbered", 5)}
    inserted = next(p for p in report.problems if p.kind == "inserted")
    assert inserted.record_id == "req_000099"
    renumbered = next(p for p in report.problems if p.kind == "renumbered")
    assert f"seqs 5 to {N + 1}" in renumbered.message and "1 record(s) were inserted" in (
        renumbered.message
    )


def test_appended_after_the_head(
    chain: Database, key: bytes | None, make_record: MakeRecord
) -> None:
    forged = make_record(99)
    payload = canonical_payload(forged)
    prev = row(chain, N).hash
    with chain.begin() as conn:
        conn.execute(
            insert(audit_log).values(
                seq=N + 1,
                **column_values(forged),
                payload=payload.decode(),
                prev_hash=prev,
                hash=link_hash(prev, N + 1, payload, key),
            )
        )
    report = verify_chain(chain, key)
    assert found(report) == {("inserted", N + 1)}


def test_swapped_adjacent_records(chain: Database, key: bytes | None) -> None:
    move(chain, [(3, 4), (4, 3)])
    report = verify_chain(chain, key)
    assert found(report) == {("reordered", 3), ("reordered", 4)}
    by_seq = {p.seq: p for p in report.problems}
    assert by_seq[3].record_id == "req_000004" and "written at seq 4" in by_seq[3].message
    assert by_seq[4].record_id == "req_000003" and "written at seq 3" in by_seq[4].message


@both_keys
def test_swapped_distant_records(chain: Database, key: bytes | None) -> None:
    move(chain, [(2, 8), (8, 2)])
    report = verify_chain(chain, key)
    assert found(report) == {("reordered", 2), ("reordered", 8)}


@both_keys
def test_rewritten_record_with_recomputed_hash(chain: Database, key: bytes | None) -> None:
    # Without the key, an intruder can make the edited record verify on its own; the next
    # record's link still gives it away. With a key, its hash is simply wrong.
    original = row(chain, 4)
    payload = original.payload.replace('"cost_micro_usd":1004', '"cost_micro_usd":4').encode()
    with chain.begin() as conn:
        conn.execute(
            update(audit_log)
            .where(audit_log.c.seq == 4)
            .values(
                payload=payload.decode(),
                cost_micro_usd=4,
                hash=link_hash(original.prev_hash, 4, payload, None),
            )
        )
    report = verify_chain(chain, key)
    assert found(report) == {("modified", 4)}


@both_keys
def test_wrong_or_missing_key(chain: Database, key: bytes | None) -> None:
    report = verify_chain(chain, b"not-the-key" if key else KEY)
    assert [(p.kind, p.seq) for p in report.problems] == [("key_mismatch", None)]
    if key:
        assert verify_chain(chain, None).problems[0].kind == "key_mismatch"


def test_missing_head(chain: Database, key: bytes | None) -> None:
    with chain.begin() as conn:
        conn.execute(delete(audit_head))
    assert found(verify_chain(chain, key)) == {("head_mismatch", None)}


def test_writer_refuses_to_start_a_second_chain(chain: Database, make_record: MakeRecord) -> None:
    from passerelle.errors import AuditIntegrityError

    with chain.begin() as conn:
        conn.execute(delete(audit_head))
    with pytest.raises(AuditIntegrityError, match="head row is missing"):
        append_now(chain, [make_record(100)])
    with chain.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar() == N
