"""customer_heads kept small on PostgreSQL: room on each page for its rows' next versions (fill
factor 25), and head_hash as its 32 bytes (bytea, as 0017 stores the entries' hashes).

The heads are the only rows seenby updates: once per customer per write. On full pages an update
could not stay on its row's page, so it left a dead version and a new index entry behind; a million
entries over 10,000 customers left 45.9 MB of heads for 10,000 live rows (`python -m bench.disk`).
With room on the page the update stays there (a HOT update) and PostgreSQL prunes the old versions
as it reads the page, without waiting for a vacuum.

Changing the column's type rewrites the table, which lays the rows out with the new fill factor,
under the table's exclusive lock: writes wait for it. It is one small row a customer.
SQLite keeps the text: nothing changes there.

Undoing it writes the hex text back, on pages filled as before.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

# A row takes about 80 bytes: a quarter of a page holds some 25 customers, and the rest holds
# 75 versions more before the page must be pruned.
HEADS_FILL_FACTOR = 25


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"ALTER TABLE customer_heads SET (fillfactor = {HEADS_FILL_FACTOR}), "
               "ALTER COLUMN head_hash TYPE bytea USING CASE WHEN head_hash ~ '^([0-9a-f]{2})*$'"
               " THEN decode(head_hash, 'hex') ELSE convert_to(head_hash, 'UTF8') END")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE customer_heads RESET (fillfactor), "
               'ALTER COLUMN head_hash TYPE varchar(64) COLLATE "C"'
               " USING left(encode(head_hash, 'hex'), 64)")
