"""customer_index_undo: what each integration pass overwrote in the customer index, while a witness
policy may serve a checkpoint older than the latest index leaf.

`customer_index_nodes` holds the index as of the latest index leaf only. Under a witness policy the
checkpoint served is the newest the witnesses' quorum cosigned, which trails the latest pass by a
round trip to the witnesses at least, and for as long as a witness is silent; a completeness proof
against it needs the index as of the last index leaf in it. The integrator keeps, for every stored
node a pass changes, the node as it was before (`covers`: that pass's index leaf; a null hash: no
node there before), and lets the rows go once the served checkpoint has moved past them. Without a
policy nothing is written here.

The previous release neither writes nor reads the table.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customer_index_undo",
        sa.Column("depth", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("prefix", sa.LargeBinary(32), primary_key=True),
        sa.Column("covers", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(32)),
        sa.Column("leaf_key", sa.LargeBinary(32)),
        sa.Column("leaf_value", sa.LargeBinary(32)),
    )
    # The sweep lets rows go by pass: a range of this index, not a scan of the table.
    op.create_index("ix_customer_index_undo_covers", "customer_index_undo", ["covers"])


def downgrade() -> None:
    op.drop_table("customer_index_undo")
