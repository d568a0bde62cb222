"""The integration queue carries each entry's leaf hash and recording time.

The writer already holds the canonical bytes, so it hashes the leaf there; the integrator then
reads only the queue's small rows, not the entries' canonical bytes, to extend the tree.

The columns stay nullable: during a rolling upgrade, pods of the previous release still queue
entries by id alone, and the integrator hashes those from the entry (tree_store.pending).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("integration_queue", sa.Column("leaf_hash", sa.LargeBinary(32), nullable=True))
    op.add_column("integration_queue", sa.Column("recorded_at_us", sa.BigInteger, nullable=True))
    connection = op.get_bind()
    waiting = connection.execute(sa.text(
        "SELECT q.entry_id, e.canonical, e.recorded_at_us FROM integration_queue q "
        "JOIN ledger_entries e ON e.id = q.entry_id"
    )).all()
    if waiting:
        # RFC 6962 leaf hash: SHA-256(0x00 || entry), as service.ledger.merkle.leaf_hash computes it.
        fill = "UPDATE integration_queue SET leaf_hash = :leaf, recorded_at_us = :at WHERE entry_id = :id"
        connection.execute(sa.text(fill), [
            {"id": row.entry_id, "at": row.recorded_at_us,
             "leaf": hashlib.sha256(b"\x00" + row.canonical).digest()}
            for row in waiting
        ])


def downgrade() -> None:
    with op.batch_alter_table("integration_queue") as batch:
        batch.drop_column("recorded_at_us")
        batch.drop_column("leaf_hash")
