"""Exports cut against a signed checkpoint: entries in log order, streamed, and their manifest.

Nothing here holds more than one batch of entries in memory. On PostgreSQL the entries come from
one server-side cursor; on SQLite a read transaction held for a whole export would keep the WAL
from being checkpointed (it grows for as long as the export runs), so there each batch is its own
short keyset query: entries up to a signed tree size never change, so the batches join up exactly.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, Select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from service.auth import Principal
from service.db import Database, uninterrupted_read
from service.errors import AheadOfThisDatabase, BeyondLatestCheckpoint, Unprocessable
from service.exports import formats
from service.ledger import merkle, reads, tree_store
from service.ledger.kinds import EntryKind
from service.ledger.merkle import NodeId
from service.tenancy import ensure_readable, jurisdiction_customers
from service.tlog import service as tlog
from service.types import Period
from service.witness import store as witness_store

BATCH = 1_000
NODES_PER_QUERY = 4_000  # SQLite allows 32,766 bound values in one statement, asyncpg 32,767


def _invalid(field: str, message: str) -> Unprocessable:
    return Unprocessable.at(f"query.{field}", message)


@dataclass(frozen=True)
class ExportFilter:
    """What to export; `kind` is "all" or one kind of entry; the period is on `recorded_at`."""

    customer_id: str | None = None
    recorded: Period = field(default_factory=Period)
    kind: str = EntryKind.ACCESS
    format: str = "jsonl"

    def parameters(self) -> dict[str, Any]:
        """As the manifest records them, times in the ledger's own RFC 3339 form."""
        return {"customer_id": self.customer_id, **self.recorded.bounds(), "kind": self.kind,
                "format": self.format}


@dataclass(frozen=True)
class Cut:
    """The signed checkpoint an export is cut against: it holds exactly the leaves below tree_size."""

    tree_size: int
    note: str
    primary: bool = False  # read from the primary: the standby had not replayed tree_size yet


async def cut(database: Database, principal: Principal, wanted: ExportFilter,
              tree_size: int | None, witnessing: tlog.Witnessing) -> Cut:
    """Check the request and pick its checkpoint: the one served (witnessed, with a policy), or the
    one signed at `tree_size` with whatever cosignatures it has. Read from the standby, or from the
    primary for a `tree_size` the standby has not replayed yet (and then exported from there)."""
    async with database.replica_sessions() as session:
        try:
            return await _cut(session, principal, wanted, tree_size, witnessing, primary=False)
        except AheadOfThisDatabase:
            if database.standby_engine is None:
                raise
    async with database.read_sessions() as session:
        return await _cut(session, principal, wanted, tree_size, witnessing, primary=True)


async def _cut(session: AsyncSession, principal: Principal, wanted: ExportFilter, tree_size: int | None,
               witnessing: tlog.Witnessing, *, primary: bool) -> Cut:
    if wanted.customer_id is not None:
        await ensure_readable(session, principal, wanted.customer_id)
    served = await tlog.served(session, witnessing)
    if tree_size is None or tree_size == served.tree_size:
        return Cut(served.tree_size, served.note, primary)
    latest = await tlog.latest(session)
    if tree_size > latest.tree_size:
        raise BeyondLatestCheckpoint.at(
            "query.tree_size", f"tree_size {tree_size} is beyond the latest checkpoint ({latest.tree_size})")
    stored = await tree_store.checkpoint_at(session, tree_size)
    if stored is not None and witnessing.policy is not None:
        stored = await witness_store.with_cosignatures(session, stored, witnessing.policy)
    if stored is None:
        raise _invalid("tree_size", f"no checkpoint was signed at tree size {tree_size}; pin a size "
                                    "from a Seenby-Tree-Size header or /v1/log/checkpoint")
    return Cut(stored.tree_size, stored.note, primary)


async def _statement(database: Database, principal: Principal, wanted: ExportFilter, cut: Cut,
                     after: int | None) -> Select[Any]:
    """The export's entries. Those of a period of the whole log, on PostgreSQL, bounded by the range
    of the log its entries are in (one customer's are found through its own indexes; SQLite has no
    index that finds a period's entries of every kind)."""
    span = None
    period = wanted.recorded.since_us is not None or wanted.recorded.until_us is not None
    if period and wanted.customer_id is None and not database.sqlite:
        async with uninterrupted_read(), _engine(database, cut).connect() as connection:
            span = await reads.span_of_period(connection, wanted.recorded)
    statement = reads.in_log_order(tree_size=cut.tree_size, customer_id=wanted.customer_id,
                                   kind=wanted.kind, recorded=wanted.recorded,
                                   scope=jurisdiction_customers(principal), span=span)
    return statement if after is None else reads.after(statement, after)


def _engine(database: Database, cut: Cut) -> AsyncEngine:
    return database.read_engine if cut.primary else database.replica_engine


async def _batches(database: Database, cut: Cut, statement: Select[Any]
                   ) -> AsyncGenerator[Sequence[Row[Any]], None]:
    """The statement's rows, BATCH at a time, each read uninterrupted by a client's hang-up."""
    engine = _engine(database, cut)
    if database.sqlite:
        position: int | None = None
        while True:
            page = statement if position is None else reads.after(statement, position)
            async with uninterrupted_read(), engine.connect() as connection:
                rows = (await connection.execute(page.limit(BATCH))).all()
            if rows:
                yield rows
            if len(rows) < BATCH:
                return
            position = rows[-1].log_index
    async with engine.connect() as connection:
        async with uninterrupted_read():
            partitions = (await connection.stream(statement.execution_options(yield_per=BATCH))).partitions()
        while True:
            async with uninterrupted_read():
                batch = await anext(partitions, None)
            if batch is None:
                return
            yield batch


def _views(rows: Sequence[Row[Any]]) -> list[dict[str, Any]]:
    return [
        formats.export_view(
            row.canonical, row.entry_hash, row.log_index,
            (row.employee_id, row.id_salt) if row.employee_id is not None else None,
        )
        for row in rows
    ]


async def export_bytes(database: Database, principal: Principal, wanted: ExportFilter, cut: Cut,
                       after_log_index: int | None = None) -> AsyncGenerator[bytes, None]:
    """The export, one rendered batch at a time; resuming (`after_log_index`) leaves out the CSV header."""
    if wanted.format == "csv" and after_log_index is None:
        yield formats.csv_header()
    statement = await _statement(database, principal, wanted, cut, after_log_index)
    async with aclosing(_batches(database, cut, statement)) as batches:
        async for rows in batches:
            yield formats.render(_views(rows), wanted.format)


async def manifest_bytes(database: Database, principal: Principal, wanted: ExportFilter,
                         cut: Cut) -> AsyncGenerator[bytes, None]:
    """The manifest of the export with the same filter and cut: proofs as they are built, the count and
    digest of the export's bytes (rendered here, never sent) last."""
    yield formats.manifest_head({
        "checkpoint": cut.note, "tree_size": cut.tree_size, "parameters": wanted.parameters(),
    })
    digest = hashlib.sha256()
    if wanted.format == "csv":
        digest.update(formats.csv_header())
    proofs = _ProofWriter(_engine(database, cut), cut.tree_size)
    count, first, last = 0, None, None
    statement = await _statement(database, principal, wanted, cut, None)
    async with aclosing(_batches(database, cut, statement)) as batches:
        async for rows in batches:
            digest.update(formats.render(_views(rows), wanted.format))
            yield await proofs.render([(row.log_index, merkle.leaf_hash(row.canonical)) for row in rows])
            count += len(rows)
            first = rows[0].log_index if first is None else first
            last = rows[-1].log_index
    yield formats.manifest_tail(
        {"count": count, "first_log_index": first, "last_log_index": last,
         "sha256": digest.hexdigest()},
        any_proofs=count > 0,
    )


class _ProofWriter:
    """Inclusion proofs of leaves in log order, rendered a batch at a time from the nodes they need,
    read over one connection (NODES_PER_QUERY nodes a statement).

    A leaf's proof is its sibling path inside its block (merkle.ProofBlock), then the ranges above
    the block, the same for every leaf in it. From one leaf to the next in log order only the lowest
    siblings change, as many levels as the bits their indexes differ in; so each node is read, and
    written in hex, once for the run of leaves that shares it."""

    def __init__(self, engine: AsyncEngine, tree_size: int) -> None:
        self._engine = engine
        self._blocks = merkle.proof_blocks(tree_size)
        self._starts = [block.start for block in self._blocks]
        self._above: dict[int, list[str]] = {}  # a block's position -> its ranges above, in hex
        self._block, self._last = -1, -1
        self._path: list[str] = []  # the last leaf's siblings in hex, level 0 up
        self._written = 0

    async def render(self, leaves: Sequence[tuple[int, bytes]]) -> bytes:
        """The proofs of (log_index, leaf hash) pairs that follow the last ones in log order."""
        steps, wanted, new_blocks = [], set[NodeId](), []
        block, last = self._block, self._last
        for index, leaf in leaves:
            if index <= last:
                raise ValueError(f"leaf {index} does not follow leaf {last} in log order")
            position = bisect_right(self._starts, index) - 1
            if position != block:
                block, renewed = position, self._blocks[position].height
                if position not in self._above:
                    new_blocks.append(position)
                    wanted.update(node for start, end in self._blocks[position].above
                                  for node in merkle.perfect_subtrees(start, end))
            else:
                renewed = (index ^ last).bit_length()
            path = self._blocks[position].path(index, renewed)
            wanted.update(path)
            steps.append((index, leaf, position, path))
            last = index
        lookup = await self._read(wanted)
        for position in new_blocks:
            self._above[position] = [merkle.hash_range(start, end, lookup).hex()
                                     for start, end in self._blocks[position].above]
        lines = []
        for index, leaf, position, path in steps:
            if position != self._block:
                self._block, self._path = position, [""] * self._blocks[position].height
            for level, node in enumerate(path):
                self._path[level] = merkle.fetch_node(lookup, node).hex()
            lines.append(formats.manifest_proof({
                "log_index": index, "leaf_hash": leaf.hex(), "hashes": self._path + self._above[position],
            }, first=self._written == 0))
            self._written += 1
        self._last = last
        return b"".join(lines)

    async def _read(self, wanted: set[NodeId]) -> dict[NodeId, bytes]:
        ordered, lookup = sorted(wanted), dict[NodeId, bytes]()
        if not ordered:
            return lookup
        async with uninterrupted_read(), self._engine.connect() as connection:
            for first in range(0, len(ordered), NODES_PER_QUERY):
                chunk = ordered[first:first + NODES_PER_QUERY]
                lookup.update(await tree_store.read_nodes(connection, chunk))
        return lookup
