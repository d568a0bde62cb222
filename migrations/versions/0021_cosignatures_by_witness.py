"""checkpoint_cosignatures indexed by witness and size: the newest size each witness cosigned is
one index lookup, however long ago that was.

The checkpoint served under a witness policy is the newest that meets its quorum, and it cannot be
newer than the newest size that the witnesses' last cosignatures together meet (service/witness/
store.py). That bound is read by witness; through the primary key (tree_size, witness) alone it
meant reading every cosignature since a silent witness's last one. Adding the index is quick (a few
rows a checkpoint); the previous release reads and writes the table as before.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

INDEX = "ix_checkpoint_cosignatures_witness_size"


def upgrade() -> None:
    op.create_index(INDEX, "checkpoint_cosignatures", ["witness", "tree_size"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name="checkpoint_cosignatures")
