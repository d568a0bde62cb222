"""Schema migrations through Alembic, and the grants that keep the app role append-only."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

import migrations
from service.ledger.tables import APPEND_ONLY_TABLES
from service.objections.tables import APPEND_ONLY_OBJECTION_TABLES
from service.settings import Settings
from service.witness.tables import APPEND_ONLY_WITNESS_TABLES

MIGRATIONS_DIR = Path(migrations.__file__).parent
MUTABLE_TABLES = (
    "customer_heads", "customers", "deletion_requests", "deletion_request_clips", "deletion_tasks",
    "consents", "troubleshooting_grants", "access_decisions", "notices",
)
# What the app role may do to each table, and no more.
APP_PRIVILEGES = {
    **dict.fromkeys((*APPEND_ONLY_TABLES, *APPEND_ONLY_WITNESS_TABLES, *APPEND_ONLY_OBJECTION_TABLES),
                    "SELECT, INSERT"),
    **dict.fromkeys(MUTABLE_TABLES, "SELECT, INSERT, UPDATE"),
    "integration_queue": "SELECT, INSERT, DELETE",  # integrated entries leave it
    # A node leaves once its tile is stored; the database checks that the tile holds it (0015),
    # or, for a node hashed up from a tile, that the tile is there (and on PostgreSQL that it gives
    # the same hash: 0020).
    "merkle_nodes": "SELECT, INSERT, DELETE",
    # Derived from the log and rewritten in place; a leaf whose depth now holds a branch storage
    # leaves out is taken away.
    "customer_index_nodes": "SELECT, INSERT, UPDATE, DELETE",
    # What passes overwrote, kept until the served checkpoint has moved past them (0022).
    "customer_index_undo": "SELECT, INSERT, DELETE",
    "notice_batches": "SELECT, INSERT, DELETE",  # unpacked into notices rows
}


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def older_revisions() -> frozenset[str]:
    """Revisions this build knows and has moved past: a database at one of them needs `migrate`."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return frozenset(r.revision for r in script.walk_revisions()) - {script.get_current_head()}


def applied_revision(url: str) -> str | None:
    """The revision the database at `url` is migrated to; None where there is no seenby schema (and,
    on SQLite, no file: none is created)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        return None
    return asyncio.run(_applied_revision(url))


async def _applied_revision(url: str) -> str | None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            revision: str | None = await connection.scalar(text("SELECT version_num FROM alembic_version"))
            return revision
    except DBAPIError as exc:
        if "alembic_version" in str(exc.orig):  # no such table: a database, but not seenby's
            return None
        raise  # a database out of reach, a password refused: said as such by the caller
    finally:
        await engine.dispose()


def upgrade(settings: Settings) -> None:
    """Migrate as the owner role; when the app connects as another role, grant it no more than it needs."""
    if settings.resolved_database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(settings.resolved_migration_database_url), "head")
    app_url = make_url(settings.resolved_database_url)
    owner_url = make_url(settings.resolved_migration_database_url)
    if app_url.get_backend_name() == "postgresql" and app_url.username != owner_url.username:
        grant_app_role(settings.resolved_migration_database_url, app_url.username or "")
    # The standby's role (SECURITY.md: it can only SELECT), granted on the primary and replicated.
    reader = make_url(settings.read_database_url).username if settings.read_database_url else None
    if reader and reader not in (app_url.username, owner_url.username):
        grant_app_role(settings.resolved_migration_database_url, reader, reader=True)


def grant_statements(role: str, *, reader: bool = False) -> list[str]:
    """The app role's grants, or with `reader` a read-only role's: SELECT on every table."""
    quoted = '"' + role.replace('"', '""') + '"'
    statements = []
    for table, privileges in APP_PRIVILEGES.items():
        statements.append(f"REVOKE ALL ON {table} FROM {quoted}")
        statements.append(f"GRANT {'SELECT' if reader else privileges} ON {table} TO {quoted}")
    statements.append(f"GRANT SELECT ON alembic_version TO {quoted}")
    if not reader:
        statements.append(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {quoted}")
    return statements


def grant_app_role(owner_url: str, role: str, *, reader: bool = False) -> None:
    asyncio.run(_grant(owner_url, role, reader))


# Any fixed 64-bit key; it names "granting the app role" among the database's advisory locks.
GRANT_LOCK_KEY = 0x5EE_B1_6A7


async def _grant(owner_url: str, role: str, reader: bool) -> None:
    engine = create_async_engine(owner_url)
    try:
        async with engine.begin() as connection:
            # Replicas started together in development each grant: PostgreSQL fails the second of
            # two concurrent REVOKEs on one table ("tuple concurrently updated"), so one at a time.
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": GRANT_LOCK_KEY})
            for statement in grant_statements(role, reader=reader):
                await connection.execute(text(statement))
    finally:
        await engine.dispose()
