"""Health, readiness and metrics: the endpoints operators and orchestrators poll."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Literal, NotRequired

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from typing_extensions import TypedDict

from service.db import Database
from service.deletions import service as deletions
from service.errors import DATABASE_ERRORS, ServiceUnavailable, problem_responses
from service.metrics import metrics_response
from service.migrate import older_revisions

router = APIRouter(tags=["operations"])


class Health(TypedDict):
    status: Literal["ok"]


class ReadDatabase(TypedDict):
    lag_seconds: float  # how far the standby's replay is behind the primary


class Readiness(TypedDict):
    status: Literal["ok"]
    schema: str  # the database's Alembic revision
    read_database: NotRequired[ReadDatabase]  # with SEENBY_READ_DATABASE_URL


# How long /readyz waits for a standby that is just behind to replay what the primary has written,
# before it estimates the lag from the last transaction replayed (an overestimate after an idle
# spell on the primary, so not taken at once).
CATCH_UP_SECONDS = 0.2
_REPLAYED = text(
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() >= CAST(CAST(:lsn AS text) AS pg_lsn),"
    " EXTRACT(EPOCH FROM now() - coalesce(pg_last_xact_replay_timestamp(), pg_postmaster_start_time()))"
)


@router.get("/healthz", summary="The process is up")
async def healthz() -> Health:
    return {"status": "ok"}


@router.get("/readyz", summary="The database is reachable and its schema is current",
            responses=problem_responses(503, s503="The database is unreachable, or its schema is not "
                                                  "the one this build expects (run `seenby migrate`); "
                                                  "or the read database (standby) is unreachable or "
                                                  "further behind than SEENBY_READ_MAX_LAG_SECONDS."))
async def readyz(request: Request) -> Readiness:
    database: Database = request.app.state.database
    try:
        async with database.read_engine.connect() as connection:
            current = await connection.scalar(text("SELECT version_num FROM alembic_version"))
    except SQLAlchemyError as exc:
        raise ServiceUnavailable("the database is unreachable") from exc
    expected = request.app.state.schema_head
    # A revision this build does not know is a newer one (a rolling upgrade migrated first): each
    # migration keeps the previous release working, so this build still works on it. An older or
    # missing one does not.
    if current is None or current in older_revisions():
        raise ServiceUnavailable(
            f"the schema is at {current}, this build expects {expected}: run `seenby migrate`"
        )
    if database.standby_engine is None:
        return {"status": "ok", "schema": current}
    lag = await standby_lag(database.read_engine, database.standby_engine)
    limit = request.app.state.settings.read_max_lag_seconds
    if lag > limit:
        raise ServiceUnavailable(f"the read database (standby) is {lag:.1f} s behind the primary, more than "
                                 f"SEENBY_READ_MAX_LAG_SECONDS ({limit:g} s)")
    return {"status": "ok", "schema": current, "read_database": {"lag_seconds": round(lag, 3)}}


async def standby_lag(primary: AsyncEngine, standby: AsyncEngine) -> float:
    """Seconds the standby's replay is behind the primary: 0 once it has replayed the primary's
    WAL position as of now (waiting CATCH_UP_SECONDS for it), else the age of the last
    transaction it replayed (or, with none replayed yet, the time since it started)."""
    try:
        async with primary.connect() as connection:
            # Flushed, not merely written: a standby is sent no further than that.
            primary_lsn = await connection.scalar(text("SELECT CAST(pg_current_wal_flush_lsn() AS text)"))
        async with standby.connect() as connection:
            started = time.monotonic()
            while True:
                recovering, replayed, age = (await connection.execute(_REPLAYED, {"lsn": primary_lsn})).one()
                if not recovering:
                    raise ServiceUnavailable("SEENBY_READ_DATABASE_URL is not a standby (not in recovery)")
                if replayed:
                    return time.monotonic() - started
                if time.monotonic() - started >= CATCH_UP_SECONDS:
                    return float(age or 0.0)
                await asyncio.sleep(0.02)
    except (SQLAlchemyError, *DATABASE_ERRORS) as exc:
        raise ServiceUnavailable("the read database (standby) is unreachable") from exc


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    with contextlib.suppress(SQLAlchemyError):
        async with request.app.state.database.read_sessions() as session:
            await deletions.refresh_metrics(session)
    return metrics_response()
