"""Kill switches and their change counter; feedback on answers.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

KILL_SWITCHES_EPOCH = 2
"""``Epoch.KILL_SWITCHES`` in ``storage/epochs.py``; written out so that this migration never
changes when the code does."""


def _epochs() -> sa.TableClause:
    return sa.table("auth_epoch", sa.column("id", sa.Integer), sa.column("epoch", sa.BigInteger))


def upgrade() -> None:
    op.create_table(
        "kill_switches",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("target", sa.String(320), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=True),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("set_by", sa.String(320), nullable=False),
        sa.Column("set_at", sa.BigInteger, nullable=False),
        sa.Column("lifted_by", sa.String(320), nullable=True),
        sa.Column("lifted_at", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_kill_switches_lifted_at", "kill_switches", ["lifted_at"])
    op.bulk_insert(_epochs(), [{"id": KILL_SWITCHES_EPOCH, "epoch": 0}])
    op.create_table(
        "feedback",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("request_id", sa.String(64), nullable=False, unique=True),
        sa.Column("key_id", sa.String(36), nullable=False),
        sa.Column("actor", sa.String(320), nullable=False),
        sa.Column("rating", sa.SmallInteger, nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("request_ts_us", sa.BigInteger, nullable=False),
        sa.Column("project", sa.String(100), nullable=True),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("provider", sa.String(100), nullable=True),
        sa.Column("route_model", sa.String(200), nullable=True),
    )
    op.create_index("ix_feedback_model_created", "feedback", ["model", "created_us"])
    op.create_index("ix_feedback_project_created", "feedback", ["project", "created_us"])


def downgrade() -> None:
    op.drop_index("ix_feedback_project_created", "feedback")
    op.drop_index("ix_feedback_model_created", "feedback")
    op.drop_table("feedback")
    epochs = _epochs()
    op.execute(epochs.delete().where(epochs.c.id == KILL_SWITCHES_EPOCH))
    op.drop_index("ix_kill_switches_lifted_at", "kill_switches")
    op.drop_table("kill_switches")
