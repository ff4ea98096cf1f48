"""The database handle: one SQLAlchemy engine, SQLite tuned for one writer, migrations on open.

SQLite is the embedded default (no server to start); PostgreSQL is chosen by URL. Both get the
same schema through the same Alembic migrations.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from passerelle.errors import StorageError

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import Insert as PostgresInsert
    from sqlalchemy.dialects.sqlite import Insert as SqliteInsert

MIGRATIONS = Path(__file__).parent / "migrations"


def now_us() -> int:
    """Current time in integer microseconds since the epoch, the unit of every stored time."""
    return time.time_ns() // 1000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the single writer. NORMAL: a commit survives a process crash
    # (it is in the OS page cache); only a power loss can roll back the last transactions.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # Writers take the write lock at BEGIN so that two of them serialise instead of one failing
    # mid-transaction; readers take a plain BEGIN, a WAL snapshot that never waits for a writer.
    if conn.get_execution_options().get("passerelle_read"):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """An engine plus the few helpers every repository needs."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.url = url
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        try:
            if self.is_sqlite:
                if parsed.database and parsed.database != ":memory:":
                    Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
                engine = create_engine(url)
                event.listen(engine, "connect", _sqlite_pragmas)
                # pysqlite's own transaction handling is off so that BEGIN IMMEDIATE is ours.
                event.listen(
                    engine,
                    "connect",
                    lambda dbapi_conn, _rec: setattr(dbapi_conn, "isolation_level", None),
                )
                event.listen(engine, "begin", _sqlite_begin)
            else:
                if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in (
                    "",
                    "psycopg2",
                ):
                    parsed = parsed.set(drivername="postgresql+psycopg")
                engine = create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=10)
        except (SQLAlchemyError, ValueError, ImportError) as exc:
            raise StorageError(f"cannot open database {_safe_url(url)}: {exc}") from exc
        self.engine: Engine = engine

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection in a write transaction, committed on success."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StorageError(_describe(exc, self.url)) from exc

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reading."""
        try:
            with self.engine.connect().execution_options(passerelle_read=True) as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StorageError(_describe(exc, self.url)) from exc

    def migrate(self) -> None:
        """Bring the schema to the latest migration (no-op when already there)."""
        from passerelle.storage.migrate import upgrade

        upgrade(self)

    def dispose(self) -> None:
        self.engine.dispose()


def _safe_url(url: str) -> str:
    """The URL with any password hidden, fit for an error message."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ValueError, TypeError):
        return "<unparseable database URL>"


def _describe(exc: SQLAlchemyError, url: str) -> str:
    # The driver's own first line says what went wrong; statements and parameters are left out
    # because parameters may hold key hashes or personal data.
    orig = getattr(exc, "orig", None)
    detail = str(orig if orig is not None else exc).splitlines()[0] if str(exc) else ""
    return f"database error on {_safe_url(url)}: {exc.__class__.__name__}: {detail}"


def upsert(table: Table, *, sqlite: bool) -> SqliteInsert | PostgresInsert:
    """An ``INSERT`` that accepts ``ON CONFLICT`` clauses, in the dialect in use. The dialect
    packages are imported here, on first use: each costs tens of milliseconds of start-up and a
    process only ever talks to one of them."""
    if sqlite:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    from sqlalchemy.dialects.postgresql import insert as postgres_insert

    return postgres_insert(table)
