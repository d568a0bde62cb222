"""One customer's stream: its entries above a sequence number, then each new one as it commits."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import orjson
from sqlalchemy import select
from sse_starlette import ServerSentEvent

from service.db import Database, uninterrupted_read
from service.events.hub import Subscription
from service.history.views import chain_item, entry_view
from service.ledger import reads
from service.ledger.tables import heads

BATCH = 200  # entries read at a time when a stream catches up
RETRY_MS = 2000  # what a disconnected EventSource waits before reconnecting


async def head_seq(database: Database, customer_id: str) -> int:
    """The customer's last customer_seq, -1 before its first entry."""
    async with database.read_sessions() as session:
        last = await session.scalar(select(heads.c.last_seq).where(heads.c.customer_id == customer_id))
    return -1 if last is None else int(last)


async def entry_events(database: Database, subscription: Subscription, after_seq: int,
                       ends_at: float) -> AsyncIterator[ServerSentEvent]:
    """Every entry above `after_seq` in customer_seq order, each an event whose id is its
    customer_seq and whose data is the chain item the customer reads; until `ends_at` (epoch
    seconds: the token's expiry or the longest a stream lasts), when the client reconnects with
    Last-Event-ID."""
    yield ServerSentEvent(comment="seenby: entries follow", retry=RETRY_MS)
    while True:
        subscription.changed.clear()
        async with uninterrupted_read(), database.read_sessions() as session:
            rows = await reads.customer_chain(session, subscription.customer_id, after_seq=after_seq,
                                              limit=BATCH, regulator=False)
        for row in rows:
            view = entry_view(row.canonical, row.entry_hash, row.log_index, None, with_identity=False)
            item = chain_item(view, row.canonical)
            yield ServerSentEvent(data=orjson.dumps(item).decode(), id=str(row.customer_seq))
            after_seq = row.customer_seq
        if len(rows) == BATCH:
            continue
        left = ends_at - time.time()
        if left <= 0:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(left):
                await subscription.changed.wait()
