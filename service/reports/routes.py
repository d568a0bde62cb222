"""HTTP for the transparency report: GET /v1/reports/transparency (role regulator)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from service.auth import RegulatorPrincipal
from service.db import ReplicaSessionDep
from service.errors import problem_responses
from service.reports import service
from service.reports.schemas import TransparencyReport
from service.types import Period
from service.vocabulary import RecordedSince, RecordedUntil

router = APIRouter(prefix="/v1/reports", tags=["reports"])


CSV = "text/csv; charset=utf-8; header=present"


class ReportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"


@router.get(
    "/transparency", response_model=TransparencyReport,
    responses={
        200: {"content": {CSV: {"schema": {"type": "string"}}}, "description": (
            "Accesses recorded in the period (by purpose, action, actor type, organization and "
            "country; flagged; distinct customers and clips seen by humans) and deletion requests "
            "filed in it. CSV: section, metric, key, value, one number a row.")},
        **problem_responses(422, s422="Schema errors, or a since after until."),
    },
    summary="Transparency report for a period (recorded_at; deletion requests by when filed)",
)
async def transparency(
    principal: RegulatorPrincipal, session: ReplicaSessionDep,
    since: RecordedSince = None,
    until: RecordedUntil = None,
    format: Annotated[ReportFormat, Query(description="json, or csv (text/csv).")] = ReportFormat.JSON,
) -> Any:
    report = await service.transparency(session, principal, Period.of(since, until))
    if format is ReportFormat.CSV:
        return Response(service.as_csv(report), media_type=CSV)
    return report
