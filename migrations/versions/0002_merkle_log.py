"""The Merkle log: integration queue, leaves, perfect-subtree nodes, signed checkpoints.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from migrations.append_only import forbid_changes

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
APPEND_ONLY = ("log_leaves", "merkle_nodes", "checkpoints")


def upgrade() -> None:
    op.create_table(
        "integration_queue",
        sa.Column("entry_id", BigId, sa.ForeignKey("ledger_entries.id"), primary_key=True),
    )
    op.create_table(
        "log_leaves",
        sa.Column("log_index", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("entry_id", BigId, sa.ForeignKey("ledger_entries.id"), nullable=False, unique=True),
    )
    op.create_table(
        "merkle_nodes",
        sa.Column("level", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("node_index", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
    )
    op.create_table(
        "checkpoints",
        sa.Column("tree_size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("note", sa.String(4000), nullable=False),
        sa.Column("signed_at_us", sa.BigInteger, nullable=False),
    )
    # Entries recorded before this migration join the log like any other.
    op.execute("INSERT INTO integration_queue (entry_id) SELECT id FROM ledger_entries ORDER BY id")
    for table in APPEND_ONLY:
        forbid_changes(table)


def downgrade() -> None:
    for table in ("checkpoints", "merkle_nodes", "log_leaves", "integration_queue"):
        op.drop_table(table)
