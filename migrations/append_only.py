"""Triggers that make a table append-only, for the migrations of both backends."""

from __future__ import annotations

from alembic import op

PG_FUNCTION = (
    "CREATE OR REPLACE FUNCTION seenby_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME "
    "USING ERRCODE = 'insufficient_privilege'; END $$"
)


def forbid_changes(table: str) -> None:
    """UPDATE and DELETE (and TRUNCATE, on PostgreSQL) on `table` raise, whoever asks."""
    if op.get_bind().dialect.name == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )
        return
    op.execute(PG_FUNCTION)
    op.execute(
        f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION seenby_append_only()"
    )
    op.execute(
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION seenby_append_only()"
    )
