"""Where the integrator starts reading its queue on PostgreSQL: past the ids that are settled.

The integrator takes queued entries in id order and deletes them, so until VACUUM comes by, the
front of the queue's index is a run of dead entries that every pass walks through again: after
500,000 entries, 2.4 ms of PostgreSQL time a pass (python -m bench.ingest_probe --single 15
--ledger 500000 --statements). Reading from a floor below which no id can still arrive skips them.

An id can no longer arrive once every transaction that could commit it has ended. Writers take
their transaction id before their entry ids (store._PG_NEXT_IDS), so: read the id sequence's
last value S, then take a transaction id X for the pass. Transaction ids are handed out in order,
so every writer that holds an id <= S has a transaction id below X. Once the oldest running
transaction is at X or later, they have all committed or rolled back, and a pass that reads the
queue after that sees every queued id <= S; if it took them all, S is the new floor.

X must be a transaction id actually handed out: a snapshot's xmax is only the last completed one
plus one, and a writer that began after that is still running (tests/tlog/test_queue_floor.py).
The sequence must hand out ids one at a time (CACHE 1, as migration 0001 made it).

Once a minute the floor drops back to zero, so an entry whose writer took its id any other way
(an older release, during a rolling upgrade) is integrated late rather than never.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, NamedTuple

# Found through the search path, as nextval() finds it; null before the first id. It needs only
# the USAGE the app role has on the sequence (SELECT on it would too).
_LAST_ID = "SELECT coalesce(pg_sequence_last_value('ledger_entries_id_seq'::regclass), 0)"
_PASS_XID = "SELECT pg_current_xact_id()::text::bigint"  # assigns the pass's transaction its id
_OLDEST_RUNNING_XID = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"


class _Candidate(NamedTuple):
    last_id: int  # S: ids up to here are settled ...
    pass_xid: int  # X: ... once no transaction older than this is running


class QueueFloor:
    RESCAN_SECONDS = 60.0

    def __init__(self) -> None:
        self.floor = 0  # every id <= floor has been integrated, or will never be committed
        self._candidate: _Candidate | None = None
        self._settled = False
        self._rescan_at = time.monotonic() + self.RESCAN_SECONDS

    def reset(self) -> None:
        self.floor, self._candidate, self._settled = 0, None, False

    async def before_pass(self, driver: Any) -> int:
        """The floor to read the queue from, on the pass's asyncpg connection, before it reads."""
        if time.monotonic() >= self._rescan_at:
            self.reset()
            self._rescan_at = time.monotonic() + self.RESCAN_SECONDS
        if self._candidate is None:
            # Two statements, in this order: X is handed out after S is read.
            last_id = await driver.fetchval(_LAST_ID)
            self._candidate = _Candidate(last_id, await driver.fetchval(_PASS_XID))
            self._settled = False
        else:
            self._settled = await driver.fetchval(_OLDEST_RUNNING_XID) >= self._candidate.pass_xid
        return self.floor

    def after_pass(self, taken: Sequence[int], limit: int) -> None:
        """Once the pass has committed: `taken`, the queued ids it integrated, ascending."""
        candidate = self._candidate
        if not (self._settled and candidate):
            return
        if len(taken) < limit or taken[-1] >= candidate.last_id:  # it saw every queued id <= S
            self.floor = max(self.floor, candidate.last_id)
            self._candidate, self._settled = None, False
