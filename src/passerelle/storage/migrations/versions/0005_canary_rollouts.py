"""Canary roll-outs and their change counter.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

CANARY_EPOCH = 3
"""``Epoch.CANARY`` in ``storage/epochs.py``; written out so that this migration never changes
when the code does."""


def _epochs() -> sa.TableClause:
    return sa.table("auth_epoch", sa.column("id", sa.Integer), sa.column("epoch", sa.BigInteger))


def upgrade() -> None:
    op.create_table(
        "canary_rollouts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("alias", sa.String(200), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("routes", sa.Text, nullable=False),
        sa.Column("stages", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("stage", sa.Integer, nullable=False),
        sa.Column("started_at", sa.BigInteger, nullable=False),
        sa.Column("started_by", sa.String(320), nullable=False),
        sa.Column("stage_started_at", sa.BigInteger, nullable=False),
        sa.Column("stage_seq", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("updated_by", sa.String(320), nullable=False),
        sa.Column("reason", sa.String(200), nullable=True),
        sa.Column("verdict", sa.Text, nullable=True),
        sa.UniqueConstraint("alias", "number", name="uq_canary_rollouts_alias_number"),
    )
    op.bulk_insert(_epochs(), [{"id": CANARY_EPOCH, "epoch": 0}])


def downgrade() -> None:
    epochs = _epochs()
    op.execute(epochs.delete().where(epochs.c.id == CANARY_EPOCH))
    op.drop_table("canary_rollouts")
