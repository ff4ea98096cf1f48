"""Spool recovery: records of a writer killed before it could commit reach the chain."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from passerelle.audit.records import AuditRecord, canonical_payload
from passerelle.audit.verify import verify_chain
from passerelle.audit.writer import AuditWriter, append_now, recover_spools
from passerelle.errors import AuditIntegrityError
from passerelle.storage.db import Database
from passerelle.storage.tables import audit_log

MakeRecord = Callable[..., AuditRecord]
KEY = b"audit-key-for-tests"

# A gateway that spools five records, commits the first three, and is SIGKILLed right after the
# last submit returns. The writer lingers for an hour, so the last two cannot have been committed.
CHILD = """
import os, signal, sys
from pathlib import Path
from passerelle.audit.records import AuditRecord
from passerelle.audit.writer import AuditWriter
from passerelle.storage.db import Database

writer = AuditWriter(
    Database(sys.argv[1]), Path(sys.argv[2]), key=sys.argv[3].encode(), linger_ms=3_600_000
)
writer.start()

def record(n):
    return AuditRecord(
        record_id=f"req_child_{n}", kind="request", ts_us=1_795_348_800_000_000 + n,
        actor="ada@acme.test", team=None, project="alpha", client=None, model="chat",
        provider="primary", status=200, input_tokens=n, output_tokens=n, cost_micro_usd=n,
    )

for n in range(3):
    writer.submit(record(n))
assert writer.flush(30)
for n in range(3, 5):
    writer.submit(record(n))
os.kill(os.getpid(), signal.SIGKILL)
"""


def count(db: Database) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(audit_log)).scalar_one())


def write_spool(path: Path, records: list[AuditRecord], tail: bytes = b"") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(canonical_payload(r) + b"\n" for r in records) + tail)


@pytest.mark.slow
def test_records_of_a_killed_writer_are_recovered(audit_db: Database, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    child = subprocess.run(
        [sys.executable, "-c", CHILD, audit_db.url, str(spool_dir), KEY.decode()],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    assert count(audit_db) == 3
    (spool,) = spool_dir.glob("*.spool")
    assert spool.read_bytes().count(b"\n") == 2  # truncated after the commit, then two more

    assert recover_spools(audit_db, spool_dir, KEY) == 2
    assert not list(spool_dir.glob("*.spool"))
    report = verify_chain(audit_db, KEY)
    assert report.ok and report.checked == 5


def test_torn_last_line_is_skipped(
    audit_db: Database, make_record: MakeRecord, tmp_path: Path
) -> None:
    spool = tmp_path / "audit-dead.spool"
    write_spool(spool, [make_record(n) for n in range(1, 4)], tail=b'{"v":1,"record_id":"req_9')
    assert recover_spools(audit_db, tmp_path, KEY) == 3
    assert not spool.exists()
    report = verify_chain(audit_db, KEY)
    assert report.ok and report.checked == 3


def test_recovery_is_idempotent(
    audit_db: Database, make_record: MakeRecord, tmp_path: Path
) -> None:
    # The writer committed 1 and 2, then died before truncating its spool.
    append_now(audit_db, [make_record(1), make_record(2)], key=KEY)
    write_spool(tmp_path / "audit-dead.spool", [make_record(n) for n in (1, 2, 3)])
    assert recover_spools(audit_db, tmp_path, KEY) == 1
    assert recover_spools(audit_db, tmp_path, KEY) == 0
    report = verify_chain(audit_db, KEY)
    assert report.ok and report.checked == 3


def test_a_live_writers_spool_is_left_alone(
    audit_db: Database, make_record: MakeRecord, tmp_path: Path
) -> None:
    writer = AuditWriter(audit_db, tmp_path, key=KEY, linger_ms=3_600_000)
    writer.start()
    try:
        for n in range(1, 4):
            writer.submit(make_record(n))
        assert recover_spools(audit_db, tmp_path, KEY) == 0
        (spool,) = tmp_path.glob("*.spool")
        assert spool.read_bytes().count(b"\n") == 3
        assert count(audit_db) == 0
        assert writer.flush(10.0)  # a flush does not wait for the linger
    finally:
        assert writer.close(5.0)
    assert not list(tmp_path.glob("*.spool"))
    assert verify_chain(audit_db, KEY).checked == 3


def test_start_recovers_orphan_spools_first(
    audit_db: Database, make_record: MakeRecord, tmp_path: Path
) -> None:
    write_spool(tmp_path / "audit-dead.spool", [make_record(1), make_record(2)])
    writer = AuditWriter(audit_db, tmp_path, key=KEY)
    writer.start()
    try:
        assert count(audit_db) == 2
        writer.submit(make_record(3))
        assert writer.flush(10.0)
    finally:
        writer.close(5.0)
    assert [p.name for p in tmp_path.iterdir()] == []
    report = verify_chain(audit_db, KEY)
    assert report.ok and report.checked == 3


def test_segments_are_recovered_in_the_order_they_were_written(
    audit_db: Database, make_record: MakeRecord, tmp_path: Path
) -> None:
    write_spool(tmp_path / "audit-0badc0ffee-00000001.spool", [make_record(3), make_record(4)])
    write_spool(tmp_path / "audit-0badc0ffee-00000000.spool", [make_record(1), make_record(2)])
    assert recover_spools(audit_db, tmp_path, KEY) == 4
    with audit_db.read() as conn:
        ids = conn.execute(select(audit_log.c.record_id).order_by(audit_log.c.seq)).scalars()
        assert list(ids) == [f"req_{n:06d}" for n in range(1, 5)]


def test_recovery_without_the_key_of_a_keyed_trail_is_refused(
    audit_db: Database, make_record: MakeRecord, tmp_path: Path
) -> None:
    append_now(audit_db, [make_record(1)], key=KEY)
    spool = tmp_path / "audit-dead-00000000.spool"
    write_spool(spool, [make_record(2)])
    with pytest.raises(AuditIntegrityError, match="keyed"):
        recover_spools(audit_db, tmp_path, None)
    assert spool.exists() and count(audit_db) == 1
    assert recover_spools(audit_db, tmp_path, KEY) == 1
    assert verify_chain(audit_db, KEY).ok
