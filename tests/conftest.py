"""Fixtures shared by every test package: a real database, SQLite and PostgreSQL alike.

``database_url`` runs a test once per backend: a fresh SQLite file, and a fresh PostgreSQL
database created for the test and dropped afterwards. Without a reachable PostgreSQL server the
PostgreSQL half is skipped locally and fails in CI (``CI=true``), so CI cannot silently test less.
Point ``PASSERELLE_TEST_POSTGRES_URL`` at another server's maintenance database to use it instead of
``postgresql://postgres@127.0.0.1:5432/test``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from passerelle.storage.db import Database
from tests.net import delete_redis_keys, new_redis_prefix, require_redis

POSTGRES_ADMIN_URL = os.environ.get(
    "PASSERELLE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is required in CI: {reason}")
    pytest.skip(f"PostgreSQL not reachable ({reason}); set PASSERELLE_TEST_POSTGRES_URL")


def _admin_connection() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)


@pytest.fixture(scope="session")
def _postgres_reachable() -> str | None:
    """None when the server answers, else why not; asked once per session."""
    try:
        with _admin_connection() as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


@contextmanager
def _postgres_database(unreachable: str | None) -> Iterator[str]:
    if unreachable is not None:
        _unavailable(unreachable)
    name = f"passerelle_t_{secrets.token_hex(6)}"
    with _admin_connection() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+psycopg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with _admin_connection() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(_postgres_reachable: str | None) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped after the test."""
    with _postgres_database(_postgres_reachable) as url:
        yield url


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL to an empty database, once for SQLite and once for PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'passerelle.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """A migrated database on each backend, disposed of after the test."""
    database = Database(database_url)
    database.migrate()
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def module_db(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    _postgres_reachable: str | None,
) -> Iterator[Database]:
    """A migrated database shared by the tests of one module, once per backend: cheaper than
    ``db`` when many tests need one. Tests empty the tables they use before relying on them."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("module_db") / "passerelle.db"
        database = Database(f"sqlite:///{path}")
        database.migrate()
        yield database
        database.dispose()
        return
    with _postgres_database(_postgres_reachable) as url:
        database = Database(url)
        database.migrate()
        yield database
        database.dispose()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own in the test Redis (skipped locally without one, a
    failure in CI); its keys are deleted afterwards."""
    require_redis()
    prefix = new_redis_prefix()
    yield prefix
    delete_redis_keys(prefix)
