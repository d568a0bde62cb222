"""The ledger: append-only entries and identities, chain heads, customers.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from migrations.append_only import forbid_changes

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
APPEND_ONLY = ("ledger_entries", "actor_identities")


def upgrade() -> None:
    op.create_table(
        "ledger_entries",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("customer_seq", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("recorded_at_us", sa.BigInteger, nullable=False),
        sa.Column("canonical", sa.LargeBinary, nullable=False),
        sa.Column("flags", sa.String(200), nullable=False, server_default=""),
        sa.Column("recorded_by", sa.String(128), nullable=False),
        sa.Column("event_id", sa.String(36), unique=True),
        sa.Column("request_digest", sa.String(64)),
        sa.Column("clip_id", sa.String(128)),
        sa.Column("occurred_at_us", sa.BigInteger),
        sa.Column("actor_type", sa.String(16)),
        sa.Column("actor_country", sa.String(2)),
        sa.Column("actor_organization", sa.String(128)),
        sa.Column("purpose", sa.String(32)),
        sa.Column("action", sa.String(32)),
    )
    op.create_index("uq_ledger_entries_customer_seq", "ledger_entries",
                    ["customer_id", "customer_seq"], unique=True)
    op.create_index("ix_ledger_entries_customer_kind_seq", "ledger_entries",
                    ["customer_id", "kind", "customer_seq"])
    op.create_index("ix_ledger_entries_customer_clip_seq", "ledger_entries",
                    ["customer_id", "clip_id", "customer_seq"])
    op.create_table(
        "actor_identities",
        sa.Column("entry_hash", sa.String(64), sa.ForeignKey("ledger_entries.entry_hash"),
                  primary_key=True),
        sa.Column("employee_id", sa.String(128), nullable=False),
        sa.Column("id_salt", sa.String(64), nullable=False),
    )
    op.create_table(
        "customer_heads",
        sa.Column("customer_id", sa.String(128), primary_key=True),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "customers",
        sa.Column("customer_id", sa.String(128), primary_key=True),
        sa.Column("country", sa.String(2)),
    )
    op.create_index("ix_customers_country", "customers", ["country"])
    for table in APPEND_ONLY:
        forbid_changes(table)


def downgrade() -> None:
    for table in ("customers", "customer_heads", "actor_identities", "ledger_entries"):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS seenby_append_only()")
