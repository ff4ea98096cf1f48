"""The background writer: group commit, several writers on one chain, no database call on submit,
and no record lost while the database is away."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import delete, event, select

from passerelle.audit.records import AuditRecord
from passerelle.audit.verify import verify_chain
from passerelle.audit.writer import AuditWriter, append_now, recover_spools
from passerelle.errors import AuditIntegrityError
from passerelle.storage.db import Database
from passerelle.storage.tables import audit_head, audit_log

MakeRecord = Callable[..., AuditRecord]
MakeWriter = Callable[..., AuditWriter]
KEY = b"audit-key-for-tests"


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def make_writer(spool_dir: Path) -> Iterator[MakeWriter]:
    started: list[AuditWriter] = []

    def make(db: Database, **options: Any) -> AuditWriter:
        writer = AuditWriter(db, spool_dir, key=KEY, **options)
        writer.start()
        started.append(writer)
        return writer

    yield make
    for writer in started:
        writer.close(5.0)


def seqs(db: Database) -> list[int]:
    with db.read() as conn:
        return list(conn.execute(select(audit_log.c.seq).order_by(audit_log.c.seq)).scalars())


def spool_lines(spool_dir: Path) -> int:
    return sum(path.read_bytes().count(b"\n") for path in spool_dir.glob("*.spool"))


def test_records_are_committed_and_chained(
    audit_db: Database, make_writer: MakeWriter, make_record: MakeRecord, spool_dir: Path
) -> None:
    writer = make_writer(audit_db)
    for n in range(1, 21):
        writer.submit(make_record(n))
    assert writer.flush(10.0)
    assert writer.submitted == writer.committed == 20 and writer.queue_depth == 0
    assert seqs(audit_db) == list(range(1, 21))
    assert verify_chain(audit_db, KEY).ok
    # Everything is committed, so the spool is empty, and gone once the writer stops.
    assert spool_lines(spool_dir) == 0
    assert writer.close(5.0)
    assert not list(spool_dir.glob("*.spool"))
    with pytest.raises(RuntimeError, match="not running"):
        writer.submit(make_record(21))


def test_group_commit_batches_records(
    audit_db: Database, make_writer: MakeWriter, make_record: MakeRecord
) -> None:
    commits: list[int] = []

    def count(conn: Any) -> None:
        commits.append(1)

    event.listen(audit_db.engine, "commit", count)
    try:
        writer = make_writer(audit_db)
        for n in range(1, 1001):
            writer.submit(make_record(n))
        assert writer.flush(30.0)
    finally:
        event.remove(audit_db.engine, "commit", count)
    assert writer.committed == 1000
    # A thousand records, a handful of transactions.
    assert writer.batches == len(commits) < 100
    assert 0 < writer.last_batch_size <= writer.batch_max
    assert verify_chain(audit_db, KEY).checked == 1000


def test_submit_makes_no_database_call(
    audit_db: Database, make_writer: MakeWriter, make_record: MakeRecord, spool_dir: Path
) -> None:
    append_now(audit_db, [make_record(0)], key=KEY)
    writer_db = Database(audit_db.url)
    statements_on_caller: list[str] = []
    caller = threading.get_ident()

    def watch(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if threading.get_ident() == caller:
            statements_on_caller.append(statement)

    try:
        writer = make_writer(writer_db)  # start() reads the trail; submit() must not
        event.listen(writer_db.engine, "before_cursor_execute", watch)
        # Hold the chain's write lock: a submit that touched the database would wait here.
        with audit_db.begin() as conn:
            conn.execute(select(audit_head).with_for_update())
            for n in range(1, 51):
                writer.submit(make_record(n))
            assert writer.queue_depth == 50
            assert spool_lines(spool_dir) == 50  # durable before any commit
            assert statements_on_caller == []
        assert writer.flush(20.0)
        assert statements_on_caller == []
        assert writer.close(5.0)
    finally:
        writer_db.dispose()
    report = verify_chain(audit_db, KEY)
    assert report.ok and report.checked == 51


def test_spool_moves_to_a_new_segment_when_the_queue_never_drains(
    audit_db: Database, make_writer: MakeWriter, make_record: MakeRecord, spool_dir: Path
) -> None:
    append_now(audit_db, [make_record(0)], key=KEY)
    writer = make_writer(audit_db, batch_max=10, segment_bytes=2_000)
    with audit_db.begin() as conn:
        conn.execute(select(audit_head).with_for_update())  # commits wait: the queue fills up
        for n in range(1, 301):
            writer.submit(make_record(n))
    assert writer.flush(20.0)
    assert writer.spool_segments > 1
    # The old segments are gone once committed; the current one is empty.
    (current,) = spool_dir.glob("*.spool")
    assert current.stat().st_size == 0
    report = verify_chain(audit_db, KEY)
    assert report.ok and report.checked == 301


def test_two_writers_share_one_chain(
    audit_db: Database, make_record: MakeRecord, tmp_path: Path
) -> None:
    # Two gateway instances: separate engines, separate spool directories, one database.
    databases = [Database(audit_db.url), Database(audit_db.url)]
    writers = [
        AuditWriter(db, tmp_path / f"instance{i}", key=KEY, linger_ms=0.5)
        for i, db in enumerate(databases)
    ]
    try:
        for writer in writers:
            writer.start()

        def produce(writer: AuditWriter, first: int) -> None:
            for n in range(first, first + 300):
                writer.submit(make_record(n))

        threads = [
            threading.Thread(target=produce, args=(writer, 1 + 1000 * i))
            for i, writer in enumerate(writers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(writer.flush(20.0) for writer in writers)
        assert all(writer.close(5.0) for writer in writers)
    finally:
        for db in databases:
            db.dispose()
    assert sum(writer.batches for writer in writers) >= 2
    assert sum(writer.errors for writer in writers) == 0  # they take turns; nobody fails
    assert seqs(audit_db) == list(range(1, 601))
    report = verify_chain(audit_db, KEY)
    assert report.ok and report.checked == 600


def test_aflush_waits_without_blocking_the_loop(
    audit_db: Database, make_writer: MakeWriter, make_record: MakeRecord
) -> None:
    writer = make_writer(audit_db, linger_ms=50.0)

    async def main() -> tuple[bool, int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        ticker = asyncio.create_task(tick())
        for n in range(1, 11):
            writer.submit(make_record(n))
        async with asyncio.timeout(10):
            done = await writer.aflush()
        ticker.cancel()
        return done, ticks

    done, ticks = asyncio.run(main())
    assert done and writer.committed == 10
    assert ticks > 0  # the loop kept running while the writer committed


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


class PostgresOutage:
    """Refuse every connection to one database, as if its server had gone away."""

    def __init__(self, url: str) -> None:
        self.name = url.rsplit("/", 1)[1]
        self.admin = psycopg.connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True
        )

    def begin(self) -> None:
        self.admin.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false')
        self.admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (self.name,),
        )

    def end(self) -> None:
        self.admin.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')

    def close(self) -> None:
        self.end()
        self.admin.close()


@pytest.mark.postgres
def test_database_outage_loses_nothing(
    postgres_url: str, make_writer: MakeWriter, make_record: MakeRecord, spool_dir: Path
) -> None:
    db = Database(postgres_url)
    db.migrate()
    outage = PostgresOutage(postgres_url)
    try:
        writer = make_writer(db)
        writer.submit(make_record(1))
        assert writer.flush(10.0)
        outage.begin()
        for n in range(2, 12):
            writer.submit(make_record(n))  # the request path does not notice
        _wait_for(lambda: writer.errors > 0)
        assert writer.queue_depth == 10 and spool_lines(spool_dir) == 10
        assert writer.last_error is not None and "accepting connections" in writer.last_error
        outage.end()
        assert writer.flush(20.0)
        assert writer.committed == 11
    finally:
        outage.close()
        db.dispose()
    db = Database(postgres_url)
    try:
        report = verify_chain(db, KEY)
        assert report.ok and report.checked == 11
    finally:
        db.dispose()


@pytest.mark.postgres
def test_writer_stopped_during_an_outage_leaves_a_spool_to_recover(
    postgres_url: str, make_record: MakeRecord, spool_dir: Path
) -> None:
    db = Database(postgres_url)
    db.migrate()
    outage = PostgresOutage(postgres_url)
    try:
        writer = AuditWriter(db, spool_dir, key=KEY)
        writer.start()
        outage.begin()
        for n in range(1, 6):
            writer.submit(make_record(n))
        _wait_for(lambda: writer.errors > 0)
        assert not writer.close(0.2)  # cannot commit: says so, keeps the spool
        assert spool_lines(spool_dir) == 5
        outage.end()
        assert recover_spools(db, spool_dir, KEY) == 5
        assert not list(spool_dir.glob("*.spool"))
        report = verify_chain(db, KEY)
        assert report.ok and report.checked == 5
    finally:
        outage.close()
        db.dispose()


def test_submit_requires_a_started_writer(audit_db: Database, make_record: MakeRecord) -> None:
    writer = AuditWriter(audit_db, Path("unused"))
    with pytest.raises(RuntimeError, match="not running"):
        writer.submit(make_record(1))
    assert writer.close(1.0)


def test_a_writer_with_the_wrong_key_refuses_to_start(
    audit_db: Database, make_record: MakeRecord, spool_dir: Path
) -> None:
    append_now(audit_db, [make_record(1), make_record(2)], key=None)
    with pytest.raises(AuditIntegrityError, match="written without a key"):
        AuditWriter(audit_db, spool_dir, key=KEY).start()
    append_now(audit_db, [make_record(3)], key=None)  # the right choice still works
    with audit_db.begin() as conn:
        conn.execute(delete(audit_log))
        conn.execute(delete(audit_head))
    append_now(audit_db, [make_record(1)], key=KEY)
    with pytest.raises(AuditIntegrityError, match="wrong"):
        AuditWriter(audit_db, spool_dir, key=b"another key").start()
    with pytest.raises(AuditIntegrityError, match="keyed"):
        AuditWriter(audit_db, spool_dir, key=None).start()
