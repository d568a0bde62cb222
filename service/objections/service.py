"""Filing objections (an `objection` entry in the customer's chain) and listing them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service import clock
from service.clock import format_micros
from service.db import Database
from service.errors import Conflict, NotFound
from service.ledger import store
from service.ledger.kinds import EntryKind
from service.ledger.tables import entries
from service.objections.tables import objections
from service.paging import Page, decode_seq_cursor, encode_cursor

# What a customer may object to: an access, or an attempt that was refused.
OBJECTABLE_KINDS = (EntryKind.ACCESS, EntryKind.ACCESS_REFUSED)


def objection_view(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "customer_id": row["customer_id"], "entry_hash": row["entry_hash"],
        "objected_entry_hash": row["objected_entry_hash"], "filed_at": format_micros(row["filed_at_us"]),
        "reason": row["reason"], "purpose": row["purpose"], "organization": row["organization"],
    }


async def file_objection(database: Database, customer_id: str, entry_hash: str,
                         reason: str | None) -> dict[str, Any]:
    """404 for an entry that is not this customer's, 409 for one it has objected to already."""
    async with database.write([customer_id]) as session:
        objected = (await session.execute(
            select(entries.c.kind, entries.c.purpose, entries.c.actor_organization)
            .where(entries.c.customer_id == customer_id, entries.c.entry_hash == entry_hash))).first()
        if objected is None:
            raise NotFound(f"customer {customer_id} has no entry {entry_hash}")
        if objected.kind not in OBJECTABLE_KINDS:
            raise Conflict(f"a {objected.kind} entry cannot be objected to; only "
                           f"{' and '.join(OBJECTABLE_KINDS)} entries can")
        already = await session.scalar(select(objections.c.entry_hash).where(
            objections.c.customer_id == customer_id, objections.c.objected_entry_hash == entry_hash))
        if already is not None:
            raise Conflict(f"customer {customer_id} objected to {entry_hash} already (objection {already})")
        now = clock.now_us()
        body: dict[str, Any] = {"objected_entry_hash": entry_hash}
        if reason is not None:
            body["reason"] = reason
        [appended] = await store.append(session, [store.NewEntry(
            customer_id=customer_id, kind=EntryKind.OBJECTION, recorded_by=customer_id, body=body,
            columns={"purpose": objected.purpose, "actor_organization": objected.actor_organization},
        )], now)
        row = {"customer_id": customer_id, "objected_entry_hash": entry_hash,
               "entry_hash": appended.entry_hash, "filed_at_us": now, "reason": reason,
               "purpose": objected.purpose, "organization": objected.actor_organization}
        await session.execute(objections.insert(), [row])
    return {**objection_view(row), "customer_seq": appended.customer_seq}


async def list_objections(session: AsyncSession, *, customer_id: str | None, customers: Any, limit: int,
                          cursor: str | None) -> Page[dict[str, Any]]:
    """Newest first: one customer's, or every customer's (`customers`: a subquery of the ids a
    regulator may read, or None for all)."""
    query = select(objections)
    if customer_id is not None:
        query = query.where(objections.c.customer_id == customer_id)
    if customers is not None:
        query = query.where(objections.c.customer_id.in_(customers))
    after = decode_seq_cursor(cursor)
    if after is not None:
        query = query.where(objections.c.id < after)
    rows = list(await session.execute(query.order_by(objections.c.id.desc()).limit(limit + 1)))
    items = [objection_view(row._mapping) for row in rows[:limit]]
    return Page(items=items, next_cursor=encode_cursor(rows[limit - 1].id) if len(rows) > limit else None)
