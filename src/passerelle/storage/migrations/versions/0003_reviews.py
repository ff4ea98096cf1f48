"""Review queue: requests held by the data policy for a human reviewer.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reviews",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(320), nullable=False),
        sa.Column("key_id", sa.String(36), nullable=False),
        sa.Column("project", sa.String(100), nullable=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("endpoint", sa.String(200), nullable=False),
        sa.Column("data_class", sa.String(100), nullable=False),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("findings", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("preview", sa.Text, nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("decided_by", sa.String(320), nullable=True),
        sa.Column("decided_at", sa.BigInteger, nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("used_at", sa.BigInteger, nullable=True),
        sa.Column("used_by_request", sa.String(64), nullable=True),
    )
    op.create_index("ix_reviews_key_hash", "reviews", ["key_id", "request_hash"])
    op.create_index("ix_reviews_status_created", "reviews", ["status", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_reviews_status_created", "reviews")
    op.drop_index("ix_reviews_key_hash", "reviews")
    op.drop_table("reviews")
