"""The transparency report, every number an aggregate query on either backend."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth import Principal
from service.deletions.tables import requests
from service.ledger import reads
from service.objections.tables import objections
from service.tenancy import jurisdiction_customers
from service.types import Period
from service.vocabulary import OPEN_DELETION_STATUSES, DeletionStatus

REPORTED_FLAGS = ("access_after_deletion", "unconsented")
MICROS_PER_DAY = 86_400 * 1_000_000

async def transparency(session: AsyncSession, principal: Principal, period: Period) -> dict[str, Any]:
    scope = jurisdiction_customers(principal)
    filed = period.conditions(requests.c.filed_at_us)
    if scope is not None:
        filed.append(requests.c.customer_id.in_(scope))
    return {
        "period": period.bounds(),
        "accesses": await reads.access_report(session, period, scope, REPORTED_FLAGS),
        "deletion_requests": await _deletion_requests(session, filed),
        "objections": await _objections(session, period, scope),
    }


async def _objections(session: AsyncSession, period: Period, scope: Any) -> dict[str, Any]:
    """Objections filed in the period, by the objected access's purpose and organization."""
    where = period.conditions(objections.c.filed_at_us)
    if scope is not None:
        where.append(objections.c.customer_id.in_(scope))

    async def counted(column: Any) -> dict[str, int]:
        rows = await session.execute(select(column, func.count()).where(*where, column.is_not(None))
                                     .group_by(column).order_by(column))
        return {name: count for name, count in rows.all()}

    total = await session.scalar(select(func.count()).select_from(objections).where(*where)) or 0
    return {"total": total, "by_purpose": await counted(objections.c.purpose),
            "by_organization": await counted(objections.c.organization)}


async def _deletion_requests(session: AsyncSession, scope: list[ColumnElement[bool]]) -> dict[str, Any]:
    now_us = time.time_ns() // 1000
    rows = await session.execute(
        select(requests.c.status, func.count()).where(*scope).group_by(requests.c.status)
    )
    by_status = {status.value: 0 for status in DeletionStatus}
    by_status.update({status: count for status, count in rows.all()})
    overdue = await session.scalar(
        select(func.count()).select_from(requests)
        .where(*scope, requests.c.status.in_(OPEN_DELETION_STATUSES), requests.c.due_at_us < now_us)
    ) or 0
    return {
        "filed": sum(by_status.values()),
        "by_status": by_status,
        "overdue": overdue,
        "median_days_to_complete": await _median_days(session, scope),
    }


async def _median_days(session: AsyncSession, scope: list[ColumnElement[bool]]) -> float | None:
    """The median by ORDER BY ... LIMIT/OFFSET: SQLite has no percentile function, and one method
    for both backends keeps their answers identical."""
    completed = [*scope, requests.c.status == DeletionStatus.COMPLETED,
                 requests.c.completed_at_us.is_not(None)]
    n = await session.scalar(select(func.count()).select_from(requests).where(*completed)) or 0
    if n == 0:
        return None
    duration = requests.c.completed_at_us - requests.c.filed_at_us
    middle: Sequence[int] = (await session.execute(
        select(duration).where(*completed).order_by(duration).limit(2 - n % 2).offset((n - 1) // 2)
    )).scalars().all()
    return round(sum(middle) / len(middle) / MICROS_PER_DAY, 3)


def as_csv(report: dict[str, Any]) -> str:
    """One number a row: section, metric, key (for a breakdown), value."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(("section", "metric", "key", "value"))
    for section, metrics in report.items():
        for metric, value in metrics.items():
            if isinstance(value, dict):
                writer.writerows((section, metric, key, count) for key, count in value.items())
            else:
                writer.writerow((section, metric, "", "" if value is None else value))
    return buffer.getvalue()
