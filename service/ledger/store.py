"""Appending entries to customers' chains, and reading them back; the only writer of ledger rows."""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import Select, event, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from service import bulk
from service.clock import format_micros
from service.db import one_of, per_dialect
from service.ids import random_blocks
from service.ledger import tables
from service.ledger.canonical import GENESIS_HASH, canonical_bytes, entry_hash
from service.ledger.kinds import EntryKind
from service.ledger.merkle import leaf_hash
from service.ledger.tables import FILTER_COLUMNS
from service.metrics import ENTRIES_RECORDED
from service.notices import tables as notice_tables
from service.notices.outbox import mark_written, notices_of, outbox_of, pack


@dataclass
class NewEntry:
    """What a domain asks the ledger to record; the store adds the chain and the nonce."""

    customer_id: str
    kind: EntryKind
    body: dict[str, Any]
    recorded_by: str
    flags: list[str] = field(default_factory=list)
    columns: dict[str, Any] = field(default_factory=dict)  # of FILTER_COLUMNS: filters for reads
    identity: tuple[str, str] | None = None  # (employee id, salt), kept out of the entry
    # `columns` in FILTER_COLUMNS order, ready for the row: built here, before any lock is taken.
    column_values: tuple[Any, ...] = field(init=False)

    def __post_init__(self) -> None:
        if not self.columns.keys() <= FILTER_COLUMN_SET:
            raise ValueError(f"not ledger columns: {sorted(self.columns.keys() - FILTER_COLUMN_SET)}")
        self.column_values = tuple(map(self.columns.get, FILTER_COLUMNS))


class AppendedEntry(NamedTuple):
    customer_id: str
    customer_seq: int
    entry_hash: str
    recorded_at: str
    canonical: bytes


async def append(
    session: AsyncSession, new_entries: Sequence[NewEntry], recorded_at_us: int
) -> list[AppendedEntry]:
    """Chain and insert entries in one round trip per table; the caller holds the customers' locks.

    Each entry is queued for the integrator with its RFC 6962 leaf hash, computed here from the
    canonical bytes already in hand, so the integrator never reads them back.
    """
    heads = await _read_heads(session, {e.customer_id for e in new_entries})
    ids = await _next_ids(session, len(new_entries))
    recorded_at = format_micros(recorded_at_us)
    nonces = random_blocks(len(new_entries), NONCE_BYTES)
    rows: list[tuple[Any, ...]] = []
    queued: list[tuple[int, bytes, int]] = []
    identities: list[tuple[int, str, str]] = []
    appended: list[AppendedEntry] = []
    outbox = outbox_of(session)
    notices: list[tuple[int, int]] = []
    for entry_id, new, nonce in zip(ids, new_entries, nonces, strict=True):
        seq, prev = heads.get(new.customer_id, (-1, GENESIS_HASH))
        seq += 1
        canonical = canonical_bytes(chained(new, seq, prev, recorded_at, nonce))
        digest = entry_hash(canonical)
        heads[new.customer_id] = (seq, digest)
        rows.append((
            entry_id, new.customer_id, seq, new.kind, digest, NOT_STORED, recorded_at_us, canonical,
            ",".join(new.flags), new.recorded_by, *new.column_values,
        ))
        queued.append((entry_id, leaf_hash(canonical), recorded_at_us))
        if new.identity:
            employee_id, salt = new.identity
            identities.append((entry_id, employee_id, salt))
        appended.append(AppendedEntry(new.customer_id, seq, digest, recorded_at, canonical))
        if outbox:
            notices += notices_of(outbox, entry_id, new.kind, new.body, new.flags)

    await bulk.insert_rows(session, tables.entries, ENTRY_COLUMNS, rows)
    await bulk.insert_rows(session, tables.queue, QUEUE_COLUMNS, queued)
    await bulk.insert_rows(session, tables.identities, IDENTITY_COLUMNS, identities)
    await _write_heads(session, heads, touched={e.customer_id for e in new_entries})
    if notices:
        await session.execute(notice_tables.notice_batches.insert(), [{
            "first_entry_id": notices[0][0], "created_at_us": recorded_at_us, "notices": len(notices),
            "packed": pack(notices)}])
        mark_written(session)
    _count_after_commit(session, Counter(new.kind for new in new_entries))
    return appended


def _count_after_commit(session: AsyncSession, kinds: Counter[str]) -> None:
    """Entries count once their transaction commits: never for one rolled back, never twice for
    a retried one."""

    def count(_: Session) -> None:
        for kind, recorded in kinds.items():
            ENTRIES_RECORDED.labels(kind=kind).inc(recorded)

    event.listen(session.sync_session, "after_commit", count, once=True)


def chained(new: NewEntry, seq: int, prev: str, recorded_at: str, nonce: bytes) -> dict[str, Any]:
    """The entry as hashed and stored: the domain's body, its place in the chain, and a nonce."""
    return {
        **new.body,
        "kind": new.kind,
        "customer_id": new.customer_id,
        "customer_seq": seq,
        "prev_hash": prev,
        "recorded_at": recorded_at,
        "recorded_by": new.recorded_by,
        "nonce": base64.b64encode(nonce).decode(),
        "flags": new.flags,
    }


NONCE_BYTES = 16
# The prev_hash column of entries recorded since migration 0016: the canonical bytes carry it, and
# a copy took 65 bytes an entry.
NOT_STORED = ""
FILTER_COLUMN_SET = frozenset(FILTER_COLUMNS)
ENTRY_COLUMNS = ("id", "customer_id", "customer_seq", "kind", "entry_hash", "prev_hash",
                 "recorded_at_us", "canonical", "flags", "recorded_by", *FILTER_COLUMNS)
QUEUE_COLUMNS = ("entry_id", "leaf_hash", "recorded_at_us")
IDENTITY_COLUMNS = ("entry_id", "employee_id", "id_salt")
HEAD_COLUMNS = ("customer_id", "last_seq", "head_hash")

# The sequence PostgreSQL made for the BIGSERIAL id (migration 0001), as a literal resolved once per
# statement: pg_get_serial_sequence() here runs once per id, 3.4 ms instead of 0.5 ms per 1,000
# ids (python -m bench.ingest_probe --statements). The filter gives the transaction its id before
# the first nextval(), which the integrator's queue floor relies on (queue_floor.py).
_PG_NEXT_IDS = (
    "SELECT array_agg(nextval('ledger_entries_id_seq')) FROM generate_series(1, $1)"
    " WHERE pg_current_xact_id() IS NOT NULL"
)



async def _next_ids(session: AsyncSession, count: int) -> list[int]:
    """Ids for the new entries, ascending, so the queue rows can be written with them in one go."""
    if not count:
        return []
    if bulk.is_postgresql(session):
        driver = await bulk.asyncpg_connection(session)
        # The transaction id must be the entries' own (queue_floor.py), never that of a statement
        # run on its own: SQLAlchemy begins the transaction with its first statement, not this one.
        if not driver.is_in_transaction():
            raise RuntimeError("entry ids are taken inside the transaction that writes the entries")
        return sorted(await driver.fetchval(_PG_NEXT_IDS, count))
    # SQLite has one writer (BEGIN IMMEDIATE, one process): the next rowids are simply the next ones.
    last: int = await session.scalar(select(func.coalesce(func.max(tables.entries.c.id), 0))) or 0
    return list(range(last + 1, last + 1 + count))


@per_dialect
def _heads_query(dialect: str) -> Select[Any]:
    heads = tables.heads
    return select(heads.c.customer_id, heads.c.last_seq, heads.c.head_hash).where(
        one_of(dialect, heads.c.customer_id, "customers")
    )


async def _read_heads(session: AsyncSession, customer_ids: set[str]) -> dict[str, tuple[int, str]]:
    result = await session.execute(_heads_query(session), {"customers": sorted(customer_ids)})
    return {customer_id: (last_seq, head_hash) for customer_id, last_seq, head_hash in result}


async def _write_heads(
    session: AsyncSession, heads: dict[str, tuple[int, str]], touched: set[str]
) -> None:
    await bulk.upsert_rows(session, tables.heads, HEAD_COLUMNS,
                           [(customer, *heads[customer]) for customer in sorted(touched)])
