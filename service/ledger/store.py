"""Appending entries to customers' chains, and reading them back; the only writer of ledger rows."""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import one_of
from service.ledger import bulk
from service.ledger.canonical import GENESIS_HASH, canonical_bytes, entry_hash
from service.ledger.tables import ActorIdentity, CustomerHead, IntegrationQueue, LedgerEntry
from service.types import format_micros

entries_table = LedgerEntry.__table__
identities_table = ActorIdentity.__table__
heads_table = CustomerHead.__table__
queue_table = IntegrationQueue.__table__


@dataclass
class NewEntry:
    """What a domain asks the ledger to record; the store adds the chain and the nonce."""

    customer_id: str
    kind: str
    body: dict[str, Any]
    recorded_by: str
    flags: list[str] = field(default_factory=list)
    columns: dict[str, Any] = field(default_factory=dict)
    identity: tuple[str, str] | None = None  # (employee id, salt), kept out of the entry


@dataclass(frozen=True)
class AppendedEntry:
    customer_id: str
    customer_seq: int
    entry_hash: str
    recorded_at: str
    canonical: bytes


async def append(
    session: AsyncSession, new_entries: Sequence[NewEntry], recorded_at_us: int
) -> list[AppendedEntry]:
    """Chain and insert entries in one round trip per table; the caller holds the customers' locks."""
    heads = await _read_heads(session, {e.customer_id for e in new_entries})
    recorded_at = format_micros(recorded_at_us)
    rows: list[dict[str, Any]] = []
    identities: list[dict[str, Any]] = []
    appended: list[AppendedEntry] = []
    for new in new_entries:
        seq, prev = heads.get(new.customer_id, (-1, GENESIS_HASH))
        seq += 1
        entry = {
            **new.body,
            "kind": new.kind,
            "customer_id": new.customer_id,
            "customer_seq": seq,
            "prev_hash": prev,
            "recorded_at": recorded_at,
            "recorded_by": new.recorded_by,
            "nonce": base64.b64encode(os.urandom(16)).decode(),
            "flags": new.flags,
        }
        canonical = canonical_bytes(entry)
        digest = entry_hash(canonical)
        heads[new.customer_id] = (seq, digest)
        rows.append({
            **new.columns,
            "customer_id": new.customer_id,
            "customer_seq": seq,
            "kind": new.kind,
            "entry_hash": digest,
            "prev_hash": prev,
            "recorded_at_us": recorded_at_us,
            "canonical": canonical,
            "flags": ",".join(new.flags),
            "recorded_by": new.recorded_by,
        })
        if new.identity:
            employee_id, salt = new.identity
            identities.append({"entry_hash": digest, "employee_id": employee_id, "id_salt": salt})
        appended.append(AppendedEntry(new.customer_id, seq, digest, recorded_at, canonical))

    await bulk.insert_rows(session, entries_table, ENTRY_COLUMNS,
                           [tuple(row.get(c) for c in ENTRY_COLUMNS) for row in rows])
    await _enqueue(session, [row["entry_hash"] for row in rows])
    await bulk.insert_rows(session, identities_table, IDENTITY_COLUMNS,
                           [tuple(i[c] for c in IDENTITY_COLUMNS) for i in identities])
    await _write_heads(session, heads, touched={e.customer_id for e in new_entries})
    return appended


ENTRY_COLUMNS = tuple(c.name for c in entries_table.columns if c.name != "id")
IDENTITY_COLUMNS = ("entry_hash", "employee_id", "id_salt")


_PG_ENQUEUE = (
    "INSERT INTO integration_queue (entry_id) "
    "SELECT id FROM ledger_entries WHERE entry_hash = ANY($1::text[]) ORDER BY id"
)
_PG_WRITE_HEADS = (
    "INSERT INTO customer_heads (customer_id, last_seq, head_hash) "
    "SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[]) "
    "ON CONFLICT (customer_id) DO UPDATE SET last_seq = EXCLUDED.last_seq, head_hash = EXCLUDED.head_hash"
)


async def _enqueue(session: AsyncSession, entry_hashes: list[str]) -> None:
    """Queue the new entries for the integrator, in insertion (id) order."""
    if bulk.is_postgresql(session):
        await (await bulk.asyncpg_connection(session)).execute(_PG_ENQUEUE, entry_hashes)
        return
    ids = (
        select(entries_table.c.id)
        .where(entries_table.c.entry_hash.in_(entry_hashes))
        .order_by(entries_table.c.id)
    )
    await session.execute(queue_table.insert().from_select(["entry_id"], ids))


async def _read_heads(session: AsyncSession, customer_ids: set[str]) -> dict[str, tuple[int, str]]:
    result = await session.execute(
        select(heads_table.c.customer_id, heads_table.c.last_seq, heads_table.c.head_hash).where(
            one_of(session, heads_table.c.customer_id, sorted(customer_ids))
        )
    )
    return {row.customer_id: (row.last_seq, row.head_hash) for row in result}


async def _write_heads(
    session: AsyncSession, heads: dict[str, tuple[int, str]], touched: set[str]
) -> None:
    customers = sorted(touched)
    if bulk.is_postgresql(session):
        await (await bulk.asyncpg_connection(session)).execute(
            _PG_WRITE_HEADS, customers, [heads[c][0] for c in customers], [heads[c][1] for c in customers]
        )
        return
    insert = sqlite.insert(heads_table)
    upsert = insert.on_conflict_do_update(
        index_elements=[heads_table.c.customer_id],
        set_={"last_seq": insert.excluded.last_seq, "head_hash": insert.excluded.head_hash},
    )
    await session.execute(upsert, [
        {"customer_id": c, "last_seq": heads[c][0], "head_hash": heads[c][1]} for c in customers
    ])
