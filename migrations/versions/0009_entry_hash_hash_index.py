"""Entries are found by entry_hash through a hash index on PostgreSQL, not a unique B-tree.

An entry hash is SHA-256 over bytes that hold a random 128-bit nonce and the previous entry's
hash, so its uniqueness is the hash function's to keep, not an index's; the index only serves
lookups by equality (an entry by its hash, identities joined by hash). Random 64-character keys
are what a B-tree inserts worst: every entry lands on a random leaf page, and the tree is wide.
A hash index stores a 4-byte hash code per entry. Copying the last 100,000 of 500,000 recorded
entries (INSERT ... SELECT in id order) into a copy of the table that holds the first 400,000,
with every index of the ledger, took 26.0 / 27.7 µs a row with the B-tree and 22.5 / 22.5 with the
hash index instead; WAL went from 2,982 to 2,464 bytes a row (two runs, development machine).

Built CONCURRENTLY, outside the migration's transaction: the ledger stays readable and writable
meanwhile. Dropping the unique constraint then takes the table's exclusive lock for a moment; it
waits for it at most a second at a time (see LOCK_TIMEOUT), so requests never queue behind it for
longer. SQLite keeps its unique index (it has no hash indexes; its single writer is not the
bottleneck).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

HASH_INDEX = "ix_ledger_entries_entry_hash"
UNIQUE_CONSTRAINT = "ledger_entries_entry_hash_key"  # PostgreSQL's name for 0001's unique=True
# Changing a constraint takes the table's exclusive lock. Waiting for it behind a long reader (an
# export, `seenby audit`) would queue every read and write of the ledger behind the wait, so each
# try gives up after LOCK_TIMEOUT and the next comes a moment later.
LOCK_TIMEOUT = "1s"
LOCK_TRIES = 60
LOCK_NOT_AVAILABLE = "55P03"

# The unique constraints on exactly (entry_hash), whatever a deployment named them.
_ENTRY_HASH_CONSTRAINTS = sa.text(
    "SELECT c.conname FROM pg_constraint AS c JOIN pg_attribute AS a"
    " ON a.attrelid = c.conrelid AND a.attname = 'entry_hash'"
    " WHERE c.conrelid = 'ledger_entries'::regclass AND c.contype = 'u' AND c.conkey = ARRAY[a.attnum]"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    with op.get_context().autocommit_block():
        _build(HASH_INDEX, "USING hash (entry_hash)")
        for (name,) in op.get_bind().execute(_ENTRY_HASH_CONSTRAINTS).all():
            _with_brief_lock(f'ALTER TABLE ledger_entries DROP CONSTRAINT IF EXISTS "{name}"')


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    with op.get_context().autocommit_block():
        _build(UNIQUE_CONSTRAINT, "(entry_hash)", unique=True)
        if not op.get_bind().execute(_ENTRY_HASH_CONSTRAINTS).first():
            _with_brief_lock(f"ALTER TABLE ledger_entries ADD CONSTRAINT {UNIQUE_CONSTRAINT} "
                             f"UNIQUE USING INDEX {UNIQUE_CONSTRAINT}")
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {HASH_INDEX}")


def _with_brief_lock(statement: str) -> None:
    bind = op.get_bind()
    bind.exec_driver_sql(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
    try:
        for attempt in range(1, LOCK_TRIES + 1):
            try:
                bind.exec_driver_sql(statement)
                return
            except sa.exc.DBAPIError as exc:
                if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE or attempt == LOCK_TRIES:
                    raise
                time.sleep(1)
    finally:
        bind.exec_driver_sql("RESET lock_timeout")


def _build(name: str, definition: str, *, unique: bool = False) -> None:
    """A build that was cancelled half-way leaves an INVALID index under its name: drop it and build
    again, rather than take it for done."""
    if op.get_bind().scalar(sa.text(
        "SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE c.relname = :name"
    ), {"name": name}):
        op.execute(f"DROP INDEX CONCURRENTLY {name}")
    kind = "UNIQUE INDEX" if unique else "INDEX"
    op.execute(f"CREATE {kind} CONCURRENTLY IF NOT EXISTS {name} ON ledger_entries {definition}")

