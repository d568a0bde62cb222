"""Bulk writes: inserts by binary COPY and upserts by unnest() on PostgreSQL (C speed, no per-row
Python), executemany elsewhere."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import asyncpg
from sqlalchemy import Executable, Table, TypeDecorator
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import Executor, dialect_of


def is_postgresql(executor: Executor) -> bool:
    return dialect_of(executor) == "postgresql"


async def asyncpg_connection(executor: Executor) -> Any:
    """The driver connection under the executor's transaction, for what SQLAlchemy cannot batch."""
    connection = await executor.connection() if isinstance(executor, AsyncSession) else executor
    raw = await connection.get_raw_connection()
    return raw.driver_connection


async def insert_rows(
    session: Executor, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    if not rows:
        return
    if not is_postgresql(session):
        await _execute_many(session, table.insert(), columns, rows)
        return
    try:
        await (await asyncpg_connection(session)).copy_records_to_table(
            table.name, records=_as_stored(table, tuple(columns), rows), columns=list(columns))
    except asyncpg.IntegrityConstraintViolationError as exc:
        # The same exception as the executemany path raises, so callers handle one kind.
        raise IntegrityError(f"COPY {table.name}", None, exc) from exc


def _as_stored(
    table: Table, columns: tuple[str, ...], rows: Sequence[Sequence[Any]]
) -> Sequence[Sequence[Any]]:
    """COPY and unnest() bypass SQLAlchemy, so the columns of a custom type (TypeDecorator) convert
    here."""
    converters = _converters(table, columns)
    if not converters:
        return rows
    stored = []
    for row in rows:  # a copy of each row, its few custom columns converted in place: no per-column loop
        copy = list(row)
        for position, convert in converters:
            copy[position] = convert(copy[position])
        stored.append(copy)
    return stored


@functools.cache
def _converters(table: Table, columns: tuple[str, ...]) -> tuple[tuple[int, Any], ...]:
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    return tuple((position, functools.partial(column_type.process_bind_param, dialect=dialect))
                 for position, name in enumerate(columns)
                 if isinstance(column_type := table.c[name].type, TypeDecorator))


async def upsert_rows(
    session: Executor, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert rows; where a row's primary key is taken, overwrite that row's other columns."""
    if rows and is_postgresql(session):
        driver = await asyncpg_connection(session)
        stored = _as_stored(table, tuple(columns), rows)
        await driver.execute(_postgresql_upsert(table, tuple(columns)), *zip(*stored, strict=True))
    elif rows:
        await _execute_many(session, _sqlite_upsert(table, tuple(columns)), columns, rows)


async def _execute_many(
    session: Executor, statement: Executable, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    await session.execute(statement, [dict(zip(columns, row, strict=True)) for row in rows])


@functools.cache
def _sqlite_upsert(table: Table, columns: tuple[str, ...]) -> Executable:
    insert = sqlite.insert(table)
    key = [column.name for column in table.primary_key]
    return insert.on_conflict_do_update(
        index_elements=key, set_={c: insert.excluded[c] for c in columns if c not in key})


@functools.cache
def _postgresql_upsert(table: Table, columns: tuple[str, ...]) -> str:
    """One array parameter a column, so one prepared statement however many rows."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    arrays = ", ".join(
        f"${position}::{table.c[name].type.compile(dialect=dialect)}[]"
        for position, name in enumerate(columns, 1)
    )
    key = [column.name for column in table.primary_key]
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in columns if name not in key)
    return (f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}")
