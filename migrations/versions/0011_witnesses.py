"""Witnesses: the cosignatures kept for checkpoints, and evidence of conflicting witnesses
(CONTRACT "Witnesses"). Both append-only.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.append_only import forbid_changes

# Text compares byte by byte on PostgreSQL as everywhere else (0008); SQLite does so already.
TEXT = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "checkpoint_cosignatures",
        sa.Column("tree_size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("witness", TEXT, primary_key=True),
        sa.Column("line", TEXT, nullable=False),
        sa.Column("cosigned_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "witness_conflicts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("witness", TEXT, nullable=False),
        sa.Column("observed_at_us", sa.BigInteger, nullable=False),
        sa.Column("request", TEXT, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("response", TEXT, nullable=False),
    )
    for table in ("checkpoint_cosignatures", "witness_conflicts"):
        forbid_changes(table)


def downgrade() -> None:
    op.drop_table("witness_conflicts")
    op.drop_table("checkpoint_cosignatures")
