"""Group commit: many concurrent requests' writes in one transaction, each still answered alone.

Requests hand their work to one GroupCommit per process. Its writer tasks take whatever has queued
up, up to a group size, and pass it to the `write` function in one go: one lock acquisition, one
round trip per table, one commit, for many requests (group commit, as databases do for their own
log). `write` answers each submission of the group on its own, so a conflict fails only the
request that carries it, and an unexpected error in a group is retried submission by submission.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy.exc import IntegrityError

Work = TypeVar("Work")
Result = TypeVar("Result")

# Two processes racing on one new key: the loser's unique violation is retried, and then sees the
# winner's row.
MAX_ATTEMPTS = 3
# A second writer takes a group only when this many units wait while the first one writes: a few
# waiting requests cost less in the first writer's next group than in a transaction of their own
# (python -m bench.ingest_probe --single 15: two writers always, 2,206 events/s at p99 52 ms; one,
# 2,784 at p99 36 ms), while big batches still overlap one writer's Python with the other's queries.
SECOND_WRITER_UNITS = 500
# ... or when the one writer has been at its group this long: it may be waiting for a lock that
# another process holds, and requests that need other locks should not wait behind it.
SECOND_WRITER_AFTER_SECONDS = 0.1


@dataclass
class Submission(Generic[Work, Result]):
    """One request's work, waiting for a writer; `size` counts it against the group's limit."""

    work: Work
    size: int
    done: asyncio.Future[Result]


Outcome = tuple[Submission[Work, Result], Result | BaseException]
WriteGroup = Callable[[list[Submission[Work, Result]]], Awaitable[list[Outcome[Work, Result]]]]


class GroupCommit(Generic[Work, Result]):
    def __init__(self, write: WriteGroup[Work, Result], *, writers: int, group_units: int) -> None:
        self._write = write
        self.group_units = group_units
        self._writer_count = writers
        self._queue: list[Submission[Work, Result]] = []
        self._queued_units = 0
        self._writing = 0  # writers between taking a group and settling it
        self._writing_since = 0.0  # when the writers last went from none busy to one
        self._arrived = asyncio.Condition()
        self._writers: list[asyncio.Task[None]] = []

    async def submit(self, work: Work, size: int) -> Result:
        """Queue the work and wait for its result (or its error), once its group has committed."""
        submission: Submission[Work, Result] = Submission(
            work, size, asyncio.get_running_loop().create_future())
        self._queue.append(submission)
        self._queued_units += size
        self._writers = [w for w in self._writers if not w.done()]
        while len(self._writers) < self._writer_count:
            self._writers.append(asyncio.create_task(self._write_forever(), name="seenby-group-commit"))
        async with self._arrived:
            self._arrived.notify()
        return await submission.done

    async def close(self) -> None:
        for writer in self._writers:
            writer.cancel()
        for writer in self._writers:
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _write_forever(self) -> None:
        while True:
            async with self._arrived:
                while not self._worth_a_group():
                    await self._news()
                group = self._next_group()
            if not self._writing:
                self._writing_since = time.monotonic()
            self._writing += 1
            try:
                await self._record_settling(group)
            finally:
                self._writing -= 1

    def _worth_a_group(self) -> bool:
        if not self._queue:
            return False
        return (not self._writing or self._queued_units >= SECOND_WRITER_UNITS
                or time.monotonic() - self._writing_since >= SECOND_WRITER_AFTER_SECONDS)

    async def _news(self) -> None:
        """Until a request arrives or, with requests waiting behind a busy writer, until that
        writer has been busy for SECOND_WRITER_AFTER_SECONDS."""
        if not (self._queue and self._writing):
            await self._arrived.wait()
            return
        busy_for = time.monotonic() - self._writing_since
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(SECOND_WRITER_AFTER_SECONDS - busy_for, 0.001)):
                await self._arrived.wait()

    def _next_group(self) -> list[Submission[Work, Result]]:
        group: list[Submission[Work, Result]] = []
        units = 0
        while self._queue and (not group or units + self._queue[0].size <= self.group_units):
            submission = self._queue.pop(0)
            group.append(submission)
            units += submission.size
        self._queued_units -= units
        return group

    async def _record_settling(self, group: list[Submission[Work, Result]]) -> None:
        """Write a group and answer its requests; the writer lives on whatever happens."""
        try:
            await self._record_group(group)
        except Exception as exc:
            if len(group) == 1:
                _settle(group[0], exc)
                return
            # One bad request must not fail the others: retry each on its own.
            for submission in group:
                try:
                    await self._record_group([submission])
                except Exception as alone:
                    _settle(submission, alone)

    async def _record_group(self, group: list[Submission[Work, Result]]) -> None:
        pending = group
        for attempt in range(MAX_ATTEMPTS):
            pending = [s for s in pending if not s.done.done()]  # a caller may have gone away
            try:
                outcomes = await self._write(pending)
            except IntegrityError:  # another process wrote one of these keys meanwhile
                if attempt == MAX_ATTEMPTS - 1:
                    raise
                continue
            for submission, outcome in outcomes:
                _settle(submission, outcome)
            return


def _settle(submission: Submission[Work, Result], outcome: Result | BaseException) -> None:
    """Answer a waiting request, unless it was cancelled (its client went away) meanwhile."""
    if submission.done.done():
        return
    if isinstance(outcome, BaseException):
        submission.done.set_exception(outcome)
    else:
        submission.done.set_result(outcome)
