"""Reading and writing the Merkle log's rows: leaves, perfect-subtree nodes, signed checkpoints."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Integer, Select, and_, bindparam, delete, func, or_, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY

from service import bulk
from service.db import Executor, dialect_of, per_dialect
from service.ledger.merkle import NodeId, leaf_hash
from service.ledger.tables import (
    checkpoints,
    entries,
    leaves,
    nodes,
    queue,
)


@dataclass(frozen=True)
class StoredCheckpoint:
    tree_size: int
    root_hash: bytes
    note: str


@dataclass(frozen=True)
class Pending:
    entry_id: int
    leaf_hash: bytes
    recorded_at_us: int
    # Of the entry, for the customer index: its customer's chain now ends here. None only if the
    # entry was removed behind the service's back (`seenby audit` reports it).
    customer_id: str | None
    customer_seq: int | None
    entry_hash: str | None


_LATEST_CHECKPOINT = (
    select(checkpoints.c.tree_size, checkpoints.c.root_hash, checkpoints.c.note)
    .order_by(checkpoints.c.tree_size.desc()).limit(1)
)


async def latest_checkpoint(session: Executor) -> StoredCheckpoint | None:
    row = (await session.execute(_LATEST_CHECKPOINT)).first()
    return StoredCheckpoint(row.tree_size, row.root_hash, row.note) if row else None


async def checkpoint_at(session: Executor, tree_size: int) -> StoredCheckpoint | None:
    row = (await session.execute(
        select(checkpoints.c.tree_size, checkpoints.c.root_hash, checkpoints.c.note)
        .where(checkpoints.c.tree_size == tree_size)
    )).first()
    return StoredCheckpoint(row.tree_size, row.root_hash, row.note) if row else None


async def signed_at_us(session: Executor, sizes: Collection[int]) -> dict[int, int]:
    """When the checkpoints of these tree sizes were signed (microseconds since the epoch)."""
    rows = await session.execute(select(checkpoints.c.tree_size, checkpoints.c.signed_at_us)
                                 .where(checkpoints.c.tree_size.in_(list(sizes))))
    return {size: signed for size, signed in rows}


@per_dialect
def _nodes_query(dialect: str) -> Select[Any]:
    query = select(nodes.c.level, nodes.c.node_index, nodes.c.hash)
    if dialect != "postgresql":
        return query.where(tuple_(nodes.c.level, nodes.c.node_index).in_(bindparam("pairs", expanding=True)))
    pairs = func.unnest(
        bindparam("levels", type_=ARRAY(Integer)), bindparam("indexes", type_=ARRAY(BigInteger)),
    ).table_valued("level", "node_index").render_derived()
    return query.join(pairs, and_(nodes.c.level == pairs.c.level, nodes.c.node_index == pairs.c.node_index))


async def read_nodes(session: Executor, wanted: Collection[NodeId]) -> dict[NodeId, bytes]:
    """Every wanted node in one query. On PostgreSQL a join with two unnested arrays: the planner
    turns thousands of (level, index) pairs in an IN list into one huge OR, some 20 times slower."""
    if not wanted:
        return {}
    ordered = sorted(wanted)
    if dialect_of(session) == "postgresql":
        params: dict[str, Any] = {"levels": [level for level, _ in ordered],
                                  "indexes": [index for _, index in ordered]}
    else:
        params = {"pairs": ordered}
    rows = await session.execute(_nodes_query(session), params)
    return {(row.level, row.node_index): row.hash for row in rows}


async def read_node_spans(session: Executor, spans: dict[int, tuple[int, int]]) -> dict[NodeId, bytes]:
    """Every node with index in [low, high] at each given level, in one query."""
    if not spans:
        return {}
    rows = await session.execute(
        select(nodes.c.level, nodes.c.node_index, nodes.c.hash).where(or_(*(
            and_(nodes.c.level == level, nodes.c.node_index.between(low, high))
            for level, (low, high) in spans.items()
        )))
    )
    return {(row.level, row.node_index): row.hash for row in rows}


async def read_level_range(session: Executor, level: int, first: int, count: int) -> list[bytes]:
    rows = await session.execute(
        select(nodes.c.hash)
        .where(nodes.c.level == level, nodes.c.node_index >= first, nodes.c.node_index < first + count)
        .order_by(nodes.c.node_index)
    )
    return list(rows.scalars())


async def pending(session: Executor, limit: int, *, after: int = 0) -> list[Pending]:
    """The next queued entries with ids above `after`, in id order, each with its leaf hash."""
    rows: Sequence[Any] = (await session.execute(
        select(queue.c.entry_id, queue.c.leaf_hash, queue.c.recorded_at_us)
        .where(queue.c.entry_id > after)
        .order_by(queue.c.entry_id)
        .limit(limit)
    )).all()
    if any(row.leaf_hash is None for row in rows):
        rows = await _hash_unhashed(session, rows)
    # Looked up by id on their own: joined in the same query, a pass of thousands was planned as
    # a hash join over the whole entry table (64 ms a pass at 230,000 entries).
    heads = await _chain_positions(session, [row[0] for row in rows])
    return [Pending(*row[:3], *heads.get(row[0], (None, None, None))) for row in rows]


_POSITIONS_BY_ARRAY = (
    "SELECT id, customer_id, customer_seq, entry_hash FROM ledger_entries WHERE id = ANY($1::bigint[])"
)
_SQLITE_IDS_PER_QUERY = 10_000


async def _chain_positions(session: Executor, ids: list[int]) -> dict[int, tuple[str, int, str]]:
    """Each entry's customer, customer_seq and hash, for the customer index."""
    if not ids:
        return {}
    if dialect_of(session) == "postgresql":
        driver = await bulk.asyncpg_connection(session)
        return {row[0]: tuple(row[1:]) for row in await driver.fetch(_POSITIONS_BY_ARRAY, ids)}
    found: dict[int, tuple[str, int, str]] = {}
    for start in range(0, len(ids), _SQLITE_IDS_PER_QUERY):
        result = await session.execute(
            select(entries.c.id, entries.c.customer_id, entries.c.customer_seq, entries.c.entry_hash)
            .where(entries.c.id.in_(ids[start:start + _SQLITE_IDS_PER_QUERY])))
        found.update((row.id, (row.customer_id, row.customer_seq, row.entry_hash)) for row in result)
    return found


async def _hash_unhashed(session: Executor, rows: Sequence[Any]) -> list[Any]:
    """Rows queued by id alone, by a release before migration 0005 during a rolling upgrade:
    their leaf hash and recording time come from the entry."""
    unhashed = [row.entry_id for row in rows if row.leaf_hash is None]
    stored = {entry.id: entry for entry in await session.execute(
        select(entries.c.id, entries.c.canonical, entries.c.recorded_at_us).where(entries.c.id.in_(unhashed))
    )}
    return [
        row if row.leaf_hash is not None else
        (row.entry_id, leaf_hash(stored[row.entry_id].canonical), stored[row.entry_id].recorded_at_us)
        for row in rows
    ]


async def waiting_count(session: Executor, *, after: int = 0) -> int:
    """Queued entries with ids above `after`: from the integrator's floor, the count skips the run
    of dead index entries below it, which a count of the whole queue walks until VACUUM comes."""
    return await session.scalar(select(func.count()).select_from(queue).where(queue.c.entry_id > after)) or 0


async def write_integration(
    session: Executor,
    new_leaves: list[dict[str, int]],
    new_nodes: Iterable[tuple[NodeId, bytes]],
    checkpoint: StoredCheckpoint,
    signed_at_us: int,
) -> None:
    """One batch, all or nothing: positions, nodes, the dequeue and the checkpoint that covers them."""
    if new_leaves:
        await bulk.insert_rows(session, leaves, ("log_index", "entry_id"),
                               [(leaf["log_index"], leaf["entry_id"]) for leaf in new_leaves])
        await bulk.insert_rows(session, nodes, ("level", "node_index", "hash"),
                               [(level, index, value) for (level, index), value in new_nodes])
        dequeued = [leaf["entry_id"] for leaf in new_leaves]
        if bulk.is_postgresql(session):
            driver = await bulk.asyncpg_connection(session)
            await driver.execute("DELETE FROM integration_queue WHERE entry_id = ANY($1::bigint[])", dequeued)
        else:
            await session.execute(delete(queue).where(queue.c.entry_id.in_(dequeued)))
    await session.execute(checkpoints.insert(), [{
        "tree_size": checkpoint.tree_size, "root_hash": checkpoint.root_hash,
        "note": checkpoint.note, "signed_at_us": signed_at_us,
    }])


async def insert_checkpoint_once(session: Executor, checkpoint: StoredCheckpoint, signed_at_us: int) -> None:
    insert = (postgresql if dialect_of(session) == "postgresql" else sqlite).insert(checkpoints)
    await session.execute(insert.on_conflict_do_nothing(index_elements=[checkpoints.c.tree_size]), [{
        "tree_size": checkpoint.tree_size, "root_hash": checkpoint.root_hash,
        "note": checkpoint.note, "signed_at_us": signed_at_us,
    }])
