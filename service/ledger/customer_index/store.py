"""The customer index in the database: its nodes (read whole by the integrator once, and a path at a
time for a proof; written in one upsert a pass) and the log leaves that commit to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CompoundSelect, and_, bindparam, cast, func, null, or_, select, tuple_, union_all

from service import bulk
from service.db import Executor, per_dialect
from service.ledger.canonical import canonical_bytes, decode
from service.ledger.customer_index import tree
from service.ledger.customer_index.tables import index_leaves, index_nodes, index_undo
from service.ledger.tables import entries, leaves

KIND = "customer_index"
_COLUMNS = ("depth", "prefix", "hash", "leaf_key", "leaf_value")
_UNDO_COLUMNS = ("depth", "prefix", "covers", "hash", "leaf_key", "leaf_value")
_SQLITE_PAIRS_PER_QUERY = 10_000  # two bound parameters a pair, under SQLite's 32,766
BACKFILL_CHUNK = 5_000
# A lookup's first query reads this deep (a multiple of tree.STRIDE). A path goes deeper only where
# two customers share their keys' first 24 bits (about 1 in 170 at 100,000 customers): a second query.
_FIRST_READ_DEPTH = 24


def _key(node_id: tree.NodeId) -> tuple[int, bytes]:
    """A node's primary key in the table: depth, and the prefix in (depth + 7) // 8 bytes."""
    depth = node_id.bit_length() - 1
    return depth, (node_id ^ (1 << depth)).to_bytes((depth + 7) // 8, "big")


def _row(node_id: tree.NodeId, node: bytes) -> tuple[int, bytes, bytes, bytes | None, bytes | None]:
    key, value = tree.leaf_of(node) or (None, None)
    return *_key(node_id), node[:tree.HASH_SIZE], key, value


def _node(depth: int, prefix: bytes, digest: bytes, key: bytes | None, value: bytes | None
          ) -> tuple[tree.NodeId, bytes]:
    node = bytes(digest) if key is None or value is None else bytes(digest) + bytes(key) + bytes(value)
    return (1 << depth) | int.from_bytes(prefix, "big"), node


async def read_all_nodes(session: Executor) -> dict[tree.NodeId, bytes]:
    """The whole stored index: the integrator's working copy, and what `seenby audit` compares with
    its rebuild."""
    result = await session.execute(select(*(index_nodes.c[name] for name in _COLUMNS)))
    return dict(_node(*row) for row in result)


async def write_nodes(session: Executor, written: Mapping[tree.NodeId, bytes], before: tree.Nodes) -> None:
    """Store what an update wrote over the index `before` it: the nodes storage keeps, in one
    statement, and away with the leaves that became branches at depths storage leaves out."""
    await bulk.upsert_rows(session, index_nodes, _COLUMNS, [
        _row(node_id, node) for node_id, node in written.items() if tree.is_stored(node_id, node)
    ])
    gone = [_key(node_id) for node_id, node in written.items()
            if not tree.is_stored(node_id, node) and (old := before.get(node_id)) is not None
            and tree.is_stored(node_id, old)]
    if not gone:
        return
    if bulk.is_postgresql(session):
        driver = await bulk.asyncpg_connection(session)
        await driver.execute(_DELETE_BY_ARRAYS, [depth for depth, _ in gone], [prefix for _, prefix in gone])
        return
    for start in range(0, len(gone), _SQLITE_PAIRS_PER_QUERY):
        chunk = gone[start:start + _SQLITE_PAIRS_PER_QUERY]
        await session.execute(index_nodes.delete().where(
            tuple_(index_nodes.c.depth, index_nodes.c.prefix).in_(chunk)))


async def keep_history(session: Executor, written: Mapping[tree.NodeId, bytes], before: tree.Nodes,
                       covers: int) -> None:
    """Under a witness policy: each stored node a pass changes (its index leaf at `covers`), as it
    was before, for proofs against a checkpoint older than that leaf (lookup's `as_of`)."""
    rows = []
    for node_id, node in written.items():
        old = before.get(node_id)
        was = old if old is not None and tree.is_stored(node_id, old) else None
        if was != (node if tree.is_stored(node_id, node) else None):
            depth, prefix = _key(node_id)
            rows.append((depth, prefix, covers, None, None, None) if was is None
                        else (depth, prefix, covers, *_row(node_id, was)[2:]))
    await bulk.insert_rows(session, index_undo, _UNDO_COLUMNS, rows)


async def history_kept_after(session: Executor, as_of: int) -> bool:
    """Whether every pass after the index leaf at `as_of` kept what it overwrote (every pass
    changes the root, so each left a row for it)."""
    passes = select(func.count()).select_from(index_leaves).where(index_leaves.c.log_index > as_of)
    kept = (select(func.count()).select_from(index_undo)
            .where(index_undo.c.depth == 0, index_undo.c.covers > as_of))
    return bool(await session.scalar(select(passes.scalar_subquery() == kept.scalar_subquery())))


async def forget_history(session: Executor, *, through: int) -> None:
    """What passes up to the index leaf at `through` overwrote: no proof is served as of before it."""
    await session.execute(index_undo.delete().where(index_undo.c.covers <= through))


_DELETE_BY_ARRAYS = (
    "DELETE FROM customer_index_nodes AS n USING unnest($1::smallint[], $2::bytea[]) AS w(depth, prefix)"
    " WHERE n.depth = w.depth AND n.prefix = w.prefix"
)


def path_ranges(key: bytes, read_to: int) -> list[tuple[int, bytes, bytes]]:
    """What `tree.proof_reads` wants down to `read_to`, as (depth, low, high) prefix ranges: below
    the path's node at each stored depth D, every node at depths D + 1 to D + STRIDE (the path's,
    and what its siblings' hashes are made from), plus the root."""
    ranges = [(0, b"", b"")]
    for depth in range(1, read_to + 1):
        below = depth % tree.STRIDE or tree.STRIDE
        first = tree.path_of(key, depth - below) << below
        ranges.append((depth, _key(first)[1], _key(first | ((1 << below) - 1))[1]))
    return ranges


# OFFSET 0 fences each depth into its own index range scan: unfenced, PostgreSQL hash-joins the table.
_READ_BY_RANGES = (
    "SELECT n.depth, n.prefix, n.hash, n.leaf_key, n.leaf_value"
    " FROM unnest($1::smallint[], $2::bytea[], $3::bytea[]) AS w(depth, low, high)"
    " CROSS JOIN LATERAL (SELECT * FROM customer_index_nodes AS c"
    "  WHERE c.depth = w.depth AND c.prefix BETWEEN w.low AND w.high"
    "  OFFSET 0) AS n"
)
# Each node's first change after a leaf: one index seek a node, however many passes changed it since.
_READ_FIRST_CHANGES = (
    "SELECT w.depth, w.prefix, n.hash, n.leaf_key, n.leaf_value"
    " FROM unnest($1::smallint[], $2::bytea[]) AS w(depth, prefix)"
    " CROSS JOIN LATERAL (SELECT c.hash, c.leaf_key, c.leaf_value FROM customer_index_undo AS c"
    "  WHERE c.depth = w.depth AND c.prefix = w.prefix AND c.covers > $3 ORDER BY c.covers LIMIT 1) AS n"
)


async def _read_path(session: Executor, key: bytes, read_to: int,
                     as_of: int | None) -> dict[tree.NodeId, bytes]:
    """The stored nodes a lookup of `key` reads down to `read_to`: one range scan a depth; as of
    the index leaf at `as_of`, with what the passes after it overwrote put back."""
    ranges = path_ranges(key, read_to)
    if bulk.is_postgresql(session):
        driver = await bulk.asyncpg_connection(session)
        rows = await driver.fetch(_READ_BY_RANGES, *(list(column) for column in zip(*ranges, strict=True)))
        changed = [] if as_of is None else await driver.fetch(_READ_FIRST_CHANGES, *_node_keys(ranges), as_of)
    else:
        rows = (await session.execute(
            select(*(index_nodes.c[name] for name in _COLUMNS)).where(_in_ranges(index_nodes, ranges)))).all()
        # SQLite takes a row's other columns from the row whose covers min() picked.
        changed = [] if as_of is None else [row[:2] + row[3:] for row in (await session.execute(
            select(index_undo.c.depth, index_undo.c.prefix, func.min(index_undo.c.covers), index_undo.c.hash,
                   index_undo.c.leaf_key, index_undo.c.leaf_value)
            .where(_in_ranges(index_undo, ranges), index_undo.c.covers > as_of)
            .group_by(index_undo.c.depth, index_undo.c.prefix))).all()]
    nodes = dict(_node(*row) for row in rows)
    # Each node as the first pass after `as_of` to change it found it: absent, or as it was.
    for depth, prefix, digest, leaf_key, leaf_value in changed:
        node_id, node = _node(depth, bytes(prefix), digest or b"", leaf_key, leaf_value)
        if digest is None:
            nodes.pop(node_id, None)
        else:
            nodes[node_id] = node
    return nodes


def _node_keys(ranges: list[tuple[int, bytes, bytes]]) -> tuple[list[int], list[bytes]]:
    """Every (depth, prefix) within the ranges, as two arrays."""
    depths, prefixes = [], []
    for depth, low, high in ranges:
        for prefix in range(int.from_bytes(low, "big"), int.from_bytes(high, "big") + 1):
            depths.append(depth)
            prefixes.append(prefix.to_bytes(len(low), "big"))
    return depths, prefixes


def _in_ranges(table: Any, ranges: list[tuple[int, bytes, bytes]]) -> Any:
    return or_(*(and_(table.c.depth == depth, table.c.prefix.between(low, high))
                 for depth, low, high in ranges))


async def lookup(session: Executor, key: bytes, *, as_of: int | None = None) -> tree.Lookup:
    """The key's path in the stored index, or in the index as of the leaf at `as_of` (whose history
    must be kept: history_kept_after): found in one query unless the path is unusually deep."""
    read_to = _FIRST_READ_DEPTH
    while True:
        found = tree.lookup(key, await _read_path(session, key, read_to, as_of), read_to)
        if found is not None:
            return found
        if read_to >= tree.KEY_BITS:
            raise RuntimeError("a branch at the deepest depth: the stored customer index is corrupt")
        read_to = min(tree.KEY_BITS, read_to * 2)


# --- The log leaves that commit to the index ----------------------------------------------------


@dataclass(frozen=True)
class IndexLeaf:
    log_index: int
    root: bytes
    customers: int
    canonical: bytes

    @classmethod
    def of(cls, log_index: int, canonical: bytes) -> IndexLeaf:
        body = decode(canonical)
        if body.get("kind") != KIND or body.get("covers") != log_index:
            raise ValueError(f"the index leaf at {log_index} does not say it covers {log_index}")
        return cls(log_index, bytes.fromhex(body["root"]), body["customers"], canonical)


def index_leaf_bytes(covers: int, root: bytes, customers: int) -> bytes:
    return canonical_bytes({"kind": KIND, "covers": covers, "root": root.hex(), "customers": customers})


async def latest_index_leaf(session: Executor, *, below: int | None = None) -> IndexLeaf | None:
    """The last index leaf, or the last at a log_index below `below` (a checkpoint's size)."""
    query = select(index_leaves.c.log_index, index_leaves.c.canonical)
    if below is not None:
        query = query.where(index_leaves.c.log_index < below)
    row = (await session.execute(query.order_by(index_leaves.c.log_index.desc()).limit(1))).first()
    return IndexLeaf.of(row.log_index, bytes(row.canonical)) if row else None


@dataclass(frozen=True)
class Head:
    """A customer's last entry that an index leaf covers: what the index holds for it."""
    customer_seq: int
    entry_hash: str
    log_index: int


def _build_leaf_and_head(dialect: str) -> CompoundSelect[Any]:
    # One statement for both. The index leaf's position comes from a subquery, not a parameter, so
    # PostgreSQL keeps one generic plan (with the bound as a parameter it planned anew every time).
    leaf_at = (select(func.max(index_leaves.c.log_index))
               .where(index_leaves.c.log_index < bindparam("below")).scalar_subquery())
    head = (
        select(leaves.c.log_index, cast(null(), index_leaves.c.canonical.type), entries.c.customer_seq,
               entries.c.entry_hash)
        .join(leaves, leaves.c.entry_id == entries.c.id)
        .where(entries.c.customer_id == bindparam("customer_id"), leaves.c.log_index < leaf_at)
        .order_by(entries.c.customer_seq.desc()).limit(1).subquery()
    )
    return union_all(
        select(index_leaves.c.log_index, index_leaves.c.canonical, cast(null(), entries.c.customer_seq.type),
               cast(null(), entries.c.entry_hash.type))
        .where(index_leaves.c.log_index == leaf_at),
        select(head),
    )


_leaf_and_head = per_dialect(_build_leaf_and_head)


async def index_leaf_and_head(session: Executor, customer_id: str, *, below: int
                              ) -> tuple[IndexLeaf | None, Head | None]:
    """The last index leaf at a log_index below `below` (a checkpoint's size), and the customer's
    head in it: its last entry before that leaf, or None for a customer the index does not hold."""
    index_leaf = head = None
    for log_index, canonical, customer_seq, entry_hash in await session.execute(
            _leaf_and_head(session), {"below": below, "customer_id": customer_id}):
        if canonical is not None:
            index_leaf = IndexLeaf.of(log_index, bytes(canonical))
        else:
            head = Head(customer_seq, entry_hash, log_index)
    return index_leaf, head


async def insert_index_leaf(session: Executor, leaf: IndexLeaf) -> None:
    await session.execute(index_leaves.insert(), [{"log_index": leaf.log_index, "canonical": leaf.canonical}])


async def integrated_heads(session: Executor) -> AsyncIterator[dict[bytes, bytes]]:
    """Every customer's last integrated entry as index changes, in chunks: a log integrated before
    the index existed (migration 0010) gets its index from these, in the pass that adds it."""
    last = (
        select(func.max(leaves.c.log_index).label("log_index"))
        .select_from(leaves.join(entries, entries.c.id == leaves.c.entry_id))
        .group_by(entries.c.customer_id).subquery()
    )
    rows = await session.stream(
        select(entries.c.customer_id, entries.c.customer_seq, entries.c.entry_hash)
        .select_from(leaves.join(entries, entries.c.id == leaves.c.entry_id)
                     .join(last, last.c.log_index == leaves.c.log_index))
        .execution_options(yield_per=BACKFILL_CHUNK)
    )
    async for chunk in rows.partitions(BACKFILL_CHUNK):
        yield {tree.index_key(row.customer_id): tree.index_value(row.customer_seq, row.entry_hash)
               for row in chunk}
