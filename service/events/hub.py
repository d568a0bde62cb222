"""Which open streams have new entries to send: one watcher per process, whatever the number of
streams.

A commit in this process wakes the streams of the customers it wrote at once. Other processes (more
workers, other replicas) write too, so the watcher also reads, every POLL_SECONDS, the chain heads
of the customers with a stream open: one query for all of them. A stream told "changed" reads its
customer's entries above the last one it sent; the heads are written in the entries' transaction, so
a head it sees always has its entries readable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from sqlalchemy import select

from service.db import Database
from service.errors import TooManyRequests
from service.ledger.tables import heads
from service.metrics import EVENT_STREAMS
from service.settings import Settings

logger = logging.getLogger("seenby.events")

POLL_SECONDS = 0.5
HEADS_PER_QUERY = 1000


class Subscription:
    def __init__(self, customer_id: str) -> None:
        self.customer_id = customer_id
        self.changed = asyncio.Event()


class EventHub:
    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.per_process = settings.event_streams_per_process
        self.per_customer = settings.event_streams_per_customer
        self._streams: dict[str, set[Subscription]] = {}
        self._seen: dict[str, int] = {}  # each watched customer's head, as last read
        self._count = 0
        self.keepalive_seconds = settings.event_stream_keepalive_seconds
        self.max_seconds = settings.event_stream_max_seconds
        database.on_commit.append(self.wake)

    def wake(self, customer_ids: Iterable[str]) -> None:
        """Called after a commit in this process that wrote these customers' chains."""
        for customer_id in customer_ids:
            for subscription in self._streams.get(customer_id, ()):
                subscription.changed.set()

    def open(self, customer_id: str) -> Subscription:
        """A stream's place in the hub; 429 over either bound. `close` gives it back."""
        mine = self._streams.setdefault(customer_id, set())
        if len(mine) >= self.per_customer:
            raise TooManyRequests(f"customer {customer_id} has {len(mine)} event streams open already "
                                  f"(at most {self.per_customer})", retry_after_seconds=30)
        if self._count >= self.per_process:
            raise TooManyRequests("this server has as many event streams open as it takes",
                                  retry_after_seconds=5)
        subscription = Subscription(customer_id)
        mine.add(subscription)
        self._count += 1
        EVENT_STREAMS.set(self._count)
        return subscription

    def close(self, subscription: Subscription) -> None:
        """Idempotent: the stream's end and the response's background task both call it."""
        mine = self._streams.get(subscription.customer_id, set())
        if subscription not in mine:
            return
        mine.discard(subscription)
        if not mine:
            del self._streams[subscription.customer_id]
            self._seen.pop(subscription.customer_id, None)
        self._count -= 1
        EVENT_STREAMS.set(self._count)

    async def run(self) -> None:
        """Poll the watched customers' heads until cancelled."""
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                await self._poll()
            except Exception:  # the database is away: the next poll tries again
                logger.exception("reading chain heads for event streams failed")

    async def _poll(self) -> None:
        watched = list(self._streams)
        for start in range(0, len(watched), HEADS_PER_QUERY):
            chunk = watched[start:start + HEADS_PER_QUERY]
            async with self.database.read_sessions() as session:
                found = await session.execute(
                    select(heads.c.customer_id, heads.c.last_seq).where(heads.c.customer_id.in_(chunk)))
            moved = []
            for customer_id, last_seq in found:
                if self._seen.get(customer_id) != last_seq:
                    self._seen[customer_id] = last_seq
                    moved.append(customer_id)
            self.wake(moved)
