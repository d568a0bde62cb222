"""The database layer's sessions on PostgreSQL: reads without a transaction, writes always in one."""

from __future__ import annotations

from sqlalchemy import text

from service.db import Database
from tests.conftest import Backend

_XID = text("SELECT pg_current_xact_id()::text")


async def test_reads_commit_each_statement_and_never_leave_that_to_a_writer(fresh_pg: Backend) -> None:
    # One pooled connection (and one overflow), used in turn by a reader and a writer.
    database = Database(fresh_pg.settings.model_copy(update={"db_pool_size": 1}))
    try:
        for _ in range(2):
            async with database.read_sessions() as session:
                assert await session.scalar(_XID) != await session.scalar(_XID)  # no transaction
            async with database.write([]) as session:
                assert await session.scalar(_XID) == await session.scalar(_XID)  # one transaction
    finally:
        await database.dispose()
