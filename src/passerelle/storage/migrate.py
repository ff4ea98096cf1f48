"""Running the Alembic migrations programmatically, on a connection we own.

Alembic is only imported when the database is not already at :data:`HEAD_REVISION`: reading one
row is enough to know, and importing Alembic costs a good part of the gateway's start-up time.
``tests/storage`` checks that the constant names the newest migration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from passerelle.storage.db import MIGRATIONS, Database

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

HEAD_REVISION = "0005"
"""The newest migration shipped with this version; update it with every new migration."""


def _alembic_config() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str | None:
    """The newest migration shipped with this version of Passerelle, as Alembic sees it."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(db: Database) -> str | None:
    """The migration the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _at_head(db: Database) -> bool:
    try:
        with db.engine.connect() as conn:
            row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    except SQLAlchemyError:
        return False  # no version table yet: a new database
    return row is not None and row[0] == HEAD_REVISION


def upgrade(db: Database) -> None:
    """Upgrade to the newest migration; one read when the database is already there."""
    if _at_head(db):
        return
    from alembic import command

    if current_revision(db) == head_revision():
        return
    cfg = _alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
