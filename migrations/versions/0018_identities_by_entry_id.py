"""actor_identities keyed by its entry's id (8 bytes) instead of the entry's hash (33 on
PostgreSQL since 0017, 65 on SQLite), in the row and in its primary key.

The identities are copied into a new table by joining each to its entry. An identity whose entry is
gone (only tampering can do that) stops the migration, with the advice to run `seenby audit`,
rather than being dropped. On PostgreSQL the old table is locked against writes first, so that no
identity recorded during the copy is left behind in it: a write of a human actor's access waits,
and fails once the copy commits (the request answers 5xx and the client retries; nothing is half
written). The copy took 2.7 s for a million identities on the 2-core development machine
(4.7 s back down).

Undoing it keys identities by hash again.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.append_only import forbid_changes

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_EMPLOYEE_ID = sa.String(128).with_variant(postgresql.VARCHAR(128, collation="C"), "postgresql")
_HEX = sa.String(64).with_variant(postgresql.BYTEA(), "postgresql")  # as 0017 left them
_BY_HASH, _BY_ENTRY = "actor_identities_by_hash", "actor_identities_by_entry"


def upgrade() -> None:
    _refuse_orphans("e.entry_hash = a.entry_hash")
    op.create_table(_BY_ENTRY, sa.Column("entry_id", sa.BigInteger, primary_key=True, autoincrement=False),
                    sa.Column("employee_id", _EMPLOYEE_ID, nullable=False),
                    sa.Column("id_salt", _HEX, nullable=False))
    op.execute(f"INSERT INTO {_BY_ENTRY} (entry_id, employee_id, id_salt)"
               " SELECT e.id, a.employee_id, a.id_salt FROM actor_identities a"
               " JOIN ledger_entries e ON e.entry_hash = a.entry_hash")
    _replace_with(_BY_ENTRY)


def downgrade() -> None:
    _refuse_orphans("e.id = a.entry_id")
    op.create_table(_BY_HASH, sa.Column("entry_hash", _HEX, primary_key=True),
                    sa.Column("employee_id", _EMPLOYEE_ID, nullable=False),
                    sa.Column("id_salt", _HEX, nullable=False))
    op.execute(f"INSERT INTO {_BY_HASH} (entry_hash, employee_id, id_salt)"
               " SELECT e.entry_hash, a.employee_id, a.id_salt FROM actor_identities a"
               " JOIN ledger_entries e ON e.id = a.entry_id")
    _replace_with(_BY_HASH)


def _refuse_orphans(found: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("LOCK TABLE actor_identities IN SHARE MODE")
    orphans = op.get_bind().execute(sa.text(
        "SELECT count(*) FROM actor_identities a"
        f" WHERE NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE {found})"
    )).scalar_one()
    if orphans:
        raise RuntimeError(f"{orphans} actor identities have no entry: the ledger has been tampered "
                           "with. Run `seenby audit` and restore the entries first.")


def _replace_with(table: str) -> None:
    """`table` becomes actor_identities, append-only like the one it replaces."""
    op.drop_table("actor_identities")
    op.rename_table(table, "actor_identities")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER INDEX {table}_pkey RENAME TO actor_identities_pkey")
    forbid_changes("actor_identities")
