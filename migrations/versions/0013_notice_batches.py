"""The outbox written a batch at a time: a recording transaction writes one `notice_batches` row
for all its notices, which the deliverer unpacks into `notices` rows as the receiver takes them.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import struct

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_PACKED = struct.Struct(">QB")
_DAY_US = 86_400 * 1_000_000


def upgrade() -> None:
    op.create_table(
        "notice_batches",
        sa.Column("first_entry_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("notices", sa.Integer, nullable=False),
        sa.Column("packed", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    # Notices still packed become rows, retried for a day (the default period) from their entries.
    connection = op.get_bind()
    batches = connection.execute(sa.text("SELECT created_at_us, packed FROM notice_batches")).all()
    rows = [{"entry_id": entry_id, "type": type_, "created_at_us": created,
             "retry_until_us": created + _DAY_US}
            for created, packed in batches for entry_id, type_ in _PACKED.iter_unpack(bytes(packed))]
    if rows:
        connection.execute(sa.text(
            "INSERT INTO notices (entry_id, type, created_at_us, state, attempts, next_attempt_at_us,"
            " retry_until_us) VALUES (:entry_id, :type, :created_at_us, 0, 0, 0, :retry_until_us)"), rows)
    op.drop_table("notice_batches")
