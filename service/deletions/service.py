"""Deletion requests: filing, each service's task, completion, rejection; every step a ledger entry."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service import clock
from service.clock import format_micros
from service.db import Database
from service.deletions.tables import (
    request_clips,
    requests,
    tasks,
)
from service.errors import Conflict, NotFound
from service.ids import new_id
from service.ledger import store
from service.ledger.kinds import EntryKind
from service.metrics import DELETION_REQUESTS, DELETION_REQUESTS_OVERDUE
from service.paging import Page, decode_id_cursor, encode_cursor
from service.settings import Settings
from service.vocabulary import OPEN_DELETION_STATUSES, DeletionStatus, TaskStatus

OPEN = OPEN_DELETION_STATUSES
SYSTEM = "seenby"


def _time(micros: int | None) -> str | None:
    return format_micros(micros) if micros is not None else None


def _task_view(task: Any, request: Any, clip_ids: list[str] | None) -> dict[str, Any]:
    view = {
        "id": task.id, "request_id": task.request_id, "service": task.service, "status": task.status,
        "evidence": task.evidence, "completed_at": _time(task.completed_at_us),
        "customer_id": request.customer_id, "due_at": format_micros(request.due_at_us),
    }
    if clip_ids is None:
        view["scope"] = "all"
    else:
        view["clip_ids"] = clip_ids
    return view


def _request_view(request: Any, clip_ids: list[str] | None, request_tasks: list[Any]) -> dict[str, Any]:
    return {
        "id": request.id, "customer_id": request.customer_id,
        "scope": request.scope, "clip_ids": clip_ids, "status": request.status,
        "filed_at": format_micros(request.filed_at_us), "due_at": format_micros(request.due_at_us),
        "completed_at": _time(request.completed_at_us), "rejected_at": _time(request.rejected_at_us),
        "reason": request.reject_reason,
        "overdue": request.status in OPEN and clock.now_us() > request.due_at_us,
        "tasks": [_task_view(t, request, clip_ids) for t in request_tasks],
    }


async def _clips_of(session: AsyncSession, request_ids: list[str]) -> dict[str, list[str]]:
    rows = await session.execute(
        select(request_clips.c.request_id, request_clips.c.clip_id)
        .where(request_clips.c.request_id.in_(request_ids)).order_by(request_clips.c.clip_id)
    )
    clips: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        clips[row.request_id].append(row.clip_id)
    return clips


async def _views(session: AsyncSession, rows: list[Any]) -> list[dict[str, Any]]:
    """Requests with their clips and tasks: three queries for a whole page."""
    ids = [r.id for r in rows]
    clips = await _clips_of(session, ids)
    task_rows = await session.execute(
        select(tasks).where(tasks.c.request_id.in_(ids)).order_by(tasks.c.service)
    )
    by_request: dict[str, list[Any]] = defaultdict(list)
    for task in task_rows:
        by_request[task.request_id].append(task)
    return [
        _request_view(r, clips[r.id] if r.scope == "clips" else None, by_request[r.id]) for r in rows
    ]


async def file_request(
    database: Database, customer_id: str, clip_ids: list[str] | None, settings: Settings
) -> dict[str, Any]:
    request_id = new_id()
    services = sorted(set(settings.deletion_services))
    async with database.write([customer_id]) as session:
        now = clock.now_us()
        due = now + round(settings.deletion_due_days * clock.DAY_US)
        # With no service holding clips there is nothing to wait for.
        status = DeletionStatus.PENDING if services else DeletionStatus.COMPLETED
        body: dict[str, Any] = {"request_id": request_id, "due_at": format_micros(due), "services": services}
        body.update({"clip_ids": clip_ids} if clip_ids else {"scope": "all"})
        new_entries = [store.NewEntry(customer_id=customer_id, kind=EntryKind.DELETION_REQUESTED,
                                      recorded_by=customer_id, body=body)]
        if not services:
            new_entries.append(store.NewEntry(customer_id=customer_id, kind=EntryKind.DELETION_COMPLETED,
                                              recorded_by=SYSTEM, body={"request_id": request_id}))
        requested, *_ = await store.append(session, new_entries, now)
        await session.execute(requests.insert(), [{
            "id": request_id, "customer_id": customer_id, "scope": "clips" if clip_ids else "all",
            "status": status, "filed_at_us": now, "due_at_us": due,
            "completed_at_us": None if services else now, "rejected_at_us": None, "reject_reason": None,
            "requested_seq": requested.customer_seq,
        }])
        if clip_ids:
            await session.execute(request_clips.insert(), [
                {"request_id": request_id, "clip_id": clip, "customer_id": customer_id} for clip in clip_ids
            ])
        if services:
            await session.execute(tasks.insert(), [
                {"id": new_id(), "request_id": request_id, "service": service, "status": TaskStatus.PENDING,
                 "created_at_us": now, "evidence": None, "completed_at_us": None}
                for service in services
            ])
        [view] = await _views(session, [await _request_row(session, request_id)])
    return view


async def _request_row(session: AsyncSession, request_id: str) -> Any:
    return (await session.execute(select(requests).where(requests.c.id == request_id))).one()


async def list_requests(
    session: AsyncSession, customer_id: str, *, limit: int, cursor: str | None
) -> Page[dict[str, Any]]:
    """Newest first."""
    query = select(requests).where(requests.c.customer_id == customer_id)
    after = decode_id_cursor(cursor)
    if after is not None:
        query = query.where(requests.c.id < after)
    rows = list(await session.execute(query.order_by(requests.c.id.desc()).limit(limit + 1)))
    items = await _views(session, rows[:limit])
    return Page(items=items, next_cursor=encode_cursor(rows[limit - 1].id) if len(rows) > limit else None)


async def get_request(session: AsyncSession, customer_id: str, request_id: str) -> dict[str, Any]:
    row = (await session.execute(select(requests).where(
        requests.c.id == request_id, requests.c.customer_id == customer_id))).first()
    if row is None:
        raise NotFound(f"no deletion request {request_id}")
    [view] = await _views(session, [row])
    return view


async def list_tasks(
    session: AsyncSession, service: str, *, status: str | None, limit: int, cursor: str | None
) -> Page[dict[str, Any]]:
    """The caller's own tasks, oldest first: a work queue."""
    query = (
        select(tasks, requests.c.customer_id, requests.c.due_at_us, requests.c.scope)
        .join(requests, requests.c.id == tasks.c.request_id)
        .where(tasks.c.service == service)
    )
    if status is not None:
        query = query.where(tasks.c.status == status)
    after = decode_id_cursor(cursor)
    if after is not None:
        query = query.where(tasks.c.id > after)
    rows = list(await session.execute(query.order_by(tasks.c.id).limit(limit + 1)))
    page = rows[:limit]
    clips = await _clips_of(session, sorted({r.request_id for r in page}))
    items = [_task_view(r, r, clips[r.request_id] if r.scope == "clips" else None) for r in page]
    return Page(items=items, next_cursor=encode_cursor(page[-1].id) if len(rows) > limit else None)


async def _owned_task(session: AsyncSession, service: str, task_id: str) -> Any:
    row = (await session.execute(
        select(tasks, requests.c.customer_id, requests.c.due_at_us, requests.c.scope)
        .join(requests, requests.c.id == tasks.c.request_id)
        .where(tasks.c.id == task_id, tasks.c.service == service)
    )).first()
    if row is None:  # another service's task is as absent as a task that never was
        raise NotFound(f"no deletion task {task_id} for {service}")
    return row


async def complete_task(database: Database, service: str, task_id: str, evidence: str) -> dict[str, Any]:
    async with database.read_sessions() as session:
        customer_id = (await _owned_task(session, service, task_id)).customer_id
    async with database.write([customer_id]) as session:
        task = await _owned_task(session, service, task_id)
        if task.status != TaskStatus.COMPLETED:
            now = clock.now_us()
            await session.execute(update(tasks).where(tasks.c.id == task_id).values(
                status=TaskStatus.COMPLETED, evidence=evidence, completed_at_us=now))
            new_entries = [store.NewEntry(
                customer_id=customer_id, kind=EntryKind.DELETION_TASK_COMPLETED, recorded_by=service,
                body={"request_id": task.request_id, "task_id": task_id, "service": service,
                      "evidence": evidence, "completed_at": format_micros(now)},
            )]
            request = await _request_row(session, task.request_id)
            still_open = await session.scalar(select(func.count()).select_from(tasks).where(
                tasks.c.request_id == task.request_id, tasks.c.status != TaskStatus.COMPLETED))
            if request.status in OPEN:
                if still_open:
                    await session.execute(update(requests).where(requests.c.id == request.id)
                                          .values(status=DeletionStatus.IN_PROGRESS))
                else:
                    await session.execute(update(requests).where(requests.c.id == request.id)
                                          .values(status=DeletionStatus.COMPLETED, completed_at_us=now))
                    new_entries.append(store.NewEntry(
                        customer_id=customer_id, kind=EntryKind.DELETION_COMPLETED, recorded_by=SYSTEM,
                        body={"request_id": request.id, "completed_at": format_micros(now)},
                    ))
            await store.append(session, new_entries, now)
            task = await _owned_task(session, service, task_id)
        clips = await _clips_of(session, [task.request_id])
        view = _task_view(task, task, clips[task.request_id] if task.scope == "clips" else None)
    return view


async def reject(database: Database, request_id: str, reason: str, rejected_by: str) -> dict[str, Any]:
    async with database.read_sessions() as session:
        row = (await session.execute(
            select(requests.c.customer_id).where(requests.c.id == request_id))).first()
    if row is None:
        raise NotFound(f"no deletion request {request_id}")
    async with database.write([row.customer_id]) as session:
        request = await _request_row(session, request_id)
        if request.status == DeletionStatus.COMPLETED:
            raise Conflict(f"deletion request {request_id} is already completed")
        if request.status != DeletionStatus.REJECTED:
            now = clock.now_us()
            await session.execute(update(requests).where(requests.c.id == request_id).values(
                status=DeletionStatus.REJECTED, rejected_at_us=now, reject_reason=reason))
            await store.append(session, [store.NewEntry(
                customer_id=request.customer_id, kind=EntryKind.DELETION_REJECTED, recorded_by=rejected_by,
                body={"request_id": request_id, "reason": reason},
            )], now)
            request = await _request_row(session, request_id)
        [view] = await _views(session, [request])
    return view


async def refresh_metrics(session: AsyncSession) -> None:
    """Deletion gauges from the database, so every replica reports the same, whole picture."""
    counts: dict[str, int] = dict((await session.execute(
        select(requests.c.status, func.count()).group_by(requests.c.status))).all())
    for status in DeletionStatus:
        DELETION_REQUESTS.labels(status=status).set(counts.get(status, 0))
    overdue = await session.scalar(select(func.count()).select_from(requests).where(
        requests.c.status.in_(OPEN), requests.c.due_at_us < clock.now_us()))
    DELETION_REQUESTS_OVERDUE.set(overdue or 0)
