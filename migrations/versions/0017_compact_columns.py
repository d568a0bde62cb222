"""Hashes, salts and event ids stored compactly on PostgreSQL: ledger_entries.entry_hash and
request_digest, actor_identities.entry_hash and id_salt become bytea (33 bytes where the hex text
took 65), and ledger_entries.event_id becomes uuid (16 bytes for 37), in the rows and in the
indexes on them. The code still reads and writes the same text (service/ledger/compact_columns.py).
SQLite keeps the text: nothing changes there.

Each table is rewritten under its exclusive lock: the ledger takes no writes and no reads while
it lasts, so run it in a maintenance window on a large ledger (README, "PostgreSQL in production").
Only a damaged row can hold a value that is not lowercase hex or a UUID: a hash is then kept as its
UTF-8 bytes, so the upgrade never stops on it and `seenby audit` still names the entry, and an
event id becomes null (the entry's canonical bytes still hold it).

Undoing it writes the text back.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_UUID = "'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'"


def _as_bytes(column: str) -> str:
    return (f"ALTER COLUMN {column} TYPE bytea USING CASE WHEN {column} ~ '^([0-9a-f]{{2}})*$'"
            f" THEN decode({column}, 'hex') ELSE convert_to({column}, 'UTF8') END")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"ALTER TABLE ledger_entries {_as_bytes('entry_hash')}, {_as_bytes('request_digest')}, "
               f"ALTER COLUMN event_id TYPE uuid USING CASE WHEN lower(event_id) ~ {_UUID}"
               " THEN CAST(event_id AS uuid) END")
    op.execute(f"ALTER TABLE actor_identities {_as_bytes('entry_hash')}, {_as_bytes('id_salt')}")


def _as_text(column: str) -> str:
    return f"ALTER COLUMN {column} TYPE varchar(64) USING left(encode({column}, 'hex'), 64)"


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"ALTER TABLE ledger_entries {_as_text('entry_hash')}, {_as_text('request_digest')}, "
               "ALTER COLUMN event_id TYPE varchar(36) USING CAST(event_id AS text)")
    op.execute(f"ALTER TABLE actor_identities {_as_text('entry_hash')}, {_as_text('id_salt')}")
