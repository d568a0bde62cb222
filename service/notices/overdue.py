"""deletion.overdue: one notice, the first time the deliverer sees a request past its due date.

It announces the request's `deletion_requested` entry. The outbox's key (entry, type) makes it
once only; the scan looks for open overdue requests whose entry has no such notice yet.
"""

from __future__ import annotations

from sqlalchemy import and_, exists, select

from service import clock
from service.db import Database
from service.deletions.tables import requests
from service.ledger.tables import entries
from service.notices.outbox import Outbox
from service.notices.tables import NOTICE_COLUMNS, notices
from service.notices.types import NOTICE_TYPES, PENDING
from service.vocabulary import OPEN_DELETION_STATUSES

OVERDUE = NOTICE_TYPES["deletion.overdue"]


async def notice_overdue_requests(database: Database, outbox: Outbox) -> int:
    """Write the overdue notices not written yet; how many."""
    if "deletion.overdue" not in outbox.types:
        return 0
    now = clock.now_us()
    noticed = exists().where(notices.c.entry_id == entries.c.id, notices.c.type == OVERDUE)
    query = (
        select(entries.c.id)
        .select_from(requests)
        .join(entries, and_(entries.c.customer_id == requests.c.customer_id,
                            entries.c.customer_seq == requests.c.requested_seq))
        .where(requests.c.status.in_(OPEN_DELETION_STATUSES), requests.c.due_at_us <= now, ~noticed)
    )
    async with database.sessions() as session, session.begin():
        entry_ids = list(await session.scalars(query))
        if entry_ids:
            retry_until = now + outbox.retry_seconds * 1_000_000
            await session.execute(notices.insert(), [
                dict(zip(NOTICE_COLUMNS, (entry_id, OVERDUE, now, PENDING, 0, 0, retry_until), strict=True))
                for entry_id in entry_ids])
    if entry_ids:
        database.noticed.set()
    return len(entry_ids)
