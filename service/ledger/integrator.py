"""The integrator: one loop per database that sequences committed entries into the Merkle log.

Like Sunlight's sequencer and Trillian's IntegrateBatch: take the pool of committed entries,
give them the next log indexes, store every perfect subtree they complete, dequeue them, bring
the customer index up to date and append the leaf that commits to it, and sign the new
checkpoint, all in one transaction, so a crash redoes a batch, never half of one.
On PostgreSQL exactly one process integrates: the holder of a session-level advisory lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import ChainMap
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from service import bulk, clock
from service.db import Database
from service.ledger import tree_store
from service.ledger.checkpoint import Checkpoint, sign_checkpoint
from service.ledger.customer_index import store as index_store
from service.ledger.customer_index import tree as index_tree
from service.ledger.merkle import EMPTY_ROOT, CompactRange, NodeId, leaf_hash, perfect_subtrees
from service.ledger.queue_floor import QueueFloor
from service.ledger.tree_store import LogIntegrityError
from service.metrics import (
    CHECKPOINTS_SIGNED,
    ENTRIES_WAITING,
    INDEX_KEYS,
    INDEX_UPDATE_SECONDS,
    INTEGRATION_LAG,
    TREE_SIZE,
)

logger = logging.getLogger("seenby.integrator")

# How often the customer index's history is swept (a witness policy only): rows for a few seconds
# of passes more than needed, against a statement every pass.
HISTORY_SWEEP_SECONDS = 5.0

# Any fixed 64-bit key; it names "the integrator" among the database's advisory locks.
LEADER_LOCK_KEY = 0x5EE_B1_106


@dataclass
class _WorkingIndex:
    """The leader's copy of the stored customer index (some 400 bytes a customer), so that a pass
    costs hashing and one write, and reads nothing of the index."""

    nodes: dict[index_tree.NodeId, bytes]
    keys: int


class Integrator:
    def __init__(
        self,
        database: Database,
        signing_key: Ed25519PrivateKey,
        origin: str,
        *,
        batch_size: int = 2_000,
        max_batch_size: int = 16_000,
        idle_seconds: float = 0.1,
        pass_interval_seconds: float = 0.05,
        provable_from: Callable[[AsyncSession], Awaitable[int | None]] | None = None,
    ) -> None:
        self.database = database
        self.signing_key = signing_key
        self.origin = origin
        self.batch_size = batch_size
        # While the queue stays full, each pass takes twice as many entries as the last, up to this:
        # a pass's fixed costs, and the index nodes its customers share, are then paid less often.
        self.max_batch_size = max(batch_size, max_batch_size)
        self._limit = batch_size
        self.idle_seconds = idle_seconds
        # After a pass that emptied the queue, the next waits this long at least: each pass is a
        # transaction, an fsync and a signature, and under a stream of small commits (single
        # events) one pass then covers many of them instead of one each.
        self.pass_interval_seconds = pass_interval_seconds
        self._tree: CompactRange | None = None
        self._index: _WorkingIndex | None = None
        self._leader: AsyncConnection | None = None
        self._floor = QueueFloor()
        self.on_signed: Callable[[], None] = lambda: None  # after a pass's checkpoint is committed
        # Under a witness policy, the size of the oldest checkpoint a proof may yet be asked against
        # (tlog.service.oldest_provable_size): the witnessed one trails the latest pass, so each pass
        # keeps what it overwrote in the customer index until that size has moved past it.
        self.provable_from = provable_from
        self._history_swept = 0.0
        self._history_kept_after = -1  # the index leaf the history was last swept up to

    def leading(self) -> bool:
        """Whether this process integrates (and so submits checkpoints to witnesses)."""
        return self.database.sqlite or self._leader is not None

    async def sign_empty_log(self) -> None:
        """Persist the size-0 checkpoint if the log has none, so one is served from the first request.

        Any replica may do this: the empty tree has one root and Ed25519 signs deterministically,
        so two replicas racing here write the same checkpoint, and every later one extends it.
        """
        async with self.database.sessions() as session, session.begin():
            if await tree_store.latest_checkpoint(session) is None:
                note = sign_checkpoint(Checkpoint(self.origin, 0, EMPTY_ROOT), self.signing_key)
                await tree_store.insert_checkpoint_once(
                    session, tree_store.StoredCheckpoint(0, EMPTY_ROOT, note), clock.now_us()
                )

    async def run(self) -> None:
        """Integrate until cancelled; survive database errors by starting over from what is stored."""
        while True:
            try:
                async with self._leadership() as leading:
                    if not leading:
                        await self._report_gauges()
                        await asyncio.sleep(1.0)
                        continue
                    while True:
                        limit = self._limit
                        if await self.integrate_once() < limit:
                            await self._idle()
            except asyncio.CancelledError:
                raise
            except LogIntegrityError:
                logger.exception("refusing to integrate: the log does not match its checkpoint")
                await asyncio.sleep(5.0)
            except Exception:  # the driver's own errors too: this loop must outlive any of them
                logger.exception("integration failed; retrying from the stored state")
                self._forget()
                await asyncio.sleep(0.5)

    async def _idle(self) -> None:
        await asyncio.sleep(self.pass_interval_seconds)
        # asyncio.timeout, not wait_for: on Python 3.11, wait_for returns normally when it is
        # cancelled just as the event is set, and the cancellation is lost (the app never stops).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.idle_seconds):
                await self.database.appended.wait()
        self.database.appended.clear()

    @contextlib.asynccontextmanager
    async def _leadership(self) -> AsyncIterator[bool]:
        if self.database.sqlite:
            yield True
            return
        async with self.database.engine.connect() as connection:
            leading = await connection.scalar(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": LEADER_LOCK_KEY}
            )
            await connection.commit()
            self._leader = connection if leading else None
            try:
                yield bool(leading)
            finally:
                self._leader = None
                self._forget()
                if leading:
                    # A pooled connection would go back still holding the session-level lock, and
                    # no process could lead again: discard the connection, and the lock with it.
                    await connection.invalidate()

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncSession]:
        if self._leader is None:
            async with self.database.write([]) as session:
                yield session
            return
        async with AsyncSession(bind=self._leader) as session, session.begin():
            yield session

    async def integrate_once(self) -> int:
        """One batch; returns how many entries joined the log."""
        async with self._transaction() as session:
            tree = await self._current_tree(session)
            floor = 0 if self._leader is None else await self._floor.before_pass(
                await bulk.asyncpg_connection(session))
            limit = self._limit
            pending = await tree_store.pending(session, limit, after=floor)
            # With nothing pending there is nothing to sign, but for the size-0 checkpoint of a new log.
            if not pending and (tree.size > 0 or await tree_store.latest_checkpoint(session)):
                self._floor.after_pass([], limit)
                self._limit = self.batch_size
                return 0
            grown = tree.copy()
            new_leaves: list[dict[str, int]] = []
            new_nodes: list[tuple[NodeId, bytes]] = []
            for entry in pending:
                new_leaves.append({"log_index": grown.size, "entry_id": entry.entry_id})
                new_nodes += grown.append(entry.leaf_hash)
            if pending:
                index_leaf, index_nodes = await self._update_index(session, pending, covers=grown.size)
                new_nodes += grown.append(leaf_hash(index_leaf.canonical))
            checkpoint = Checkpoint(self.origin, grown.size, grown.root())
            note = sign_checkpoint(checkpoint, self.signing_key)
            now_us = clock.now_us()
            await tree_store.write_integration(
                session, new_leaves, new_nodes,
                tree_store.StoredCheckpoint(grown.size, checkpoint.root_hash, note), now_us,
            )
        self._tree = grown
        if pending and self._index is not None:
            self._index.nodes.update(index_nodes)
            self._index.keys = index_leaf.customers
            INDEX_KEYS.set(index_leaf.customers)
        self._floor.after_pass([entry.entry_id for entry in pending], limit)  # committed
        self._limit = min(limit * 2, self.max_batch_size) if len(pending) == limit else self.batch_size
        CHECKPOINTS_SIGNED.inc()
        self.on_signed()
        TREE_SIZE.set(grown.size)
        for entry in pending:
            INTEGRATION_LAG.observe(max(0, now_us - entry.recorded_at_us) / 1e6)
        ENTRIES_WAITING.set(0 if len(pending) < limit else await self._waiting())
        return len(pending)

    async def _update_index(
        self, session: AsyncSession, pending: list[tree_store.Pending], covers: int
    ) -> tuple[index_store.IndexLeaf, dict[index_tree.NodeId, bytes]]:
        """Point each customer of the pass at its last entry in it, store the nodes that changed,
        and write the leaf that commits to the index as of `covers` (that leaf's own log_index).
        Returns the leaf and the nodes written, for the working copy once the pass has committed."""
        started = time.perf_counter()
        index = await self._current_index(session)
        written: dict[index_tree.NodeId, bytes] = {}
        keys = index.keys
        if keys == 0 and covers > len(pending) and await index_store.latest_index_leaf(session) is None:
            # A log from before the index (migration 0010): build it from what is integrated first.
            async for heads in index_store.integrated_heads(session):
                applied = index_tree.update(ChainMap(written, index.nodes), heads)
                written.update(applied.written)
                keys += applied.added
        changes = {}
        for entry in pending:  # in log order: the last entry of a customer is its head
            if entry.customer_id is not None and entry.customer_seq is not None and entry.entry_hash:
                key = index_tree.index_key(entry.customer_id)
                changes[key] = index_tree.index_value(entry.customer_seq, entry.entry_hash)
        applied = index_tree.update(ChainMap(written, index.nodes) if written else index.nodes, changes)
        written.update(applied.written)
        await index_store.write_nodes(session, written, before=index.nodes)
        if self.provable_from is not None:
            await index_store.keep_history(session, written, index.nodes, covers)
            await self._sweep_history(session)
        canonical = index_store.index_leaf_bytes(covers, applied.root, keys + applied.added)
        leaf = index_store.IndexLeaf.of(covers, canonical)
        await index_store.insert_index_leaf(session, leaf)
        INDEX_UPDATE_SECONDS.observe(time.perf_counter() - started)
        return leaf, written

    async def _sweep_history(self, session: AsyncSession) -> None:
        """Now and then, let go of what passes overwrote up to the index leaf of the oldest checkpoint
        a proof may yet be asked against: none is asked as of before it any more (it only grows)."""
        if self.provable_from is None or time.monotonic() - self._history_swept < HISTORY_SWEEP_SECONDS:
            return
        self._history_swept = time.monotonic()
        size = await self.provable_from(session)
        served_leaf = None if size is None else await index_store.latest_index_leaf(session, below=size)
        if served_leaf is not None and served_leaf.log_index > self._history_kept_after:
            await index_store.forget_history(session, through=served_leaf.log_index)
            self._history_kept_after = served_leaf.log_index

    async def _current_index(self, session: AsyncSession) -> _WorkingIndex:
        """The index as the last committed pass left it: held in memory, read whole after a start
        or an error, so that a pass reads nothing of it from storage."""
        if self._index is None:
            latest = await index_store.latest_index_leaf(session)
            self._index = _WorkingIndex(index_tree.complete(await index_store.read_all_nodes(session)),
                                        latest.customers if latest else 0)
        return self._index

    def _forget(self) -> None:
        """Drop what this process holds in memory; the next pass reads it from storage."""
        self._tree = None
        self._index = None
        self._limit = self.batch_size
        self._floor.reset()
        self._history_kept_after = -1

    async def _waiting(self) -> int:
        async with self.database.read_sessions() as session:
            return await tree_store.waiting_count(session, after=self._floor.floor)

    async def _current_tree(self, session: AsyncSession) -> CompactRange:
        """The in-memory right edge, or, after a start or an error, the one rebuilt from storage."""
        if self._tree is not None:
            return self._tree
        latest = await tree_store.latest_checkpoint(session)
        size = latest.tree_size if latest else 0
        lookup = await tree_store.read_nodes(session, perfect_subtrees(0, size))
        tree = CompactRange.from_nodes(size, lookup)
        if latest is not None and tree.root() != latest.root_hash:
            raise LogIntegrityError(
                f"stored nodes give another root than the checkpoint at size {size}"
            )
        self._tree = tree
        return tree

    async def _report_gauges(self) -> None:
        with contextlib.suppress(SQLAlchemyError, DBAPIError):
            async with self.database.read_sessions() as session:
                latest = await tree_store.latest_checkpoint(session)
                TREE_SIZE.set(latest.tree_size if latest else 0)
                ENTRIES_WAITING.set(await tree_store.waiting_count(session))
