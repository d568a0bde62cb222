"""The database layer's sessions: reads never wait for writers, writes always in a transaction."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
from pathlib import Path

import asyncpg
import pytest
from pydantic import ValidationError
from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError

from service.db import Database, DatabaseDep
from service.errors import PROBLEM_JSON
from service.main import create_app
from service.migrate import grant_app_role, upgrade
from service.settings import Settings
from tests.conftest import Backend, Tokens, base_settings, serve

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


_PID = text("SELECT pg_backend_pid()")


@pytest.mark.parametrize("unsendable", [
    pytest.param(("SELECT CAST(:x AS text)", "\ud800"), id="a-lone-surrogate"),
    pytest.param(("SELECT CAST(:x AS bigint)", 2**70), id="an-integer-past-bigint"),
])
async def test_an_argument_asyncpg_cannot_send_leaves_no_connection_in_a_transaction(
    fresh_pg: Backend, unsendable: tuple[str, object]
) -> None:
    """asyncpg fails such an argument after sending the statement's Parse and before its Sync: the
    server holds that connection in a transaction, and every later BEGIN on it failed (a 500 for
    each request the pool lent it to, until a restart). Such a connection is closed instead."""
    statement, value = unsendable
    database = Database(fresh_pg.settings.model_copy(update={"db_pool_size": 1}))
    kinds = {"read": database.read_sessions, "snapshot": database.snapshot_sessions,
             "write": database.sessions}
    try:
        for failing in kinds.values():
            # What begins a transaction comes next: a statement of its own would have sent the Sync
            # that ends the server's implicit transaction.
            for beginning in ("snapshot", "write"):
                async with database.read_sessions() as session:
                    before = await session.scalar(_PID)
                with pytest.raises(DBAPIError, match="invalid input for query argument"):
                    async with failing() as session:
                        await session.execute(text(statement), {"x": value})
                for _ in range(3):
                    async with kinds[beginning]() as session:
                        assert await session.scalar(_XID) == await session.scalar(_XID)  # one transaction
                        assert await session.scalar(_PID) != before  # the pool's one connection is new
        for sessions in kinds.values():
            async with sessions() as session:
                assert await session.scalar(text("SELECT 1")) == 1
    finally:
        await database.dispose()


async def test_a_data_error_from_the_server_keeps_its_connection(fresh_pg: Backend) -> None:
    """SQLSTATE 22000 from the server is the same exception class as asyncpg's own refusal, but the
    server has ended that statement: the connection is sound and stays pooled."""
    database = Database(fresh_pg.settings.model_copy(update={"db_pool_size": 1}))
    try:
        for sessions in (database.read_sessions, database.snapshot_sessions, database.sessions):
            async with database.read_sessions() as session:
                before = await session.scalar(_PID)
            with pytest.raises(DBAPIError) as raised:
                async with sessions() as session:
                    await session.execute(text("SELECT array_append(ARRAY[[1]], 2)"))
            assert type(raised.value.orig.__cause__) is asyncpg.DataError
            assert not raised.value.connection_invalidated
            async with database.snapshot_sessions() as session:
                assert await session.scalar(_PID) == before
    finally:
        await database.dispose()


async def test_an_argument_never_sent_answers_500_not_database_unreachable(
    fresh_pg: Backend, tmp_path: Path
) -> None:
    """The connection is closed, but the database is up: the bug is ours (500, logged), and a client
    told 503 would retry the same request for ever."""
    app = create_app(fresh_pg.settings.model_copy(update={"data_dir": tmp_path}))

    @app.get("/unsendable")
    async def unsendable(database: DatabaseDep) -> None:
        async with database.read_sessions() as session:
            await session.execute(text("SELECT CAST(:x AS text)"), {"x": "\ud800"})

    async for client in serve(app):
        answer = await client.get("/unsendable")
        assert answer.status_code == 500, answer.text
        assert (await client.get("/readyz")).status_code == 200


async def test_a_pool_with_no_connection_free_answers_503_with_retry_after(
    fresh_pg: Backend, tmp_path: Path
) -> None:
    """Every pooled connection held (by downloads that stalled, say): a request waits
    SEENBY_DB_POOL_TIMEOUT_SECONDS, then is told to come back, not that seenby failed."""
    app = create_app(fresh_pg.settings.model_copy(update={
        "data_dir": tmp_path, "db_pool_size": 1, "db_pool_timeout_seconds": 0.5}))
    tokens = Tokens(app)
    history = "/v1/customers/cust-waits/accesses"
    async for client in serve(app):
        database: Database = app.state.database
        async with database.engine.connect(), database.engine.connect():  # the pool's one, and its overflow
            answer = await client.get(history, headers=tokens.customer("cust-waits"))
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"] == PROBLEM_JSON
        assert int(answer.headers["retry-after"]) > 0
        assert "in use" in answer.json()["detail"]
        again = await client.get(history, headers=tokens.customer("cust-waits"))
        assert again.status_code == 200, again.text


async def test_sqlite_reads_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    settings = base_settings(tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/reads.db")
    await asyncio.to_thread(upgrade, settings)  # Alembic runs its own event loop
    database = Database(settings)
    try:
        async with database.write(["cust-1"]) as writer:  # holds the file's write lock until it ends
            await writer.execute(text("SELECT 1"))

            async def read() -> int | None:
                async with database.read_sessions() as session:
                    return await session.scalar(text("SELECT count(*) FROM ledger_entries"))

            async def stream() -> list[int]:  # as exports read, with a transaction of their own
                async with database.read_engine.connect() as connection:
                    result = await connection.stream(text("SELECT count(*) FROM ledger_entries"))
                    return [row[0] async for row in result]

            # Under BEGIN IMMEDIATE the readers would wait for the writer (up to busy_timeout).
            assert await asyncio.wait_for(read(), timeout=5) == 0
            assert await asyncio.wait_for(stream(), timeout=5) == [0]
    finally:
        await database.dispose()


async def test_replicas_granting_at_once_do_not_fail(fresh_pg: Backend) -> None:
    """Every replica started in development migrates and grants; PostgreSQL fails the second of two
    concurrent REVOKEs on one table unless they take turns."""
    app_role = make_url(fresh_pg.settings.resolved_database_url).username or ""
    owner_url = fresh_pg.settings.resolved_migration_database_url
    for _ in range(3):
        await asyncio.gather(*(asyncio.to_thread(grant_app_role, owner_url, app_role) for _ in range(6)))


async def test_a_sqlite_writer_cancelled_mid_statement_leaves_the_file_writable(tmp_path: Path) -> None:
    """A task cancelled while its statement runs (the app's shutdown cancels the integrator) gets its
    connection invalidated and closed. The cancellation's traceback still holds the statement's
    cursor, and SQLite does not close a connection with a live statement: without a rollback first
    it would keep its transaction, and the file's write lock, until the garbage collector ran."""
    path = tmp_path / "cancelled.db"
    settings = base_settings(tmp_path, database_url=f"sqlite+aiosqlite:///{path}")
    await asyncio.to_thread(upgrade, settings)
    database = Database(settings)
    # Sorting three million rows takes the worker thread a while before the first row comes back.
    slow = text("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3000000)"
                " SELECT x FROM n ORDER BY x DESC")

    async def write_slowly() -> None:
        async with database.write(["cust-1"]) as session:
            await session.execute(slow)

    gc.disable()  # what keeps the cursor alive is a reference cycle: keep it for the check
    try:
        writer = asyncio.create_task(write_slowly())
        await asyncio.sleep(0.3)
        writer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await writer
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # "database is locked" while the cancelled one holds it
            other.execute("ROLLBACK")
        finally:
            other.close()
    finally:
        gc.enable()
        await database.dispose()


def test_settings_refuse_more_export_streams_than_pooled_connections() -> None:
    with pytest.raises(ValidationError, match=r"\(11\) must not exceed SEENBY_DB_POOL_SIZE \(10\)"):
        Settings(_env_file=None, export_streams_per_process=11, db_pool_size=10)  # type: ignore[call-arg]
    assert Settings(_env_file=None, export_streams_per_process=4, db_pool_size=4)  # type: ignore[call-arg]
