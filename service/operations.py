"""Health, readiness and metrics: the endpoints operators and orchestrators poll."""

from __future__ import annotations

import contextlib
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from typing_extensions import TypedDict

from service.deletions import service as deletions
from service.errors import ServiceUnavailable, problem_responses
from service.metrics import metrics_response
from service.migrate import older_revisions

router = APIRouter(tags=["operations"])


class Health(TypedDict):
    status: Literal["ok"]


class Readiness(TypedDict):
    status: Literal["ok"]
    schema: str  # the database's Alembic revision


@router.get("/healthz", summary="The process is up")
async def healthz() -> Health:
    return {"status": "ok"}


@router.get("/readyz", summary="The database is reachable and its schema is current",
            responses=problem_responses(503, s503="The database is unreachable, or its schema is not "
                                                  "the one this build expects (run `seenby migrate`)."))
async def readyz(request: Request) -> Readiness:
    database = request.app.state.database
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
    return {"status": "ok", "schema": current}


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    with contextlib.suppress(SQLAlchemyError):
        async with request.app.state.database.read_sessions() as session:
            await deletions.refresh_metrics(session)
    return metrics_response()
