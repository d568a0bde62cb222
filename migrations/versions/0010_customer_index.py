"""The customer index: its tree's nodes and the log leaves that commit to it (CONTRACT "Completeness").

`customer_index_nodes` holds the index as of its latest log leaf and is rewritten where keys
change; `index_leaves` holds those leaves' bytes and, like the log's other tables, is append-only.
A log that already has entries gets its index from the integrator's next pass, which builds it
from every integrated entry first (Integrator._update_index).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from migrations.append_only import forbid_changes

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customer_index_nodes",
        sa.Column("depth", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("prefix", sa.LargeBinary(32), primary_key=True),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.Column("leaf_key", sa.LargeBinary(32)),
        sa.Column("leaf_value", sa.LargeBinary(32)),
        # Every pass rewrites the nodes on its keys' paths in place: room on each page lets
        # PostgreSQL update a row there (HOT) without a new entry in the primary key's index.
        postgresql_with={"fillfactor": 50},
    )
    op.create_table(
        "index_leaves",
        sa.Column("log_index", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("canonical", sa.LargeBinary, nullable=False),
    )
    forbid_changes("index_leaves")


def downgrade() -> None:
    op.drop_table("index_leaves")
    op.drop_table("customer_index_nodes")
