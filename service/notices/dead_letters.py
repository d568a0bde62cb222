"""Dead letters: notices that kept failing past their retry period, kept for an admin to replay."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from service import clock
from service.clock import format_micros
from service.db import Database
from service.errors import Unprocessable
from service.ledger.tables import entries
from service.notices.tables import notices
from service.notices.types import DEAD, NOTICE_TYPES, PENDING, TYPE_NAMES
from service.paging import Page, decode_cursor, encode_cursor, is_seq


async def listed(session: AsyncSession, *, limit: int, cursor: str | None) -> Page[dict[str, Any]]:
    query = (select(notices, entries.c.customer_id, entries.c.customer_seq, entries.c.entry_hash)
             .join(entries, entries.c.id == notices.c.entry_id).where(notices.c.state == DEAD))
    position = decode_cursor(cursor)
    if position is not None:
        entry_id, notice_type = _position(position)
        query = query.where(or_(notices.c.entry_id > entry_id,
                                and_(notices.c.entry_id == entry_id, notices.c.type > notice_type)))
    rows = list(await session.execute(query.order_by(notices.c.entry_id, notices.c.type).limit(limit + 1)))
    items = [{
        "webhook_id": f"{TYPE_NAMES[row.type]}:{row.entry_hash}", "type": TYPE_NAMES[row.type],
        "customer_id": row.customer_id, "entry_hash": row.entry_hash, "customer_seq": row.customer_seq,
        "created_at": format_micros(row.created_at_us), "attempts": row.attempts,
        "last_error": row.last_error,
    } for row in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    return Page(items=items, next_cursor=encode_cursor(f"{last.entry_id}.{last.type}") if last else None)


def _position(position: str) -> tuple[int, int]:
    entry_id, _, notice_type = position.partition(".")
    if not (is_seq(entry_id) and is_seq(notice_type) and int(notice_type) in TYPE_NAMES):
        raise Unprocessable.at("query.cursor", "the cursor is not one this service issued", "invalid cursor")
    return int(entry_id), int(notice_type)


async def replay(database: Database, webhook_ids: list[str] | None) -> int:
    """Make these dead letters (None: all of them) pending again, retried for a new period from now."""
    now = clock.now_us()
    retry_until = now + (database.outbox.retry_seconds if database.outbox else 0) * 1_000_000
    revived = update(notices).where(notices.c.state == DEAD).values(
        state=PENDING, next_attempt_at_us=0, retry_until_us=retry_until, last_error=None)
    async with database.sessions() as session, session.begin():
        if webhook_ids is not None:
            wanted = [(name, entry_hash) for name, _, entry_hash in
                      (webhook_id.partition(":") for webhook_id in webhook_ids) if name in NOTICE_TYPES]
            ids = {entry_hash: entry_id for entry_hash, entry_id in await session.execute(
                select(entries.c.entry_hash, entries.c.id)
                .where(entries.c.entry_hash.in_({entry_hash for _, entry_hash in wanted})))}
            keys = [(ids[entry_hash], NOTICE_TYPES[name]) for name, entry_hash in wanted if entry_hash in ids]
            if not keys:
                return 0
            revived = revived.where(tuple_(notices.c.entry_id, notices.c.type).in_(keys))
        result = await session.execute(revived)
    database.noticed.set()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
