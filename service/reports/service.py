"""The transparency report, every number an aggregate query on either backend."""

from __future__ import annotations

import csv
import io
import time
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, cast, func, literal, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth import Principal
from service.db import dialect_of
from service.deletions.tables import DeletionRequest
from service.errors import Unprocessable
from service.ledger.tables import LedgerEntry
from service.tenancy import jurisdiction_condition
from service.types import format_micros, to_micros

entries = LedgerEntry.__table__
requests = DeletionRequest.__table__

STATUSES = ("pending", "in_progress", "completed", "rejected")
OPEN_STATUSES = ("pending", "in_progress")
REPORTED_FLAGS = ("access_after_deletion", "unconsented")
MICROS_PER_DAY = 86_400 * 1_000_000

_DIMENSIONS = {
    "by_purpose": entries.c.purpose,
    "by_action": entries.c.action,
    "by_actor_type": entries.c.actor_type,
    "by_organization": entries.c.actor_organization,
    "by_actor_country": entries.c.actor_country,
}


def _period(column: Any, since: datetime | None, until: datetime | None) -> list[ColumnElement[bool]]:
    if since is not None and until is not None and to_micros(since) > to_micros(until):
        raise Unprocessable("since must not be after until", errors=[
            {"field": "query.since", "message": "after until", "type": "value_error"}])
    conditions = []
    if since is not None:
        conditions.append(column >= to_micros(since))
    if until is not None:
        conditions.append(column < to_micros(until))
    return conditions


def _scoped(principal: Principal, column: Any, conditions: list[ColumnElement[bool]]
            ) -> list[ColumnElement[bool]]:
    scope = jurisdiction_condition(principal, column)
    return conditions if scope is None else [*conditions, scope]


async def transparency(session: AsyncSession, principal: Principal, since: datetime | None,
                       until: datetime | None) -> dict[str, Any]:
    accesses = _scoped(principal, entries.c.customer_id,
                       [entries.c.kind == "access", *_period(entries.c.recorded_at_us, since, until)])
    filed = _scoped(principal, requests.c.customer_id, _period(requests.c.filed_at_us, since, until))
    return {
        "period": {
            "since": None if since is None else format_micros(to_micros(since)),
            "until": None if until is None else format_micros(to_micros(until)),
        },
        "accesses": await _accesses(session, accesses),
        "deletion_requests": await _deletion_requests(session, filed),
    }


async def _accesses(session: AsyncSession, scope: list[ColumnElement[bool]]) -> dict[str, Any]:
    totals = (await session.execute(
        select(func.count(), func.count(func.distinct(entries.c.customer_id))).where(*scope)
    )).one()
    report: dict[str, Any] = {"total": totals[0]}
    for name, column in _DIMENSIONS.items():
        rows = await session.execute(
            select(column, func.count()).where(*scope, column.is_not(None)).group_by(column)
            .order_by(column)
        )
        report[name] = {value: count for value, count in rows.all()}
    report["flagged"] = await _flag_counts(session, scope)
    report["distinct_customers"] = totals[1]
    clips = (
        select(entries.c.customer_id, entries.c.clip_id)
        .where(*scope, entries.c.actor_type == "human").distinct().subquery()
    )
    report["distinct_clips_seen_by_humans"] = await session.scalar(
        select(func.count()).select_from(clips)
    ) or 0
    return report


async def _flag_counts(session: AsyncSession, scope: list[ColumnElement[bool]]) -> dict[str, int]:
    """Entries per flag; `flags` holds them comma-joined, split here by the database itself."""
    flagged = [*scope, entries.c.flags != ""]
    if dialect_of(session) == "postgresql":
        split = (
            select(func.unnest(func.string_to_array(entries.c.flags, ",")).label("flag"))
            .where(*flagged).subquery()
        )
        query = select(split.c.flag, func.count()).group_by(split.c.flag)
    else:
        as_json = literal('["') + func.replace(entries.c.flags, ",", '","') + literal('"]')
        each = func.json_each(cast(as_json, String)).table_valued("value")
        query = (
            select(each.c.value, func.count()).select_from(entries).join(each, true())
            .where(*flagged).group_by(each.c.value)
        )
    counts = {flag: 0 for flag in REPORTED_FLAGS}
    counts.update({flag: count for flag, count in (await session.execute(query)).all()})
    return dict(sorted(counts.items()))


async def _deletion_requests(session: AsyncSession, scope: list[ColumnElement[bool]]) -> dict[str, Any]:
    now_us = time.time_ns() // 1000
    rows = await session.execute(
        select(requests.c.status, func.count()).where(*scope).group_by(requests.c.status)
    )
    by_status = {status: 0 for status in STATUSES}
    by_status.update({status: count for status, count in rows.all()})
    overdue = await session.scalar(
        select(func.count()).select_from(requests)
        .where(*scope, requests.c.status.in_(OPEN_STATUSES), requests.c.due_at_us < now_us)
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
    completed = [*scope, requests.c.status == "completed", requests.c.completed_at_us.is_not(None)]
    n = await session.scalar(select(func.count()).select_from(requests).where(*completed)) or 0
    if n == 0:
        return None
    duration = requests.c.completed_at_us - requests.c.filed_at_us
    middle = (await session.execute(
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
