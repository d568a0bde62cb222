"""The database: engine and sessions from settings, dialect helpers, and the per-customer write lock."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Annotated, Any, TypeVar

import anyio
import anyio.lowlevel
from fastapi import Depends, Request
from sqlalchemy import ARRAY, Engine, ExceptionContext, Table, any_, bindparam, event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlmodel import SQLModel

from service.errors import AheadOfThisDatabase, argument_never_sent
from service.notices.outbox import OUTBOX_KEY, Outbox, wrote_notices
from service.settings import Settings

T = TypeVar("T")


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, *, pool_size: int = 10, pool_timeout: float = 30.0) -> AsyncEngine:
    if is_sqlite(url):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        _configure_sqlite(engine)
        return engine
    # A connection some NAT or load balancer dropped while idle, without closing it, is found only
    # when written to; replacing each one every few minutes keeps them younger than such timeouts.
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=300,
                                 pool_timeout=pool_timeout)
    _skip_closed_connections(engine)
    _close_connections_left_mid_statement(engine)
    return engine


def _skip_closed_connections(engine: AsyncEngine) -> None:
    """Never hand out a pooled connection the server has closed (a restart, a failover, an idle
    reaper): asyncpg sees the socket close as it happens, so asking it costs no round trip.
    SQLAlchemy's pool_pre_ping would ask the server instead, with three round trips on asyncpg
    (BEGIN, a ping, ROLLBACK): some 320 µs of CPU per checkout, more than most queries here."""

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if dbapi_connection.driver_connection.is_closed():
            raise DisconnectionError("the server closed this pooled connection")  # the pool reconnects


def _close_connections_left_mid_statement(engine: AsyncEngine) -> None:
    """Close, never pool again, a connection on which asyncpg could not encode an argument (a lone
    surrogate, an integer past its column's range). asyncpg raises DataError once it has sent the
    statement's Parse (with a Flush, not a Sync), so the server keeps the implicit transaction that
    Parse began: the next BEGIN on that connection fails, asyncpg then counts a transaction open
    that the server does not, and every request the pool lends it to answers 500 until a restart.
    Inputs are checked before they reach a query; this keeps one that slips through from taking
    the pool's connections down with it."""

    @event.listens_for(engine.sync_engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        if argument_never_sent(context.original_exception):
            context.is_disconnect = True  # SQLAlchemy closes the connection and drops it
            context.invalidate_pool_on_disconnect = False  # the others are sound


def _configure_sqlite(engine: AsyncEngine) -> None:
    # pysqlite's own transaction handling defers BEGIN unpredictably; take it over, as the
    # SQLAlchemy docs advise, so that every transaction is explicit.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=30000"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A writer takes the file's write lock up front, so two never deadlock upgrading to it; a
        # reader takes none: in WAL mode it reads a snapshot, and waits for no writer.
        reads_only = connection.get_execution_options().get(_READS_ONLY)
        connection.exec_driver_sql("BEGIN" if reads_only else "BEGIN IMMEDIATE")

    @event.listens_for(engine.sync_engine, "invalidate")
    def _on_invalidate(dbapi_connection: Any, _record: Any, _exception: BaseException | None) -> None:
        # A task cancelled mid-statement (shutdown cancels the integrator) gets its connection
        # invalidated and closed; but the cancellation's traceback still holds the statement's
        # cursor, and SQLite does not close a connection with a live statement: it would keep its
        # transaction, and the file's write lock, until the garbage collector ran. Roll back first.
        with contextlib.suppress(Exception):  # the close that follows is all that is left to try
            dbapi_connection.rollback()


_READS_ONLY = "seenby_reads_only"  # an execution option: this engine's transactions never write


class Database:
    """One engine per process, plus what serialises writers to one customer's chain."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.resolved_database_url
        pooled = functools.partial(make_engine, pool_size=settings.db_pool_size,
                                   pool_timeout=settings.db_pool_timeout_seconds)
        self.engine = pooled(self.url)
        # With webhooks on, every session carries the outbox: entries appended in it write their
        # notices in the same transaction (service.notices.outbox).
        self.outbox = (Outbox(frozenset(settings.webhook_types), settings.webhook_retry_seconds)
                       if settings.webhook_url else None)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False,
                                           info={OUTBOX_KEY: self.outbox} if self.outbox else None)
        self.sqlite = is_sqlite(self.url)
        # The read handles: everything that only reads opens one of these, never `engine` or
        # `sessions`. On SQLite they begin without the write lock (in WAL mode a reader reads a
        # snapshot and waits for no writer). `read_sessions` run each statement on its own on
        # PostgreSQL: no BEGIN and ROLLBACK round trips, and in READ COMMITTED a transaction would
        # not give the statements one snapshot anyway. `read_engine` keeps transactions, which a
        # server-side cursor streaming a large result needs.
        self.read_engine = (
            self.engine.execution_options(**{_READS_ONLY: True}) if self.sqlite else self.engine
        )
        self.read_sessions = async_sessionmaker(
            self.read_engine if self.sqlite else self.engine.execution_options(isolation_level="AUTOCOMMIT"),
            expire_on_commit=False,
        )
        # The reads a standby may serve (CONTRACT "Reads from a standby"): on the standby's engine
        # when SEENBY_READ_DATABASE_URL names one, else the same as `read_sessions`/`read_engine`.
        self.standby_engine = pooled(settings.read_database_url) if settings.read_database_url else None
        self.replica_engine = self.standby_engine or self.read_engine
        self.replica_sessions = async_sessionmaker(
            self.standby_engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False,
        ) if self.standby_engine else self.read_sessions
        # For a read whose statements must all see one state of the database (a completeness proof
        # reads the index and the log that commits to it): REPEATABLE READ on PostgreSQL; on SQLite
        # a read transaction already reads one snapshot.
        repeatable = self.engine.execution_options(isolation_level="REPEATABLE READ")
        self.snapshot_sessions = async_sessionmaker(
            self.read_engine if self.sqlite else repeatable,
            expire_on_commit=False,
        )
        # SQLite has one writer per file; serialise in-process so writers queue instead of failing.
        self._sqlite_write_lock = asyncio.Lock()
        # Set after every commit that appended entries: wakes this process's integrator early.
        self.appended = asyncio.Event()
        # Set after every commit that wrote notices: wakes this process's deliverer.
        self.noticed = asyncio.Event()
        # Called after every commit that appended entries, with the customers written (event streams).
        self.on_commit: list[Callable[[set[str]], None]] = []

    @contextlib.asynccontextmanager
    async def write(self, customer_ids: Iterable[str]) -> AsyncIterator[AsyncSession]:
        """A committed-on-exit transaction holding every named customer's chain lock (more can be
        taken inside it with `lock`)."""
        async with contextlib.AsyncExitStack() as stack:
            if self.sqlite:
                await stack.enter_async_context(self._sqlite_write_lock)
            session = await stack.enter_async_context(self.sessions())
            await stack.enter_async_context(session.begin())
            await self.lock(session, customer_ids)
            yield session
        written = session.info.get(_LOCKED_CUSTOMERS)
        if written:
            self.appended.set()
            for callback in self.on_commit:
                callback(written)
        if wrote_notices(session):
            self.noticed.set()

    async def lock(self, session: AsyncSession, customer_ids: Iterable[str]) -> None:
        """Take the chain locks of these customers, in the `write` transaction of `session`."""
        customer_ids = list(customer_ids)
        if not customer_ids:
            return
        session.info.setdefault(_LOCKED_CUSTOMERS, set()).update(customer_ids)
        if not self.sqlite:
            await lock_customers(session, customer_ids)

    async def on_replica(self, read: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """`read` on the standby, and again on the primary when it asks for a tree size the standby
        has not replayed yet: a checkpoint a client was just served is always provable."""
        async with self.replica_sessions() as session:
            try:
                return await read(session)
            except AheadOfThisDatabase:
                if self.standby_engine is None:
                    raise
        async with self.read_sessions() as session:
            return await read(session)

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.standby_engine is not None:
            await self.standby_engine.dispose()


_LOCKED_CUSTOMERS = "seenby.locked_customers"  # a session.info key: the customers it appends to
_LOCK_CUSTOMERS = text(
    "SELECT pg_advisory_xact_lock(k) FROM ("
    " SELECT DISTINCT hashtextextended(c, 0) AS k FROM unnest(CAST(:ids AS text[])) AS c ORDER BY k"
    ") AS keys"
)


@contextlib.asynccontextmanager
async def uninterrupted_read() -> AsyncIterator[None]:
    """Around one bounded read of a streaming response. A client that hangs up cancels the stream,
    and a read cancelled midway makes SQLAlchemy close its pooled connection abruptly (SQLite's
    leaves a task to be destroyed pending) rather than give it back. Inside, the read is shielded
    and finishes first; a stream already cancelled starts no new one."""
    await anyio.lowlevel.checkpoint_if_cancelled()
    with anyio.CancelScope(shield=True):
        yield


async def lock_customers(session: AsyncSession, customer_ids: Iterable[str]) -> None:
    """Transaction-scoped advisory locks, one per customer, taken in one sorted order (no deadlocks)."""
    ids = sorted(set(customer_ids))
    if ids:
        await session.execute(_LOCK_CUSTOMERS, {"ids": ids})


def tables_of(*models: type[SQLModel]) -> tuple[Table, ...]:
    """Table models' Tables, which SQLModel sets only at runtime (so type checkers cannot see
    `Model.__table__`)."""
    return tuple(SQLModel.metadata.tables[str(model.__tablename__)] for model in models)


# What runs a statement: a session, or a connection of its own.
Executor = AsyncSession | AsyncConnection


def dialect_of(executor: Executor) -> str:
    return (executor.get_bind() if isinstance(executor, AsyncSession) else executor).dialect.name


def engine_of(executor: Executor) -> Engine:
    """The (sync) engine under the executor: one per database an app opened and kind of session
    (execution options make an engine of their own), never shared between apps, for what a process
    may remember about that database."""
    return executor.get_bind().engine if isinstance(executor, AsyncSession) else executor.sync_engine


def per_dialect(build: Callable[[str], T]) -> Callable[[Executor], T]:
    """A statement built once per dialect and reused, its values bound at execution: building a
    select and its cache key anew cost as much CPU as running it (bench/RESULTS.md, session 5)."""
    built = functools.cache(build)

    def for_session(executor: Executor) -> T:
        return built(dialect_of(executor))

    return for_session


def one_of(dialect: str, column: Any, name: str) -> Any:
    """`column IN :name`, for a statement built with `per_dialect` and run with a list bound to
    `name`. On PostgreSQL `= ANY(:name)`: one array parameter, so one prepared statement however
    many values (an expanding IN renders another statement for every count)."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))


# Dependencies are async on purpose: FastAPI runs a plain `def` dependency in a thread pool,
# a thread hop per request for a one-line lookup.
async def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def get_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.database.read_sessions() as session:
        yield session


async def get_replica_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.database.replica_sessions() as session:
        yield session


async def get_snapshot_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.database.snapshot_sessions() as session:
        yield session


DatabaseDep = Annotated[Database, Depends(get_database)]
# Requests that write go through Database.write (or the Recorder); this session only reads.
ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session)]
SnapshotSessionDep = Annotated[AsyncSession, Depends(get_snapshot_session)]
# Reads a standby may serve, possibly a little behind the primary (README "Reads from a standby").
ReplicaSessionDep = Annotated[AsyncSession, Depends(get_replica_session)]
