"""Entries keep their prev_hash in the canonical bytes only: the column of the same name is left
empty from this release on (it held a 65-byte copy). No table changes: the revision marks the
release, so that pods of the release before it, whose audit compares the column, leave rotation.

Undoing it copies every empty column back from the entry's canonical bytes.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.ledger.canonical import decode
from service.ledger.packing import unpack

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_COMMENT = "empty: the canonical bytes hold prev_hash (a copy in rows recorded before 0016)"
_BATCH = 10_000


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"COMMENT ON COLUMN ledger_entries.prev_hash IS '{_COMMENT}'")


def _prev_hash(stored: bytes) -> str:
    """From the canonical bytes; a damaged entry keeps its empty column (`seenby audit` names it)."""
    try:
        value = decode(unpack(stored)).get("prev_hash")
    except ValueError:
        return ""
    return value if isinstance(value, str) else ""


def downgrade() -> None:
    connection = op.get_bind()
    postgresql = connection.dialect.name == "postgresql"
    # The append-only trigger refuses every UPDATE: set aside for this copy, which changes no entry.
    op.execute("ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_no_change" if postgresql
               else "DROP TRIGGER ledger_entries_no_update")
    empty_after = sa.text("SELECT id, canonical FROM ledger_entries WHERE id > :after AND prev_hash = '' "
                          "ORDER BY id LIMIT :batch")
    after = 0
    while rows := connection.execute(empty_after, {"after": after, "batch": _BATCH}).all():
        connection.execute(sa.text("UPDATE ledger_entries SET prev_hash = :prev_hash WHERE id = :id"), [
            {"id": row.id, "prev_hash": _prev_hash(bytes(row.canonical))} for row in rows])
        after = rows[-1].id
    if postgresql:
        op.execute("ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_no_change")
        op.execute("COMMENT ON COLUMN ledger_entries.prev_hash IS NULL")
    else:
        op.execute("CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries "
                   "BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only'); END")
