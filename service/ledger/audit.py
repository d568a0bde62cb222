"""`seenby audit`: recompute every entry hash, chain link, tree node, customer index leaf and the
signed root from storage."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from sqlalchemy import func, literal, null, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from service.ledger import tree_store
from service.ledger.canonical import ChainLinks, decode, entry_hash
from service.ledger.checkpoint import CheckpointError, NoteError, Verifier, open_checkpoint
from service.ledger.customer_index import tree as index_tree
from service.ledger.customer_index.store import IndexLeaf, read_all_nodes
from service.ledger.customer_index.tables import index_leaves
from service.ledger.merkle import EMPTY_ROOT, CompactRange, NodeId, leaf_hash
from service.ledger.tables import entries, leaves

CHUNK = 5_000
NODES_PER_QUERY = 20_000


@dataclass(frozen=True)
class Finding:
    where: str  # "log_index 17", "entry <hash>", "checkpoint"
    problem: str

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}"


Progress = Callable[[int], None]


async def count_work(connection: AsyncConnection) -> int:
    total_entries = await connection.scalar(select(func.count()).select_from(entries)) or 0
    total_leaves = await connection.scalar(select(func.count()).select_from(leaves)) or 0
    total_index_leaves = await connection.scalar(select(func.count()).select_from(index_leaves)) or 0
    return total_entries + total_leaves + total_index_leaves


async def audit(
    connection: AsyncConnection, verifier: Verifier, progress: Progress = lambda _: None
) -> AsyncIterator[Finding]:
    async for finding in _audit_chains(connection, progress):
        yield finding
    async for finding in _audit_tree(connection, verifier, progress):
        yield finding


async def _audit_chains(connection: AsyncConnection, progress: Progress) -> AsyncIterator[Finding]:
    """Every entry's bytes against its hash and columns; every customer's chain, dense and linked."""
    rows = await connection.stream(
        select(entries.c.customer_id, entries.c.customer_seq, entries.c.prev_hash,
               entries.c.entry_hash, entries.c.canonical)
        .order_by(entries.c.customer_id, entries.c.customer_seq)
        .execution_options(yield_per=CHUNK)
    )
    customer, links = None, ChainLinks()
    async for row in rows:
        where = f"entry {row.entry_hash} (customer {row.customer_id}, seq {row.customer_seq})"
        if row.customer_id != customer:
            customer, links = row.customer_id, ChainLinks()
        if entry_hash(row.canonical) != row.entry_hash:
            yield Finding(where, "canonical bytes do not hash to entry_hash")
        try:
            recorded = decode(row.canonical)
        except ValueError:
            recorded = {}
        if (recorded.get("customer_id"), recorded.get("customer_seq"), recorded.get("prev_hash")) != (
            row.customer_id, row.customer_seq, row.prev_hash
        ):
            yield Finding(where, "stored columns disagree with the canonical bytes")
        for fault in links.follow({"customer_seq": row.customer_seq, "prev_hash": row.prev_hash},
                                  row.entry_hash):
            yield Finding(where, fault)
        progress(1)


async def _audit_tree(
    connection: AsyncConnection, verifier: Verifier, progress: Progress
) -> AsyncIterator[Finding]:
    """Leaves in log order rebuild every stored node, and the root the latest checkpoint signed."""
    latest = await tree_store.latest_checkpoint(connection)
    signed_size = 0
    if latest is not None:
        signed_size = latest.tree_size
        try:
            checkpoint = open_checkpoint(latest.note, verifier)
        except (NoteError, CheckpointError) as exc:
            yield Finding("checkpoint", f"the latest checkpoint does not verify: {exc}")
        else:
            if (checkpoint.size, checkpoint.root_hash) != (latest.tree_size, latest.root_hash):
                yield Finding("checkpoint", "the signed text disagrees with the stored size or root")

    tree = CompactRange()
    signed_root = None
    index = _IndexRebuild()
    computed: dict[NodeId, bytes] = {}
    async for row in await connection.stream(_LEAVES_IN_LOG_ORDER.execution_options(yield_per=CHUNK)):
        while tree.size < row.log_index:  # a missing leaf: report it, keep the indexes aligned
            yield Finding(f"log_index {tree.size}", "no leaf stored at this index")
            computed.update(tree.append(bytes(32)))
        if row.canonical is None:
            yield Finding(f"log_index {row.log_index}", "its entry is missing")
            computed.update(tree.append(bytes(32)))
        else:
            computed.update(tree.append(leaf_hash(row.canonical)))
            if row.is_index_leaf:
                for problem in index.check_leaf(row.log_index, row.canonical):
                    yield Finding(f"log_index {row.log_index}", problem)
            else:
                index.saw(row.customer_id, row.customer_seq, row.entry_hash)
        if tree.size == signed_size:
            signed_root = tree.root()
        if len(computed) >= NODES_PER_QUERY:
            async for finding in _compare_nodes(connection, computed):
                yield finding
            computed = {}
        progress(1)
    async for finding in _compare_nodes(connection, computed):
        yield finding
    if tree.size < signed_size:
        yield Finding("checkpoint", f"signed size {signed_size} but only {tree.size} leaves stored")
    elif latest is not None and (signed_root or EMPTY_ROOT) != latest.root_hash:
        yield Finding("checkpoint", f"the leaves give another root than the checkpoint at {signed_size}")
    async for finding in index.compare_stored(connection):
        yield finding


# Every leaf of the log in order: entries' (kind and columns from the entry) and index leaves'.
_LEAVES_IN_LOG_ORDER = union_all(
    select(leaves.c.log_index, entries.c.canonical, entries.c.customer_id, entries.c.customer_seq,
           entries.c.entry_hash, literal(False).label("is_index_leaf"))
    .outerjoin(entries, entries.c.id == leaves.c.entry_id),
    select(index_leaves.c.log_index, index_leaves.c.canonical, null(), null(), null(), literal(True)),
).order_by("log_index")


class _IndexRebuild:
    """The customer index rebuilt from the entries in log order, checked at every index leaf."""

    def __init__(self) -> None:
        self.nodes: dict[index_tree.NodeId, bytes] = {}
        self.keys = 0
        self.last_leaf: int | None = None
        self._changes: dict[bytes, bytes] = {}

    def saw(self, customer_id: str, customer_seq: int, entry_hash: str) -> None:
        self._changes[index_tree.index_key(customer_id)] = index_tree.index_value(customer_seq, entry_hash)

    def check_leaf(self, log_index: int, canonical: bytes) -> list[str]:
        update = index_tree.update_in_memory(self.nodes, self._changes)
        self._changes, self.keys, self.last_leaf = {}, self.keys + update.added, log_index
        try:
            leaf = IndexLeaf.of(log_index, canonical)
        except (ValueError, KeyError, TypeError):
            return ["the customer index leaf is not {kind, covers (its own log_index), root, customers}"]
        problems = []
        if leaf.root != update.root:
            problems.append("the customer index leaf's root differs from the index rebuilt from the "
                            "entries before it")
        if leaf.customers != self.keys:
            problems.append(f"the customer index leaf counts {leaf.customers} customers, the entries "
                            f"before it {self.keys}")
        return problems

    async def compare_stored(self, connection: AsyncConnection) -> AsyncIterator[Finding]:
        """The stored index nodes serve proofs against the last index leaf: they must be its index."""
        if self.last_leaf is None:
            return
        stored, expected = await read_all_nodes(connection), index_tree.stored_part(self.nodes)
        where = f"log_index {self.last_leaf}"
        for node_id in sorted(stored.keys() | expected.keys()):
            if stored.get(node_id) != expected.get(node_id):
                depth = index_tree.depth_of(node_id)
                yield Finding(where, f"stored customer index node (depth {depth}, prefix "
                                     f"{node_id ^ (1 << depth):x}) does not match the index this leaf "
                                     f"commits to")


async def _compare_nodes(
    connection: AsyncConnection, computed: dict[NodeId, bytes]
) -> AsyncIterator[Finding]:
    if not computed:
        return
    # The nodes one chunk of leaves completes are a contiguous index range at each level.
    spans: dict[int, tuple[int, int]] = {}
    for level, index in computed:
        low, high = spans.get(level, (index, index))
        spans[level] = (min(low, index), max(high, index))
    stored = await tree_store.read_node_spans(connection, spans)
    for node_id, value in sorted(computed.items()):
        level, index = node_id
        if stored.get(node_id) != value:
            first, last = index << level, ((index + 1) << level) - 1
            where = f"log_index {first}" if level == 0 else f"log_index {first}..{last}"
            yield Finding(where, f"stored tree node ({level}, {index}) does not match the leaves")
