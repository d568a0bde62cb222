"""Reading and writing the Merkle log's rows: leaves, perfect-subtree nodes, signed checkpoints."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, text, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from service import bulk
from service.db import Executor, dialect_of
from service.ledger import merkle
from service.ledger.merkle import HASH_SIZE, STORED_TILE_STEP, TILE_HEIGHT, TILE_WIDTH, NodeId, leaf_hash
from service.ledger.tables import (
    checkpoints,
    entries,
    leaves,
    nodes,
    queue,
    tiles,
)


class LogIntegrityError(RuntimeError):
    """The stored tree disagrees with itself or with the latest signed checkpoint: never sign past it."""


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


async def newest_signed_size(session: Executor, *, at_or_before_us: int) -> int | None:
    """The size of the newest checkpoint signed at or before then (read back from the newest)."""
    size: int | None = await session.scalar(
        select(checkpoints.c.tree_size).where(checkpoints.c.signed_at_us <= at_or_before_us)
        .order_by(checkpoints.c.tree_size.desc()).limit(1))
    return size


async def signed_at_us(session: Executor, sizes: Collection[int]) -> dict[int, int]:
    """When the checkpoints of these tree sizes were signed (microseconds since the epoch)."""
    rows = await session.execute(select(checkpoints.c.tree_size, checkpoints.c.signed_at_us)
                                 .where(checkpoints.c.tree_size.in_(list(sizes))))
    return {size: signed for size, signed in rows}


# Only every fourth level of nodes is stored (0, 4, 8, ...; merkle.STORED_TILE_STEP), in two
# places: merkle_tiles, 256 hashes to a row, once their tile is complete, and merkle_nodes, one to a
# row, until then. A node is in one or the other, never both. A node of the three levels between is
# hashed up, when read, from the at most 8 nodes under it at the stored level (migration 0020).
_TILE_MASK = TILE_WIDTH - 1

# One statement: the slices of the stored levels that the wanted nodes' hashes come from, from each
# tile that is complete (only that part of its row) and from node rows where it is not.
_PG_STORED_SLICES = text(f"""
SELECT n.level, n.node_index AS first, n.hash AS hashes
FROM merkle_nodes n
JOIN unnest(CAST(:levels AS integer[]), CAST(:firsts AS bigint[]), CAST(:counts AS integer[]))
  AS w(level, first, count)
  ON n.level = w.level AND n.node_index BETWEEN w.first AND w.first + w.count - 1
UNION ALL
SELECT w.level, w.first,
       substr(t.hashes, CAST((w.first & {_TILE_MASK}) * {HASH_SIZE} + 1 AS integer), w.count * {HASH_SIZE})
FROM merkle_tiles t
JOIN unnest(CAST(:levels AS integer[]), CAST(:firsts AS bigint[]), CAST(:counts AS integer[]))
  AS w(level, first, count)
  ON t.level = w.level AND t.tile_index = w.first >> {TILE_HEIGHT}
""")


def _tile_of(node: NodeId) -> tuple[int, int]:
    level, index = node
    return level, index >> TILE_HEIGHT


def nodes_side_by_side(level: int, first: int, hashes: bytes | bytearray) -> dict[NodeId, bytes]:
    """The nodes first, first + 1, ... of a level from their hashes side by side (as a tile holds them)."""
    return {(level, first + i): bytes(hashes[i * HASH_SIZE:(i + 1) * HASH_SIZE])
            for i in range(len(hashes) // HASH_SIZE)}


def _stored_slices(wanted: Iterable[NodeId]) -> list[tuple[int, int, int]]:
    """(level, first index, count): for each tile of a stored level that the wanted nodes come
    from, the one slice of it that holds every hash they need."""
    spans: dict[tuple[int, int], tuple[int, int]] = {}
    for node in wanted:
        level, first, count = merkle.nodes_under(node)
        tile = (level, first >> TILE_HEIGHT)
        low, high = spans.get(tile, (first, first + count))
        spans[tile] = (min(low, first), max(high, first + count))
    return [(level, low, high - low) for (level, _), (low, high) in sorted(spans.items())]


async def read_nodes(session: Executor, wanted: Collection[NodeId]) -> dict[NodeId, bytes]:
    """Every wanted node that is complete: read, or hashed up from the stored level below it. On
    PostgreSQL one statement joined with unnested arrays (the planner turns thousands of pairs in an
    IN list into one huge OR, some 20 times slower)."""
    if not wanted:
        return {}
    ordered = sorted(wanted)
    slices = _stored_slices(ordered)
    if dialect_of(session) == "postgresql":
        rows = await session.execute(_PG_STORED_SLICES, {
            "levels": [level for level, _, _ in slices], "firsts": [first for _, first, _ in slices],
            "counts": [count for _, _, count in slices]})
        stored = {node: value for row in rows for node, value in nodes_side_by_side(*row).items()}
        return merkle.hashed_up(ordered, stored)
    # Node rows are only those of tiles not yet complete: a few hundred a stored level.
    stored = {(row.level, row.node_index): row.hash for row in await session.execute(
        select(nodes.c.level, nodes.c.node_index, nodes.c.hash)
        .where(nodes.c.level.in_(sorted({level for level, _, _ in slices}))))}
    tiled = sorted({(level, first >> TILE_HEIGHT) for level, first, _ in slices})
    for row in await session.execute(select(tiles.c.level, tiles.c.tile_index, tiles.c.hashes)
                                     .where(tuple_(tiles.c.level, tiles.c.tile_index).in_(tiled))):
        stored.update(nodes_side_by_side(row.level, row.tile_index << TILE_HEIGHT, row.hashes))
    return merkle.hashed_up(ordered, stored)


async def read_node_spans(session: Executor, spans: dict[int, tuple[int, int]]) -> dict[NodeId, bytes]:
    """Every complete node with index in [low, high] at each given level, in two queries."""
    if not spans:
        return {}
    below: dict[int, tuple[int, int]] = {}  # stored level -> the nodes under the spans
    for level, (low, high) in spans.items():
        stored_level, first, _ = merkle.nodes_under((level, low))
        _, last_first, count = merkle.nodes_under((level, high))
        lowest, highest = below.get(stored_level, (first, last_first + count - 1))
        below[stored_level] = (min(lowest, first), max(highest, last_first + count - 1))
    stored = {(row.level, row.node_index): row.hash for row in await session.execute(
        select(nodes.c.level, nodes.c.node_index, nodes.c.hash).where(or_(*(
            and_(nodes.c.level == level, nodes.c.node_index.between(low, high))
            for level, (low, high) in below.items()
        )))
    )}
    tile_spans = {level: (low >> TILE_HEIGHT, high >> TILE_HEIGHT) for level, (low, high) in below.items()}
    for (level, tile_index), hashes in (await read_tiles(session, tile_spans)).items():
        stored.update(nodes_side_by_side(level, tile_index << TILE_HEIGHT, hashes))
    return merkle.hashed_up(
        [(level, index) for level, (low, high) in spans.items() for index in range(low, high + 1)], stored)


async def read_tiles(session: Executor, spans: dict[int, tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """The complete tiles stored with index in [first, last] at each given level: (level, tile index)
    -> the hashes of its nodes side by side, as stored (an audit compares them whole)."""
    if not spans:
        return {}
    return {(row.level, row.tile_index): bytes(row.hashes) for row in await session.execute(
        select(tiles.c.level, tiles.c.tile_index, tiles.c.hashes).where(or_(*(
            and_(tiles.c.level == level, tiles.c.tile_index.between(first, last))
            for level, (first, last) in spans.items()
        )))
    )}


async def read_level_range(session: Executor, level: int, first: int, count: int) -> list[bytes]:
    """The nodes first .. first + count - 1 of a level, in index order, as far as they are stored."""
    found = await read_node_spans(session, {level: (first, first + count - 1)})
    hashes = []
    for index in range(first, first + count):
        if (level, index) not in found:
            break
        hashes.append(found[(level, index)])
    return hashes


async def _write_nodes(session: Executor, new_nodes: Iterable[tuple[NodeId, bytes]]) -> None:
    """Store a pass's new nodes of the stored levels: every tile they complete as one row (with its
    nodes from passes before, which then leave merkle_nodes), the rest a row each until their tile
    completes. The nodes of the levels between are hashed up from those when read."""
    new = {node: value for node, value in new_nodes if node[0] % STORED_TILE_STEP == 0}
    # A level's nodes complete left to right: a tile is complete when its last node is, and only
    # a tile whose first node came before this pass has nodes held in merkle_nodes.
    completed = sorted(_tile_of(node) for node in new if node[1] & _TILE_MASK == _TILE_MASK)
    begun_before = [(level, tile << TILE_HEIGHT, (tile << TILE_HEIGHT) + _TILE_MASK)
                    for level, tile in completed if (level, tile << TILE_HEIGHT) not in new]
    held: dict[NodeId, bytes] = {}
    if begun_before:
        held = {(row.level, row.node_index): row.hash for row in await session.execute(
            select(nodes.c.level, nodes.c.node_index, nodes.c.hash).where(_held_in(begun_before)))}
    known = {**held, **new}
    tile_rows = []
    for level, tile in completed:
        first = tile << TILE_HEIGHT
        hashes = [known.get((level, index)) for index in range(first, first + TILE_WIDTH)]
        if not all(hashes):
            raise LogIntegrityError(f"tile {tile} of level {level} is complete, but not all its nodes "
                                    f"are stored")
        tile_rows.append((level, tile, b"".join(hashes)))  # type: ignore[arg-type]  # none is None
    await bulk.insert_rows(session, tiles, ("level", "tile_index", "hashes"), tile_rows)
    if begun_before:
        await session.execute(delete(nodes).where(_held_in(begun_before)))
    folded = set(completed)
    await bulk.insert_rows(session, nodes, ("level", "node_index", "hash"),
                           [(level, index, value) for (level, index), value in new.items()
                            if (level, index >> TILE_HEIGHT) not in folded])


def _held_in(spans: list[tuple[int, int, int]]) -> ColumnElement[bool]:
    return or_(*(and_(nodes.c.level == level, nodes.c.node_index.between(low, high))
                 for level, low, high in spans))


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


# The hash as hex, as the column's type (compact_columns.HexBytes) gives it to Core queries.
_POSITIONS_BY_ARRAY = (
    "SELECT id, customer_id, customer_seq, encode(entry_hash, 'hex') FROM ledger_entries"
    " WHERE id = ANY($1::bigint[])"
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
        await _write_nodes(session, new_nodes)
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
