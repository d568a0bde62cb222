"""Delivering the outbox to SEENBY_WEBHOOK_URL: at least once, in order per customer.

One deliverer per database: the process that leads integration. It sweeps the pending notices in
entry order, a page at a time; a page's customers are delivered to concurrently, each customer's
notices one after the other. A notice that fails waits (exponential backoff with jitter), and so
do its customer's later ones; so do those of a customer whose turn the receiver's pause (below)
cut short: a customer never gets a notice before an earlier one. A notice still
failing past its `retry_until` is dead-lettered and its customer's next ones go on. An error of
seenby's own in a delivery (rendering or sending it) fails that notice as the receiver would.

A receiver that is down fails every customer at once. After a run of failures the deliverer stops
sweeping for a while (the same backoff, kept for the receiver as a whole), so a dead receiver costs
a few requests per backoff period, not one per pending notice; the first sweep after the pause is
the probe. Delivery never touches the recording path: ingest only writes outbox rows.

Recording writes each transaction's notices packed in one batch row. Before each sweep the
deliverer unpacks batches, oldest first, until UNPACK_AHEAD notices are pending as rows: a live
receiver drains them and gets more at the next sweep, while for a receiver that is down the
backlog stays packed. When every pending row waits on a backoff, a page more is unpacked, so that a
customer whose notices keep failing holds back nobody else; and again only once a delivery has gone
through since: a receiver that takes nothing (down, or refusing everything) gets at most that one
page more, and the rest of the backlog stays packed.

Per-customer order holds across batches: a customer's later batch was written after its earlier
one committed (its chain lock), so it has higher entry ids throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
from sqlalchemy import and_, delete, func, or_, select, tuple_, update

from service import bulk, clock
from service.db import Database
from service.ledger.tables import entries, leaves
from service.metrics import (
    NOTICE_DELIVERIES,
    NOTICE_OLDEST_PENDING_AGE,
    NOTICE_SECONDS,
    NOTICES_DEAD,
    NOTICES_PENDING,
)
from service.notices.outbox import notice_rows, unpack
from service.notices.overdue import notice_overdue_requests
from service.notices.tables import NOTICE_COLUMNS, notice_batches, notices
from service.notices.types import DEAD, DELIVERED, PENDING
from service.notices.webhook import Notice, Signer
from service.settings import Settings

logger = logging.getLogger("seenby.notices")

PAGE_SIZE = 500
UNPACK_AHEAD = 2 * PAGE_SIZE  # notices kept pending as rows, ahead of the receiver
IDLE_SECONDS = 1.0
PERIODIC_SECONDS = 5.0
# Counting the backlog reads all of it: every PERIODIC_SECONDS while it is small, and only every
# COUNT_LARGE_SECONDS once it passes LARGE_BACKLOG (a receiver down for long), so that a backlog of
# millions is not read end to end every few seconds on the machine that is recording.
LARGE_BACKLOG = 10_000
COUNT_LARGE_SECONDS = 60.0
FAILURES_BEFORE_PAUSE = 5  # failures in a row, across customers, that say the receiver is down
MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True)
class Outcome:
    notice: Notice
    delivered: bool
    error: str = ""


class Deliverer:
    def __init__(self, database: Database, settings: Settings, secrets: Sequence[str],
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.database = database
        self.url = settings.webhook_url
        self.signer = Signer(secrets)
        self.timeout = settings.webhook_timeout_seconds
        self.backoff = settings.webhook_backoff_seconds
        self.backoff_max = settings.webhook_backoff_max_seconds
        self.concurrency = settings.webhook_concurrency
        # Redirects are not followed (SECURITY.md): a 3xx is an answer other than 2xx, a failure.
        self._http = httpx.AsyncClient(timeout=self.timeout, transport=transport, follow_redirects=False,
                                       headers={"accept-encoding": "identity"})
        self._failures_in_row = 0
        self._pauses = 0  # pauses in a row: the receiver's own backoff
        self._paused_until = 0.0  # monotonic
        # Whether a page may be unpacked ahead of pending rows that all wait on a backoff: until one
        # is, and again after any delivery has gone through.
        self._may_unpack_ahead = True
        self._periodic_at = 0.0
        self._count_at = 0.0
        self._soonest_retry_us: int | None = None  # of the notices backing off, seen in the last sweep

    async def close(self) -> None:
        await self._http.aclose()

    async def run(self, leading: Callable[[], bool]) -> None:
        """Deliver until cancelled, while this process leads."""
        attempted = True
        while True:
            try:
                if not leading():
                    await asyncio.sleep(IDLE_SECONDS)
                    continue
                await self._every_few_seconds()
                if time.monotonic() < self._paused_until:
                    await asyncio.sleep(min(IDLE_SECONDS, self._paused_until - time.monotonic()))
                    continue
                await self.unpack(ahead_of_waiting=not attempted)
                attempted = await self.sweep()
                if not attempted:
                    await self._idle(self._soonest_retry_us)
            except asyncio.CancelledError:
                raise
            except Exception:  # a database error: start the sweep over
                logger.exception("delivering notices failed; retrying")
                await asyncio.sleep(IDLE_SECONDS)

    async def _idle(self, soonest_retry_us: int | None) -> None:
        """Until a new notice, the next retry that is due, or IDLE_SECONDS."""
        self.database.noticed.clear()
        wait = IDLE_SECONDS
        if soonest_retry_us is not None:
            wait = min(wait, max(0.0, (soonest_retry_us - clock.now_us()) / 1e6))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self.database.noticed.wait()

    async def unpack(self, *, ahead_of_waiting: bool = False) -> int:
        """Unpack batches, oldest first, until UNPACK_AHEAD notices are pending as rows; how many.
        `ahead_of_waiting` (the last sweep could attempt nothing: every pending row waits on a
        backoff, its own or its customer's) unpacks UNPACK_AHEAD more whatever is pending, so that
        one customer's failing notice never holds back everybody else's: once, and again only
        after a delivery has gone through (a receiver that takes nothing gets no more)."""
        outbox = self.database.outbox
        if outbox is None:
            return 0
        async with self.database.read_sessions() as session:
            pending = await session.scalar(select(func.count()).select_from(
                select(notices.c.entry_id).where(notices.c.state == PENDING).limit(UNPACK_AHEAD).subquery()))
            wanted = UNPACK_AHEAD - (pending or 0)
            ahead = wanted <= 0 and ahead_of_waiting and self._may_unpack_ahead
            if ahead:
                wanted = UNPACK_AHEAD
            if wanted <= 0:
                return 0
            oldest = await session.execute(select(notice_batches.c.first_entry_id, notice_batches.c.notices)
                                           .order_by(notice_batches.c.first_entry_id).limit(UNPACK_AHEAD))
            taken = []
            for first_entry_id, count in oldest:
                if wanted <= 0:
                    break
                taken.append(first_entry_id)
                wanted -= count
        if not taken:
            return 0
        # Taken away and unpacked in one transaction: by one deliverer only, should two ever run.
        async with self.database.write(()) as session:
            claimed = await session.execute(
                delete(notice_batches).where(notice_batches.c.first_entry_id.in_(taken))
                .returning(notice_batches.c.created_at_us, notice_batches.c.packed))
            rows = [row for created_at_us, packed in claimed
                    for row in notice_rows(outbox, unpack(bytes(packed)), created_at_us)]
            await bulk.insert_rows(session, notices, NOTICE_COLUMNS, rows)
        if ahead:
            self._may_unpack_ahead = False  # until a delivery goes through
        return len(rows)

    async def sweep(self) -> bool:
        """One pass over the pending notices; whether any delivery was attempted."""
        after = (0, 0)
        waiting: set[str] = set()  # customers with an earlier notice not delivered in this sweep
        attempted = False
        self._soonest_retry_us = None
        while time.monotonic() >= self._paused_until:
            page = await self._page(after)
            if not page:
                break
            after = (page[-1].entry_id, page[-1].type)
            now = clock.now_us()
            queues: dict[str, list[Notice]] = {}
            for notice in page:
                if notice.customer_id in waiting:
                    continue
                if notice.next_attempt_at_us > now:  # backing off: its customer waits too
                    waiting.add(notice.customer_id)
                    self._soonest_retry_us = min(self._soonest_retry_us or notice.next_attempt_at_us,
                                                 notice.next_attempt_at_us)
                    continue
                queues.setdefault(notice.customer_id, []).append(notice)
            if queues:
                attempted = True
                outcomes = await self._deliver_all(queues)
                # A customer's queue stops at a failure, or where the receiver's pause began (maybe
                # before its first notice): unless its last notice went through, its notices on
                # later pages wait.
                delivered = {(o.notice.entry_id, o.notice.type) for o in outcomes if o.delivered}
                waiting |= {customer for customer, queue in queues.items()
                            if (queue[-1].entry_id, queue[-1].type) not in delivered}
                await self._record(outcomes)
        return attempted

    async def _page(self, after: tuple[int, int]) -> list[Notice]:
        query = (
            select(notices.c.entry_id, notices.c.type, notices.c.created_at_us, notices.c.attempts,
                   notices.c.next_attempt_at_us, notices.c.retry_until_us, entries.c.customer_id,
                   entries.c.customer_seq, entries.c.entry_hash, entries.c.canonical, leaves.c.log_index)
            .join(entries, entries.c.id == notices.c.entry_id)
            .outerjoin(leaves, leaves.c.entry_id == notices.c.entry_id)
            .where(notices.c.state == PENDING,
                   or_(notices.c.entry_id > after[0],
                       and_(notices.c.entry_id == after[0], notices.c.type > after[1])))
            .order_by(notices.c.entry_id, notices.c.type)
            .limit(PAGE_SIZE)
        )
        async with self.database.read_sessions() as session:
            return [Notice(*row) for row in await session.execute(query)]

    async def _deliver_all(self, queues: dict[str, list[Notice]]) -> list[Outcome]:
        gate = asyncio.Semaphore(self.concurrency)
        outcomes: list[Outcome] = []

        async def deliver_in_order(queue: list[Notice]) -> None:
            async with gate:
                for notice in queue:
                    if time.monotonic() < self._paused_until:
                        return  # the receiver is down: what is left waits for the probe
                    outcome = await self._deliver(notice)
                    outcomes.append(outcome)
                    if not outcome.delivered:
                        return  # its customer's later notices wait for it

        await asyncio.gather(*(deliver_in_order(queue) for queue in queues.values()))
        return outcomes

    async def _deliver(self, notice: Notice) -> Outcome:
        started = time.perf_counter()
        try:
            body = notice.body()
            # The answer is read as it comes, raw (an encoded answer is never inflated: no gzip
            # bomb), and no further than MAX_ANSWER_BYTES: leaving the stream early drops the
            # connection rather than reading the rest. The whole exchange has one timeout.
            async with asyncio.timeout(self.timeout), self._http.stream(
                "POST", self.url, content=body, headers=self.signer.headers(notice, body)
            ) as response:
                answer = bytearray()
                async for chunk in response.aiter_raw():
                    answer += chunk[:MAX_ANSWER_BYTES - len(answer)]
                    if len(answer) >= MAX_ANSWER_BYTES:
                        break
            status = response.status_code
            error = "" if 200 <= status < 300 else f"HTTP {status}: {answer[:200].decode(errors='replace')}"
        except (TimeoutError, httpx.TimeoutException):
            error = f"no answer within {self.timeout:g} s"
        except httpx.HTTPError as exc:
            error = f"unreachable: {exc!r}"[:300]
        except Exception as exc:
            # Not the network's (a bug, an error httpx does not wrap): this notice fails and is
            # retried like any other. Raised, it would leave its siblings' outcomes unrecorded and
            # their deliveries running into the next sweep.
            logger.exception("delivering notice %s failed unexpectedly", notice.webhook_id)
            error = f"failed: {exc!r}"[:300]
        finally:
            NOTICE_SECONDS.observe(time.perf_counter() - started)
        if not error:
            self._failures_in_row = self._pauses = 0
            self._may_unpack_ahead = True
            return Outcome(notice, True)
        self._failures_in_row += 1
        if self._failures_in_row >= FAILURES_BEFORE_PAUSE and time.monotonic() >= self._paused_until:
            self._pauses += 1
            pause = self._delay(self._pauses)
            self._paused_until = time.monotonic() + pause
            logger.warning("the webhook receiver failed %d times in a row (%s); pausing %.1f s",
                           self._failures_in_row, error, pause)
        return Outcome(notice, False, error)

    def _delay(self, attempt: int) -> float:
        """Exponential backoff with jitter: between half and all of backoff * 2^(attempt-1)."""
        ceiling = min(self.backoff_max, self.backoff * 2.0 ** min(attempt - 1, 40))
        return float(ceiling * random.uniform(0.5, 1.0))

    async def _record(self, outcomes: Sequence[Outcome]) -> None:
        now = clock.now_us()
        delivered = [o.notice for o in outcomes if o.delivered]
        failed = [o for o in outcomes if not o.delivered]
        async with self.database.sessions() as session, session.begin():
            if delivered:
                await session.execute(
                    update(notices)
                    .where(tuple_(notices.c.entry_id, notices.c.type).in_(
                        [(n.entry_id, n.type) for n in delivered]))
                    .values(state=DELIVERED, attempts=notices.c.attempts + 1, delivered_at_us=now,
                            last_error=None))
            for outcome in failed:
                notice, dead = outcome.notice, now >= outcome.notice.retry_until_us
                await session.execute(
                    update(notices)
                    .where(notices.c.entry_id == notice.entry_id, notices.c.type == notice.type)
                    .values(state=DEAD if dead else PENDING, attempts=notice.attempts + 1,
                            last_error=outcome.error,
                            next_attempt_at_us=now + int(self._delay(notice.attempts + 1) * 1e6)))
                if dead:
                    logger.error("notice %s dead-lettered after %d attempts: %s", notice.webhook_id,
                                 notice.attempts + 1, outcome.error)
        for notice in delivered:
            NOTICE_DELIVERIES.labels(notice.type_name, "delivered").inc()
        for outcome in failed:
            dead = now >= outcome.notice.retry_until_us
            NOTICE_DELIVERIES.labels(outcome.notice.type_name, "dead_lettered" if dead else "failed").inc()

    async def _every_few_seconds(self) -> None:
        """Overdue deletion requests' notices, and the outbox's gauges."""
        if time.monotonic() < self._periodic_at:
            return
        self._periodic_at = time.monotonic() + PERIODIC_SECONDS
        if self.database.outbox is not None:
            await notice_overdue_requests(self.database, self.database.outbox)
        # The oldest pending notice, from the first page in delivery order (the undelivered index,
        # a page of rows): a notice is written with its entry, so entry order is nearly creation
        # order (a deletion.overdue notice, written late for an old entry, is the exception).
        # The oldest pending notice is a row or still packed: the older of the two first pages.
        first_page = (select(notices.c.created_at_us).where(notices.c.state == PENDING)
                      .order_by(notices.c.entry_id, notices.c.type).limit(PAGE_SIZE).subquery())
        first_batches = (select(notice_batches.c.created_at_us).order_by(notice_batches.c.first_entry_id)
                         .limit(PAGE_SIZE).subquery())
        async with self.database.read_sessions() as session:
            oldest_row = await session.scalar(select(func.min(first_page.c.created_at_us)))
            oldest_packed = await session.scalar(select(func.min(first_batches.c.created_at_us)))
            oldest = min((at for at in (oldest_row, oldest_packed) if at is not None), default=None)
            if time.monotonic() >= self._count_at:
                counts = await session.execute(select(notices.c.state, func.count())
                                               .where(notices.c.state != DELIVERED).group_by(notices.c.state))
                by_state: dict[int, int] = {state: count for state, count in counts}
                packed = await session.scalar(select(func.coalesce(func.sum(notice_batches.c.notices), 0)))
                pending = by_state.get(PENDING, 0) + int(packed or 0)
                NOTICES_PENDING.set(pending)
                NOTICES_DEAD.set(by_state.get(DEAD, 0))
                self._count_at = time.monotonic() + (
                    COUNT_LARGE_SECONDS if pending >= LARGE_BACKLOG else PERIODIC_SECONDS)
        NOTICE_OLDEST_PENDING_AGE.set(max(0, clock.now_us() - oldest) / 1e6 if oldest else 0)
