"""Entries stored packed (service/ledger/packing.py). No column changes: the revision marks the
release that reads and writes packed entries, so that pods of the release before it, which would
show a packed entry's bytes as they are, leave rotation as soon as it is applied (their /readyz
wants the schema they were built for). Rows stored before stay as they are, and still read.

Undoing it unpacks every packed entry in place, for the release before to read.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.ledger.packing import DICTIONARY_1, unpack

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_COMMENT = "the canonical bytes of the entry: plain (first byte {) or packed (service/ledger/packing.py)"
_BATCH = 10_000


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"COMMENT ON COLUMN ledger_entries.canonical IS '{_COMMENT}'")


def downgrade() -> None:
    connection = op.get_bind()
    postgresql = connection.dialect.name == "postgresql"
    # The append-only trigger refuses every UPDATE: set aside for this rewrite, which changes no
    # entry (the same canonical bytes, as stored before packing).
    op.execute("ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_no_change" if postgresql
               else "DROP TRIGGER ledger_entries_no_update")
    packed_after = sa.text("SELECT id, canonical FROM ledger_entries WHERE id > :after "
                           "AND substr(canonical, 1, 1) = :packed ORDER BY id LIMIT :batch")
    after = 0
    while rows := connection.execute(packed_after, {"after": after, "packed": bytes((DICTIONARY_1,)),
                                                    "batch": _BATCH}).all():
        connection.execute(sa.text("UPDATE ledger_entries SET canonical = :canonical WHERE id = :id"),
                           [{"id": row.id, "canonical": unpack(bytes(row.canonical))} for row in rows])
        after = rows[-1].id
    if postgresql:
        op.execute("ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_no_change")
        op.execute("COMMENT ON COLUMN ledger_entries.canonical IS NULL")
    else:
        op.execute("CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries "
                   "BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only'); END")
