"""The migrated schema is exactly the one ``tables.py`` describes, on both backends."""

from __future__ import annotations

from sqlalchemy import inspect

from passerelle.storage.db import Database
from passerelle.storage.migrate import current_revision, head_revision
from passerelle.storage.tables import metadata


def test_migrations_reach_head_and_match_the_tables(db: Database) -> None:
    assert current_revision(db) == head_revision()
    inspector = inspect(db.engine)
    migrated = set(inspector.get_table_names()) - {"alembic_version"}
    assert migrated == set(metadata.tables)
    for name, table in metadata.tables.items():
        columns = {c["name"]: c for c in inspector.get_columns(name)}
        assert set(columns) == {c.name for c in table.columns}, name
        for column in table.columns:
            assert columns[column.name]["nullable"] == column.nullable, f"{name}.{column.name}"


def test_migrating_twice_is_a_no_op(db: Database) -> None:
    db.migrate()
    assert current_revision(db) == head_revision()


def test_head_revision_constant_names_the_newest_migration() -> None:
    from passerelle.storage.migrate import HEAD_REVISION

    assert head_revision() == HEAD_REVISION
