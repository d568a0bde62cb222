"""The queue, the leaves and the identities drop their foreign keys to ledger_entries.

Each checked every row it guarded with a locking lookup into ledger_entries, about a third of
the time a batch spends writing. Nothing else writes these rows: the ledger writes the queue and
identity rows in the entry's own transaction, the integrator writes leaves from the queue, and
`seenby audit` reports a leaf without its entry. Tamper-evidence comes from the hashes, not from
constraints an insider with the owner role could drop anyway.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

from migrations.append_only import forbid_changes

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Alembic's way to name SQLite's unnamed constraints in batch mode; PostgreSQL named them alike.
NAMING = {"fk": "%(table_name)s_%(column_0_name)s_fkey"}
GUARDED = {
    "integration_queue": ("entry_id", "id"),
    "log_leaves": ("entry_id", "id"),
    "actor_identities": ("entry_hash", "entry_hash"),
}
APPEND_ONLY = ("log_leaves", "actor_identities")


def upgrade() -> None:
    for table, (column, _) in GUARDED.items():
        with op.batch_alter_table(table, naming_convention=NAMING) as batch:
            batch.drop_constraint(f"{table}_{column}_fkey", type_="foreignkey")
    _restore_sqlite_triggers()


def downgrade() -> None:
    for table, (column, referred) in GUARDED.items():
        with op.batch_alter_table(table, naming_convention=NAMING) as batch:
            batch.create_foreign_key(f"{table}_{column}_fkey", "ledger_entries", [column], [referred])
    _restore_sqlite_triggers()


def _restore_sqlite_triggers() -> None:
    # Batch mode rebuilds a SQLite table, and its triggers go with the old one.
    if op.get_bind().dialect.name == "sqlite":
        for table in APPEND_ONLY:
            forbid_changes(table)
