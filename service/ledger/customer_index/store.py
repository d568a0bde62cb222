"""The customer index in the database: nodes read a depth at a time, written in one upsert a pass,
and the log leaves that commit to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass
from typing import Any

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
_FIRST_READ_DEPTH = 32  # a lookup's first query reads this deep; few paths in a big index go deeper


def _prefix_bytes(node_id: tree.NodeId) -> bytes:
    depth, prefix = node_id
    return prefix.to_bytes((depth + 7) // 8, "big")


def _node(row: Any) -> tuple[tree.NodeId, tree.Node]:
    leaf = (bytes(row.leaf_key), bytes(row.leaf_value)) if row.leaf_key is not None else None
    return (row.depth, int.from_bytes(row.prefix, "big")), tree.Node(bytes(row.hash), leaf)


_READ_BY_ARRAYS = (
    "SELECT n.depth, n.prefix, n.hash, n.leaf_key, n.leaf_value FROM customer_index_nodes AS n"
    " JOIN unnest($1::smallint[], $2::bytea[]) AS w(depth, prefix) USING (depth, prefix)"
)


async def read_nodes(session: Executor, wanted: Collection[tree.NodeId]) -> dict[tree.NodeId, tree.Node]:
    """Every wanted node that is stored, in one query (SQLite: one per 10,000)."""
    if not wanted:
        return {}
    ordered = sorted(wanted)
    if bulk.is_postgresql(session):
        driver = await bulk.asyncpg_connection(session)
        rows = await driver.fetch(_READ_BY_ARRAYS, [depth for depth, _ in ordered],
                                  [_prefix_bytes(node_id) for node_id in ordered])
        return dict(_node(_Row(*row)) for row in rows)
    found: dict[tree.NodeId, tree.Node] = {}
    for start in range(0, len(ordered), _SQLITE_PAIRS_PER_QUERY):
        pairs = [(depth, _prefix_bytes((depth, prefix)))
                 for depth, prefix in ordered[start:start + _SQLITE_PAIRS_PER_QUERY]]
        result = await session.execute(
            select(*(index_nodes.c[name] for name in _COLUMNS))
            .where(tuple_(index_nodes.c.depth, index_nodes.c.prefix).in_(pairs))
        )
        found.update(_node(row) for row in result)
    return found


@dataclass(frozen=True)
class _Row:
    depth: int
    prefix: bytes
    hash: bytes
    leaf_key: bytes | None
    leaf_value: bytes | None


async def read_all_nodes(session: Executor) -> dict[tree.NodeId, tree.Node]:
    """The whole stored index (`seenby audit` compares it with its rebuild)."""
    result = await session.execute(select(*(index_nodes.c[name] for name in _COLUMNS)))
    return dict(_node(row) for row in result)


async def apply(session: Executor, changes: Mapping[bytes, bytes]) -> tree.Update:
    """Insert or revalue these keys: O(len(changes) * depth) nodes read and written."""
    update = tree.Update(changes)
    while wanted := update.wanted():
        update.feed(await read_nodes(session, wanted))
    await bulk.upsert_rows(session, index_nodes, _COLUMNS, [
        (depth, _prefix_bytes((depth, prefix)), node.hash, *(node.leaf or (None, None)))
        for (depth, prefix), node in update.written.items()
    ])
    return update


async def lookup(session: Executor, key: bytes) -> tree.Lookup:
    """The key's path in the stored index: found in one query unless the path is unusually deep."""
    read_to = _FIRST_READ_DEPTH
    while True:
        nodes = await read_nodes(session, tree.path_and_siblings(key, range(read_to + 1)))
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
