"""`seenby audit`: recompute every entry hash, chain link, tree node, customer index leaf and the
signed root from storage."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, CompoundSelect, Select, cast, func, null, select, type_coerce, union_all
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import NullType

from service.collector import collect_rarely
from service.db import make_engine
from service.ledger import repeated_columns, tree_store
from service.ledger.canonical import ChainLinks, decode, entry_hash
from service.ledger.checkpoint import (
    CheckpointError,
    NoteError,
    Verifier,
    open_checkpoint,
    parse_verifier_key,
)
from service.ledger.customer_index import tree as index_tree
from service.ledger.customer_index.store import IndexLeaf, read_all_nodes
from service.ledger.customer_index.tables import index_leaves
from service.ledger.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    STORED_TILE_STEP,
    TILE_WIDTH,
    CompactRange,
    NodeId,
    leaf_hash,
)
from service.ledger.store import NOT_STORED
from service.ledger.tables import TILE_BYTES, entries, heads, identities, leaves

CHUNK = 5_000
NODES_PER_QUERY = 20_000
CUSTOMERS_PER_QUERY = 500  # customers whose chains are read again in order, a statement at a time


@dataclass(frozen=True)
class Finding:
    where: str  # "log_index 17", "entry <hash>", "checkpoint"
    problem: str

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}"


Progress = Callable[[int], None]


@dataclass(frozen=True)
class LogSpan:
    """The part of the log [first, end) whose index leaves a part of the index pass checks; end None
    for the rest of the log."""

    first: int = 0
    end: int | None = None


WHOLE_LOG = LogSpan()


@dataclass(frozen=True)
class CustomerSpan:
    """The customers [first, end) (by id, byte order) whose chains a part of the chains pass checks;
    None for no bound."""

    first: str | None = None
    end: str | None = None


EVERY_CUSTOMER = CustomerSpan()


def run_pass(
    name: str, connection: AsyncConnection, verifier: Verifier, progress: Progress = lambda _: None,
    *, index_span: LogSpan = WHOLE_LOG, customers: CustomerSpan = EVERY_CUSTOMER,
) -> AsyncIterator[Finding]:
    """One of the audit's passes (PASSES), each independent of the others: they can run side by side,
    on connections of their own. The index pass can be run in parts (`index_span`, see
    split_index_pass), and the chains pass (`customers`, split_chains_pass), side by side too."""
    if name != "index" and index_span != WHOLE_LOG:
        raise ValueError("only the index pass runs in parts of the log")
    if name != "chains" and customers != EVERY_CUSTOMER:
        raise ValueError("only the chains pass runs in parts by customer")
    if name == "chains":
        return _audit_chains(connection, progress, customers)
    if name == "tree":
        return _audit_tree(connection, verifier, progress)
    if name == "index":
        return _audit_index(connection, progress, index_span)
    raise ValueError(f"no audit pass {name!r}")


# In the order their findings are reported.
PASSES = ("chains", "tree", "index")

# The index pass (a path of hashes per customer at each index leaf: 20 us an entry over 100,000
# customers) and the chains pass (every entry's bytes against its hash, its columns and its
# identity: 16 us) take longest, and whole, either would leave a core idle for the end of an audit;
# in two parts each they do not (the tree pass takes some 8 us an entry).
INDEX_PARTS = 2
CHAINS_PARTS = 2


@dataclass(frozen=True)
class Job:
    """What one process of the audit does: a pass, or a part of one; and the rows it reads (of the
    chains pass's parts, a share of the entries: their customers' are not counted beforehand)."""

    name: str
    rows: int
    index_span: LogSpan = WHOLE_LOG
    customers: CustomerSpan = EVERY_CUSTOMER


async def plan(connection: AsyncConnection, index_parts: int = INDEX_PARTS,
               chains_parts: int = CHAINS_PARTS) -> list[Job]:
    """The passes, the index and chains passes in parts, in the order their findings are reported."""
    total_entries = await connection.scalar(select(func.count()).select_from(entries)) or 0
    log_size = ((await connection.scalar(select(func.count()).select_from(leaves)) or 0)
                + (await connection.scalar(select(func.count()).select_from(index_leaves)) or 0))
    spans = await split_index_pass(connection, log_size, index_parts)
    customer_spans = await split_chains_pass(connection, chains_parts)
    shares = [total_entries // len(customer_spans)] * len(customer_spans)
    shares[-1] += total_entries - sum(shares)
    chains = [Job("chains", share, customers=customer_span)
              for share, customer_span in zip(shares, customer_spans, strict=True)]
    return [*chains, Job("tree", log_size),
            *(Job("index", log_size if span.end is None else span.end, span) for span in spans)]


async def split_chains_pass(connection: AsyncConnection, parts: int) -> list[CustomerSpan]:
    """The customers cut into `parts` of as many customers each (by their chains' heads; every
    entry is in exactly one part whatever the cuts), in id order: the parts' findings, each in
    customer order, follow one another in it."""
    customers = await connection.scalar(select(func.count()).select_from(heads)) or 0
    cuts: list[str] = []
    for part in range(1, parts):
        cut = await connection.scalar(select(heads.c.customer_id).order_by(heads.c.customer_id)
                                      .offset(customers * part // parts).limit(1))
        if cut is not None and (not cuts or cut > cuts[-1]):
            cuts.append(cut)
    bounds: list[str | None] = [None, *cuts, None]
    return [CustomerSpan(first, end) for first, end in itertools.pairwise(bounds)]


async def split_index_pass(connection: AsyncConnection, log_size: int, parts: int) -> list[LogSpan]:
    """The log cut at the first index leaf at or after each equal share of it. A part reads the log
    from its start, and only remembers each customer's head until its span begins: the last part
    does the most, and still little more than its share (1M entries over 100,000 customers: 9.9 and
    12.8 s of CPU for the two halves, 21.9 for the pass in one piece)."""
    cuts: list[int] = []
    for part in range(1, parts):
        cut = await connection.scalar(select(func.min(index_leaves.c.log_index))
                                      .where(index_leaves.c.log_index >= log_size * part // parts))
        if cut is not None and cut > (cuts[-1] if cuts else 0):
            cuts.append(cut)
    return [LogSpan(first, end) for first, end in zip([0, *cuts], [*cuts, None], strict=True)]


def audit_side_by_side(url: str, verifier: Verifier,
                       progress: Callable[[int, int], None] = lambda done, total: None) -> list[Finding]:
    """Every pass, each in a process of its own with its own connection and the index pass in
    INDEX_PARTS of them, all at once; `progress(rows done, rows in all)` while they run. Findings in
    PASSES order.

    All at once even on fewer cores than processes: the passes differ in length, and the kernel
    shares the cores among them until each ends (on 2 cores, the 3 passes in 3 processes audited
    200,000 entries about 18 % faster than 2 processes that took the passes in turn)."""
    jobs = asyncio.run(_planned(url))
    total = sum(job.rows for job in jobs)
    done = multiprocessing.Value("q", 0)
    with ProcessPoolExecutor(max_workers=len(jobs), initializer=_share_progress,
                             initargs=(done,)) as pool:
        running = [pool.submit(_job_in_process, job, url, verifier.text()) for job in jobs]
        while not all(future.done() for future in running):
            progress(done.value, total)
            time.sleep(0.2)
        return [finding for future in running for finding in future.result()]


async def _planned(url: str) -> list[Job]:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            return await plan(connection)
    finally:
        await engine.dispose()


_progress: Any = None  # the shared row count, in each process of the pool


def _share_progress(done: Any) -> None:
    global _progress
    _progress = done


def _advance(rows: int) -> None:
    with _progress.get_lock():
        _progress.value += rows


def _job_in_process(job: Job, url: str, verifier_key_text: str) -> list[Finding]:
    collect_rarely()

    async def run() -> list[Finding]:
        engine = make_engine(url)
        try:
            async with engine.connect() as connection:
                return [finding async for finding in run_pass(
                    job.name, connection, parse_verifier_key(verifier_key_text), _advance,
                    index_span=job.index_span, customers=job.customers)]
        finally:
            await engine.dispose()

    return asyncio.run(run())


async def _audit_chains(
    connection: AsyncConnection, progress: Progress, customers: CustomerSpan
) -> AsyncIterator[Finding]:
    """Every entry's bytes against its hash and columns; every customer's chain, dense and linked.

    The entries are read in the table's order, front to back: through the chains' index instead,
    PostgreSQL reads a page an entry, and on a log larger than its buffers that costs more CPU than
    the rest of this pass. A write takes its customers' chain locks before it inserts, so each
    chain's entries come in its order, and are followed as they come. A customer's entry that is not
    the next of its chain (a gap, a position repeated: tampering) sets it aside, and such customers
    are read again at the end, in their chains' order: the findings are those of reading every
    chain in order, reported by customer (as Python orders the ids) and customer_seq."""
    in_span = _CHAIN_ROWS
    if customers.first is not None:
        in_span = in_span.where(entries.c.customer_id >= customers.first)
    if customers.end is not None:
        in_span = in_span.where(entries.c.customer_id < customers.end)
    rows = await connection.stream(in_span.order_by(entries.c.id).execution_options(yield_per=CHUNK))
    chains: dict[str, ChainLinks] = {}
    out_of_turn: set[str] = set()
    found: list[_Faulty] = []
    objections: list[_Objection] = []
    async for partition in rows.partitions():  # a chunk at a time: the driver is awaited per chunk
        for row in partition:
            customer_id = row[0]
            if customer_id in out_of_turn:
                continue
            links = chains.get(customer_id)
            if links is None:
                links = chains[customer_id] = ChainLinks()
            if row[1] != links.next_seq:
                out_of_turn.add(customer_id)
                del chains[customer_id]
                continue
            faulty = _entry_faults(links, row, objections)
            if faulty is not None:
                found.append(faulty)
        progress(len(partition))
    del chains
    found = [faulty for faulty in found if faulty.customer_id not in out_of_turn]
    objections = [objection for objection in objections if objection.customer_id not in out_of_turn]
    found += [faulty async for faulty in _chains_in_order(connection, sorted(out_of_turn), objections)]
    found += [faulty async for faulty in _objected_entries(connection, objections)]
    for faulty in sorted(found, key=lambda faulty: (faulty.customer_id, faulty.customer_seq)):
        where = f"entry {faulty.stored_hash} (customer {faulty.customer_id}, seq {faulty.customer_seq})"
        for fault in faulty.faults:
            yield Finding(where, fault)


async def _chains_in_order(connection: AsyncConnection, customer_ids: list[str],
                           objections: list[_Objection]) -> AsyncIterator[_Faulty]:
    """These customers' entries read in their chains' order (a position held twice: in the order
    written), through the chains' index."""
    for start in range(0, len(customer_ids), CUSTOMERS_PER_QUERY):
        rows = await connection.stream(
            _CHAIN_ROWS
            .where(entries.c.customer_id.in_(customer_ids[start:start + CUSTOMERS_PER_QUERY]))
            .order_by(entries.c.customer_id, entries.c.customer_seq, entries.c.id)
            .execution_options(yield_per=CHUNK))
        customer, links = None, ChainLinks()
        async for partition in rows.partitions():
            for row in partition:
                if row[0] != customer:
                    customer, links = row[0], ChainLinks()
                faulty = _entry_faults(links, row, objections)
                if faulty is not None:
                    yield faulty


async def _objected_entries(
    connection: AsyncConnection, objections: list[_Objection]
) -> AsyncIterator[_Faulty]:
    """Each objection's repeated columns against the entry it objects to, in its customer's chain."""
    hashes = sorted({o.columns.objected_entry_hash for o in objections
                     if isinstance(o.columns.objected_entry_hash, str)})
    objected: dict[tuple[str, str], dict[str, Any]] = {}
    for start in range(0, len(hashes), CUSTOMERS_PER_QUERY):
        rows = await connection.execute(
            select(entries.c.customer_id, _as_stored(entries.c.entry_hash), entries.c.canonical)
            .where(entries.c.entry_hash.in_(hashes[start:start + CUSTOMERS_PER_QUERY])))
        for customer_id, stored, canonical in rows:
            with contextlib.suppress(ValueError):
                key = customer_id, stored.hex() if isinstance(stored, bytes) else stored
                objected[key] = decode(canonical)
    for objection in objections:
        objected_hash = objection.columns.objected_entry_hash  # whatever the bytes hold: maybe no string
        target = None
        if isinstance(objected_hash, str):
            target = objected.get((objection.customer_id, objected_hash))
        faults = repeated_columns.objected_faults(objection.columns, target)
        if faults:
            yield _Faulty(objection.customer_id, objection.customer_seq, objection.stored_hash, faults)


@dataclass(frozen=True)
class _Faulty:
    """An entry the chains pass found something wrong with."""

    customer_id: str
    customer_seq: int
    stored_hash: str
    faults: list[str]


class _Objection(NamedTuple):
    """An objection, whose columns are checked against the entry it objects to once all are read."""

    customer_id: str
    customer_seq: int
    stored_hash: str
    columns: repeated_columns.ObjectionColumns


def _entry_faults(links: ChainLinks, row: Sequence[Any], objections: list[_Objection]) -> _Faulty | None:
    """An entry (a row of _CHAIN_ROWS) checked against its hash, its columns and the identity kept
    apart, and followed in its chain (`links`). An objection is added to `objections`."""
    customer_id, customer_seq, stored_prev_hash, stored, canonical = row[:5]
    columns, (employee_id, salt) = tuple(row[5:-2]), row[-2:]
    stored_hash = stored.hex() if isinstance(stored, bytes) else stored
    faults = []
    if entry_hash(canonical) != stored_hash:
        faults.append("canonical bytes do not hash to entry_hash")
    try:
        recorded = decode(canonical)
    except ValueError:
        recorded = {}
    prev_hash = recorded.get("prev_hash")
    if (recorded.get("customer_id"), recorded.get("customer_seq")) != (
        customer_id, customer_seq
    ) or stored_prev_hash not in (NOT_STORED, prev_hash):
        faults.append("stored columns disagree with the canonical bytes")
    faults += repeated_columns.column_faults(recorded, columns)
    faults += repeated_columns.identity_faults(recorded, employee_id, _salt_bytes(salt))
    if (objection := repeated_columns.objection_columns(recorded, columns)) is not None:
        objections.append(_Objection(customer_id, customer_seq, stored_hash, objection))
    faults += links.follow({"customer_seq": customer_seq, "prev_hash": prev_hash}, stored_hash)
    return _Faulty(customer_id, customer_seq, stored_hash, faults) if faults else None


def _salt_bytes(salt: bytes | str | None) -> bytes | None:
    """The salt as the driver reads it (bytes on PostgreSQL, hex on SQLite); hex that is not, as
    bytes that match no commitment."""
    if salt is None or isinstance(salt, bytes):
        return salt
    try:
        return bytes.fromhex(salt)
    except ValueError:
        return salt.encode()


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
    computed = _StoredLevels()
    leaves_in_order = await connection.stream(_LEAVES_IN_LOG_ORDER.execution_options(yield_per=CHUNK))
    async for partition in leaves_in_order.partitions():
        for log_index, canonical in partition:
            while tree.size < log_index:  # a missing leaf: report it, keep the indexes aligned
                yield Finding(f"log_index {tree.size}", "no leaf stored at this index")
                computed.add(tree.append(bytes(32)))
            if canonical is None:
                yield Finding(f"log_index {log_index}", "its entry is missing")
                computed.add(tree.append(bytes(32)))
            else:
                computed.add(tree.append(leaf_hash(canonical)))
            if tree.size == signed_size:
                signed_root = tree.root()
        if computed.held >= NODES_PER_QUERY:
            async for finding in computed.compare(connection, whole_tiles_only=True):
                yield finding
        progress(len(partition))
    async for finding in computed.compare(connection, whole_tiles_only=False):
        yield finding
    if tree.size < signed_size:
        yield Finding("checkpoint", f"signed size {signed_size} but only {tree.size} leaves stored")
    elif latest is not None and (signed_root or EMPTY_ROOT) != latest.root_hash:
        yield Finding("checkpoint", f"the leaves give another root than the checkpoint at {signed_size}")


async def _audit_index(
    connection: AsyncConnection, progress: Progress, span: LogSpan
) -> AsyncIterator[Finding]:
    """The customer index rebuilt from the entries in log order: every index leaf of the span commits
    to it, and the stored index nodes are the log's last leaf's. A span that starts midway starts
    from each customer's head before it (its last entry in log order there), which the database
    works out: the index is first built at the span's first leaf. (A leaf whose entry is missing is
    the tree pass's finding.)"""
    index = _IndexRebuild()
    if span.first:
        for customer_id, customer_seq, head_hash in await connection.execute(_heads_before(span.first)):
            index.saw(customer_id, customer_seq, head_hash)
        progress(span.first)
    positions = await connection.stream(_positions_in_log_order(span).execution_options(yield_per=CHUNK))
    async for partition in positions.partitions():
        for log_index, customer_id, customer_seq, head_hash, index_leaf in partition:
            if index_leaf is not None:
                for problem in index.check_leaf(log_index, index_leaf):
                    yield Finding(f"log_index {log_index}", problem)
            elif customer_id is not None:
                index.saw(customer_id, customer_seq, head_hash)
        progress(len(partition))
    if span.end is None:
        async for finding in index.compare_stored(connection):
            yield finding


def _as_stored(hash_column: ColumnElement[str]) -> ColumnElement[Any]:
    """A hash column as the driver reads it (bytes on PostgreSQL, hex on SQLite), without HexBytes'
    conversion of every row, which costs more than the audit's own `bytes.hex()` where it needs hex."""
    return type_coerce(hash_column, NullType())


# What the chains pass reads of an entry: its place in its chain, its bytes and their hash, the
# columns that repeat what the bytes say, and the identity kept apart (for a human actor).
_CHAIN_ROWS = select(
    entries.c.customer_id, entries.c.customer_seq, entries.c.prev_hash, _as_stored(entries.c.entry_hash),
    entries.c.canonical, *(entries.c[name] for name in repeated_columns.COLUMNS),
    identities.c.employee_id, _as_stored(identities.c.id_salt),
).select_from(entries.outerjoin(identities, identities.c.entry_id == entries.c.id))

# Every leaf of the log in order: entries' canonical bytes and index leaves'.
_LEAVES_IN_LOG_ORDER = union_all(
    select(leaves.c.log_index, entries.c.canonical).outerjoin(entries, entries.c.id == leaves.c.entry_id),
    select(index_leaves.c.log_index, index_leaves.c.canonical),
).order_by("log_index")

def _heads_before(end: int) -> Select[Any]:
    """Each customer's last entry among the leaves before `end`, in log order: its chain position."""
    last = (select(entries.c.customer_id, func.max(leaves.c.log_index).label("log_index"))
            .join(entries, entries.c.id == leaves.c.entry_id)
            .where(leaves.c.log_index < end).group_by(entries.c.customer_id).subquery())
    return (select(entries.c.customer_id, entries.c.customer_seq, _as_stored(entries.c.entry_hash))
            .select_from(last)
            .join(leaves, leaves.c.log_index == last.c.log_index)
            .join(entries, entries.c.id == leaves.c.entry_id))


def _positions_in_log_order(span: LogSpan) -> CompoundSelect[Any]:
    """The leaves of the span as the customer index sees them: each entry's chain position, each
    index leaf."""
    entry_positions = (
        select(leaves.c.log_index, entries.c.customer_id, entries.c.customer_seq,
               _as_stored(entries.c.entry_hash),
               cast(null(), index_leaves.c.canonical.type).label("index_leaf"))
        .outerjoin(entries, entries.c.id == leaves.c.entry_id))
    index_positions = select(
        index_leaves.c.log_index, cast(null(), entries.c.customer_id.type),
        cast(null(), entries.c.customer_seq.type), cast(null(), entries.c.entry_hash.type),
        index_leaves.c.canonical)
    entry_positions = entry_positions.where(leaves.c.log_index >= span.first)
    index_positions = index_positions.where(index_leaves.c.log_index >= span.first)
    if span.end is not None:
        entry_positions = entry_positions.where(leaves.c.log_index < span.end)
        index_positions = index_positions.where(index_leaves.c.log_index < span.end)
    return union_all(entry_positions, index_positions).order_by("log_index")


class _IndexRebuild:
    """The customer index rebuilt from the entries in log order, checked at every index leaf."""

    def __init__(self) -> None:
        self.nodes: dict[index_tree.NodeId, bytes] = {}
        self.keys = 0
        self.last_leaf: int | None = None
        # Each customer's last chain position since the last index leaf: hashed into the index's key
        # and value only there, once a customer however many entries it had meanwhile.
        self._heads: dict[str, tuple[int, str | bytes]] = {}
        self._keys: dict[str, bytes] = {}  # each customer's index key, hashed once

    def saw(self, customer_id: str, customer_seq: int, entry_hash: str | bytes) -> None:
        self._heads[customer_id] = (customer_seq, entry_hash)

    def check_leaf(self, log_index: int, canonical: bytes) -> list[str]:
        keys = self._keys
        update = index_tree.update_in_memory(self.nodes, {
            keys.get(customer_id) or keys.setdefault(customer_id, index_tree.index_key(customer_id)):
                index_tree.index_value(*head)
            for customer_id, head in self._heads.items()})
        self._heads, self.keys, self.last_leaf = {}, self.keys + update.added, log_index
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


class _StoredLevels:
    """The nodes of the stored levels (0, 4, 8, ...: the others are hashed up from them when read, so
    they match wherever these do) as the leaves make them, each level's hashes side by side. They are
    compared with storage a whole tile at a time, and node by node only where a tile differs, is not
    stored or is not yet complete, so that a finding names the node."""

    def __init__(self) -> None:
        self._first: dict[int, int] = {}  # level -> the index of the first node held
        self._hashes: dict[int, bytearray] = {}

    @property
    def held(self) -> int:
        return sum(len(hashes) for hashes in self._hashes.values()) // HASH_SIZE

    def add(self, completed: list[tuple[NodeId, bytes]]) -> None:
        for (level, index), value in completed:
            if level % STORED_TILE_STEP == 0:
                if level not in self._hashes:
                    self._first[level], self._hashes[level] = index, bytearray()
                self._hashes[level] += value

    async def compare(self, connection: AsyncConnection, *, whole_tiles_only: bool) -> AsyncIterator[Finding]:
        """Compare what is held (only its whole tiles, if asked) and let it go."""
        tiles: dict[int, tuple[int, int]] = {}  # level -> the whole tiles held: first, last
        for level, hashes in self._hashes.items():
            first_tile = self._first[level] // TILE_WIDTH  # aligned: every level starts at node 0
            if count := len(hashes) // TILE_BYTES:
                tiles[level] = (first_tile, first_tile + count - 1)
        stored_tiles = await tree_store.read_tiles(connection, tiles)
        differing: dict[NodeId, bytes] = {}
        for level, (first_tile, last_tile) in tiles.items():
            hashes = self._hashes[level]
            for tile_index in range(first_tile, last_tile + 1):
                start = (tile_index - first_tile) * TILE_BYTES
                made = bytes(hashes[start:start + TILE_BYTES])
                if stored_tiles.get((level, tile_index)) != made:
                    differing.update(tree_store.nodes_side_by_side(level, tile_index * TILE_WIDTH, made))
            del hashes[:(last_tile - first_tile + 1) * TILE_BYTES]
            self._first[level] = (last_tile + 1) * TILE_WIDTH
        if not whole_tiles_only:
            for level, hashes in self._hashes.items():
                differing.update(tree_store.nodes_side_by_side(level, self._first[level], hashes))
                self._first[level] += len(hashes) // HASH_SIZE
                hashes.clear()
        async for finding in _compare_nodes(connection, differing):
            yield finding


async def _compare_nodes(
    connection: AsyncConnection, computed: dict[NodeId, bytes]
) -> AsyncIterator[Finding]:
    """Each node against storage (its node row, or its tile), by name."""
    if not computed:
        return
    # One span of indexes a level covers them (and any nodes between, read but not compared).
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
