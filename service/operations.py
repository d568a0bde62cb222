"""Health, readiness and metrics: the endpoints operators and orchestrators poll."""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from service.deletions import service as deletions
from service.errors import problem_response
from service.metrics import metrics_response
from service.migrate import older_revisions

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database is reachable and its schema is current")
async def readyz(request: Request) -> JSONResponse:
    database = request.app.state.database
    try:
        async with database.read_engine.connect() as connection:
            current = await connection.scalar(text("SELECT version_num FROM alembic_version"))
    except SQLAlchemyError:
        return problem_response(503, "Service Unavailable", "the database is unreachable",
                                slug="unavailable")
    expected = request.app.state.schema_head
    # A revision this build does not know is a newer one (a rolling upgrade migrated first): each
    # migration keeps the previous release working, so this build still works on it. An older or
    # missing one does not.
    if current is None or current in older_revisions():
        return problem_response(
            503, "Service Unavailable",
            f"the schema is at {current}, this build expects {expected}: run `seenby migrate`",
            slug="unavailable",
        )
    return JSONResponse({"status": "ok", "schema": current})


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    with contextlib.suppress(SQLAlchemyError):
        async with request.app.state.database.read_sessions() as session:
            await deletions.refresh_metrics(session)
    return metrics_response()
