"""Notices and objections (CONTRACT "Notices and objections"): the webhook outbox, written with the
entries it announces, customers' objections to accesses (append-only), and the entry a deletion
request's overdue notice announces.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.append_only import forbid_changes

# Text compares byte by byte on PostgreSQL as everywhere else (0008); SQLite does so already.
TEXT = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notices",
        sa.Column("entry_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("type", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("state", sa.SmallInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at_us", sa.BigInteger, nullable=False),
        sa.Column("retry_until_us", sa.BigInteger, nullable=False),
        sa.Column("last_error", TEXT),
        sa.Column("delivered_at_us", sa.BigInteger),
        # Each delivery rewrites its row: room on the page for the new version (a HOT update).
        postgresql_with={"fillfactor": 70},
    )
    op.create_index("ix_notices_undelivered", "notices", ["state", "entry_id", "type"],
                    postgresql_where=sa.text("state <> 1"), sqlite_where=sa.text("state <> 1"))
    op.create_table(
        "objections",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("customer_id", TEXT, nullable=False),
        sa.Column("objected_entry_hash", TEXT, nullable=False),
        sa.Column("entry_hash", TEXT, nullable=False),  # the objection's own entry
        sa.Column("filed_at_us", sa.BigInteger, nullable=False),
        sa.Column("reason", TEXT),
        # The objected access's, for regulators' lists and the transparency report.
        sa.Column("purpose", TEXT),
        sa.Column("organization", TEXT),
    )
    # One objection per entry; also a customer's objections, newest first.
    op.create_index("uq_objections_entry", "objections", ["customer_id", "objected_entry_hash"], unique=True)
    forbid_changes("objections")
    # The deletion_requested entry's customer_seq: a deletion.overdue notice announces that entry.
    # (Requests filed before this revision have none, and get no overdue notice.)
    with op.batch_alter_table("deletion_requests") as table:
        table.add_column(sa.Column("requested_seq", sa.BigInteger))


def downgrade() -> None:
    with op.batch_alter_table("deletion_requests") as table:
        table.drop_column("requested_seq")
    op.drop_table("objections")
    op.drop_table("notices")
