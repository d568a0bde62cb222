"""The customer index in the database: its nodes (read whole by the integrator once, and a path at a
time for a proof; written in one upsert a pass) and the log leaves that commit to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass

from sqlalchemy import func, select, tuple_

from service import bulk
from service.db import Executor
from service.ledger.canonical import canonical_bytes, decode
from service.ledger.customer_index import tree
from service.ledger.customer_index.tables import index_leaves, index_nodes
from service.ledger.tables import entries, leaves

KIND = "customer_index"
_COLUMNS = ("depth", "prefix", "hash", "leaf_key", "leaf_value")
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


_READ_BY_ARRAYS = (
    "SELECT n.depth, n.prefix, n.hash, n.leaf_key, n.leaf_value FROM customer_index_nodes AS n"
    " JOIN unnest($1::smallint[], $2::bytea[]) AS w(depth, prefix) USING (depth, prefix)"
)


async def read_nodes(session: Executor, wanted: Collection[tree.NodeId]) -> dict[tree.NodeId, bytes]:
    """Every wanted node that is stored, in one query (SQLite: one per 10,000)."""
    if not wanted:
        return {}
    keys = [_key(node_id) for node_id in sorted(wanted)]
    if bulk.is_postgresql(session):
        driver = await bulk.asyncpg_connection(session)
        rows = await driver.fetch(_READ_BY_ARRAYS, [depth for depth, _ in keys],
                                  [prefix for _, prefix in keys])
        return dict(_node(*row) for row in rows)
    found: dict[tree.NodeId, bytes] = {}
    for start in range(0, len(keys), _SQLITE_PAIRS_PER_QUERY):
        result = await session.execute(
            select(*(index_nodes.c[name] for name in _COLUMNS))
            .where(tuple_(index_nodes.c.depth, index_nodes.c.prefix)
                   .in_(keys[start:start + _SQLITE_PAIRS_PER_QUERY]))
        )
        found.update(_node(*row) for row in result)
    return found


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


_DELETE_BY_ARRAYS = (
    "DELETE FROM customer_index_nodes AS n USING unnest($1::smallint[], $2::bytea[]) AS w(depth, prefix)"
    " WHERE n.depth = w.depth AND n.prefix = w.prefix"
)


async def lookup(session: Executor, key: bytes) -> tree.Lookup:
    """The key's path in the stored index: found in one query unless the path is unusually deep."""
    read_to = _FIRST_READ_DEPTH
    while True:
        nodes = await read_nodes(session, tree.proof_reads(key, range(read_to + 1)))
        found = tree.lookup(key, nodes, read_to)
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
