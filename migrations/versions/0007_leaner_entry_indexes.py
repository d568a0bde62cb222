"""Fewer B-tree insertions for every entry recorded, on PostgreSQL.

- (customer_id, kind, customer_seq) goes: a customer's chain is nearly all access entries, so
  reading by kind walks (customer_id, customer_seq) as fast. SQLite keeps it: without planner
  statistics it would otherwise serve a customer's kind from the (kind, recorded_at_us) index.
- (kind, recorded_at_us), for exports and reports by period, becomes a BRIN index on
  recorded_at_us (entries are appended in recording order, so block ranges summarise a period in
  a few pages, and appending costs next to nothing), plus a B-tree on (kind, recorded_at_us) for
  the rare kinds only, so an export of, say, every deletion_completed entry stays an index scan.

The indexes are built and dropped CONCURRENTLY, outside the migration's transaction, so the
ledger stays readable and writable while it runs.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

RARE_KINDS = sa.text("kind <> 'access'")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    with op.get_context().autocommit_block():
        op.create_index("brin_ledger_entries_recorded_at", "ledger_entries", ["recorded_at_us"],
                        postgresql_using="brin", postgresql_concurrently=True, if_not_exists=True)
        op.create_index("ix_ledger_entries_rare_kind_recorded_at", "ledger_entries",
                        ["kind", "recorded_at_us"], postgresql_where=RARE_KINDS,
                        postgresql_concurrently=True, if_not_exists=True)
        op.drop_index("ix_ledger_entries_kind_recorded_at", table_name="ledger_entries",
                      postgresql_concurrently=True, if_exists=True)
        op.drop_index("ix_ledger_entries_customer_kind_seq", table_name="ledger_entries",
                      postgresql_concurrently=True, if_exists=True)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    with op.get_context().autocommit_block():
        op.create_index("ix_ledger_entries_customer_kind_seq", "ledger_entries",
                        ["customer_id", "kind", "customer_seq"], postgresql_concurrently=True)
        op.create_index("ix_ledger_entries_kind_recorded_at", "ledger_entries", ["kind", "recorded_at_us"],
                        postgresql_concurrently=True)
        op.drop_index("ix_ledger_entries_rare_kind_recorded_at", table_name="ledger_entries",
                      postgresql_concurrently=True)
        op.drop_index("brin_ledger_entries_recorded_at", table_name="ledger_entries",
                      postgresql_concurrently=True)
