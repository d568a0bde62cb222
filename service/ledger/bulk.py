"""Bulk inserts: binary COPY on PostgreSQL (C speed, no per-row Python), executemany elsewhere."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
from sqlalchemy import Table
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import dialect_of


def is_postgresql(session: AsyncSession) -> bool:
    return dialect_of(session) == "postgresql"


async def asyncpg_connection(session: AsyncSession) -> Any:
    """The driver connection under the session's transaction, for what SQLAlchemy cannot batch."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection


async def insert_rows(
    session: AsyncSession, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    if not rows:
        return
    if is_postgresql(session):
        driver = await asyncpg_connection(session)
        try:
            await driver.copy_records_to_table(table.name, records=rows, columns=list(columns))
        except asyncpg.IntegrityConstraintViolationError as exc:
            # The same exception as the executemany path raises, so callers handle one kind.
            raise IntegrityError(f"COPY {table.name}", None, exc) from exc
        return
    await session.execute(table.insert(), [dict(zip(columns, row, strict=True)) for row in rows])
