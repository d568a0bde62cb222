"""The reference points, in the same PostgreSQL: raw COPY into a bare table (the limit) and into a
table with the entry table's indexes, and naive ORM inserts."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from typing import Any, NamedTuple

import asyncpg
import orjson
from sqlalchemy import Column, Table
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlmodel.ext.asyncio.session import AsyncSession

from bench.loadgen import event
from service.ledger.compact_columns import HexBytes, as_bytes
from service.ledger.packing import pack
from service.ledger.tables import entries

COLUMNS = ("customer_id", "customer_seq", "kind", "entry_hash", "prev_hash", "recorded_at_us", "canonical",
           "flags", "recorded_by", "event_id", "request_digest", "clip_id", "occurred_at_us", "actor_type",
           "actor_country", "actor_organization", "purpose", "action")


def ledger_like_rows(count: int) -> list[tuple[Any, ...]]:
    """Rows shaped like seenby's, with real canonical bytes and hashes."""
    rows = []
    prev = "0" * 64
    for n in range(count):
        body = event(f"cust-{n % 2000}", n)
        body.update({"customer_seq": n, "prev_hash": prev, "nonce": base64.b64encode(os.urandom(16)).decode(),
                     "flags": [], "kind": "access", "recorded_at": "2026-11-25T10:00:00.000000Z"})
        canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        digest = hashlib.sha256(canonical).hexdigest()
        rows.append((body["customer_id"], n, "access", digest, prev, 0, canonical, "", "bench",
                     body["event_id"], digest, body["clip_id"], 0, body["actor"]["type"],
                     body["actor"].get("country"), body["actor"].get("organization"), body["purpose"],
                     body["action"]))
        prev = digest
    return rows


def _as_stored(rows: list[tuple[Any, ...]], *, packed: bool) -> list[tuple[Any, ...]]:
    """The hash columns as PostgreSQL stores them (bytea); the canonical bytes packed as seenby
    stores them, or plain, as the bare-table anchor has always copied them."""
    hashes = {i for i, name in enumerate(COLUMNS) if isinstance(entries.c[name].type, HexBytes)}
    canonical = COLUMNS.index("canonical")
    return [tuple(as_bytes(value) if i in hashes else pack(value) if packed and i == canonical else value
                  for i, value in enumerate(row)) for row in rows]


class CopyAnchor(NamedTuple):
    like: str  # what the COPY's table takes from ledger_entries
    packed: bool  # whether the canonical bytes are copied packed, as seenby stores them


COPY_ANCHORS = {
    # Columns and defaults only, the canonical bytes plain: the physical limit, as it always was.
    "copy": CopyAnchor("INCLUDING DEFAULTS", packed=False),
    # Every index of the entry table (its primary key, the unique chains and event ids, the
    # customer-clip B-tree, the hash index on entry_hash, the period indexes) and the rows as seenby
    # stores them: what the same rows cost PostgreSQL with what seenby keeps on them. Issue 20's
    # "0.3 x raw COPY" is against this one.
    "copy_indexed": CopyAnchor("INCLUDING DEFAULTS INCLUDING INDEXES", packed=True),
}


async def copy_rate(owner_dsn: str, rows: list[tuple[Any, ...]], anchor: CopyAnchor, runs: int = 3
                    ) -> dict[str, Any]:
    """The best of `runs` COPYs of `rows` into a new table LIKE ledger_entries: one run on this
    machine's disk varies by up to 2x (89k-225k rows/s into the bare table on 2026-11-25)."""
    count, stored = len(rows), _as_stored(rows, packed=anchor.packed)
    connection = await asyncpg.connect(owner_dsn)
    timings = []
    try:
        for _ in range(runs):
            await connection.execute("DROP TABLE IF EXISTS bench_copy; "
                                     f"CREATE TABLE bench_copy (LIKE ledger_entries {anchor.like})")
            started = time.perf_counter()
            for i in range(0, count, 10_000):
                await connection.copy_records_to_table("bench_copy", records=stored[i:i + 10_000],
                                                       columns=list(COLUMNS))
            timings.append(time.perf_counter() - started)
            await connection.execute("DROP TABLE bench_copy")
    finally:
        await connection.close()
    seconds = min(timings)
    return {"rows": count, "seconds": round(seconds, 3), "events_per_second": round(count / seconds, 1),
            "runs_per_second": [round(count / t, 1) for t in timings]}


class _Naive(DeclarativeBase):
    pass


class NaiveEntry(_Naive):
    """The entry table's columns, types only: no constraint and no index but the primary key."""

    __table__ = Table("bench_naive", _Naive.metadata, *(
        Column(column.name, column.type, primary_key=column.primary_key)
        for column in entries.columns))


async def naive_rate(owner_url: str, count: int) -> dict[str, float]:
    """One ORM INSERT and one COMMIT per event: what a first draft would do."""
    rows = ledger_like_rows(count)
    engine = create_async_engine(owner_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(NaiveEntry.__table__.create)
        started = time.perf_counter()
        async with AsyncSession(engine) as session:
            for row in rows:
                session.add(NaiveEntry(**dict(zip(COLUMNS, row, strict=True))))
                await session.commit()
        seconds = time.perf_counter() - started
        async with engine.begin() as connection:
            await connection.run_sync(NaiveEntry.__table__.drop)
    finally:
        await engine.dispose()
    return {"rows": count, "seconds": round(seconds, 3), "events_per_second": round(count / seconds, 1)}


def run(owner_dsn: str, copy_rows: int, naive_rows: int) -> dict[str, dict[str, float]]:
    owner_url = owner_dsn.replace("postgresql://", "postgresql+asyncpg://")
    rows = ledger_like_rows(copy_rows)  # the same rows for every anchor
    copies = {name: asyncio.run(copy_rate(owner_dsn, rows, anchor)) for name, anchor in COPY_ANCHORS.items()}
    return {**copies, "naive": asyncio.run(naive_rate(owner_url, naive_rows))}
