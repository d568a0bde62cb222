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
# (name, columns, options) of the indexes this revision builds.
NEW_INDEXES = (
    ("brin_ledger_entries_recorded_at", ["recorded_at_us"], {"postgresql_using": "brin"}),
    ("ix_ledger_entries_rare_kind_recorded_at", ["kind", "recorded_at_us"], {"postgresql_where": RARE_KINDS}),
)
OLD_INDEXES = (
    ("ix_ledger_entries_kind_recorded_at", ["kind", "recorded_at_us"], {}),
    ("ix_ledger_entries_customer_kind_seq", ["customer_id", "kind", "customer_seq"], {}),
)


def upgrade() -> None:
    _swap(build=NEW_INDEXES, drop=OLD_INDEXES)


def downgrade() -> None:
    _swap(build=OLD_INDEXES, drop=NEW_INDEXES)


def _swap(build: tuple, drop: tuple) -> None:
    """Build every index of `build`, then drop those of `drop`: a run that stops half-way (a
    cancelled CONCURRENTLY build leaves an INVALID index) is simply run again."""
    if op.get_bind().dialect.name != "postgresql":
        return
    with op.get_context().autocommit_block():
        for name, columns, options in build:
            if _invalid(name):
                op.drop_index(name, table_name="ledger_entries", postgresql_concurrently=True)
            op.create_index(name, "ledger_entries", columns, postgresql_concurrently=True,
                            if_not_exists=True, **options)
        for name, _, _ in drop:
            op.drop_index(name, table_name="ledger_entries", postgresql_concurrently=True, if_exists=True)


def _invalid(name: str) -> bool:
    return bool(op.get_bind().scalar(sa.text(
        "SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = :name"
    ), {"name": name}))
