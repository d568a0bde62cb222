"""Queries behind customers' histories, summaries and chains: keyset-paged, filtered in SQL."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, null, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.errors import NotFound
from service.history.views import chain_item, entry_view
from service.ledger.tables import ActorIdentity, LedgerEntry, LogLeaf
from service.paging import Page, decode_seq_cursor, encode_cursor
from service.tlog import service as tlog
from service.types import to_micros

entries = LedgerEntry.__table__
identities = ActorIdentity.__table__
leaves = LogLeaf.__table__


@dataclass(frozen=True)
class AccessFilters:
    clip_id: str | None = None
    actor_type: str | None = None
    purpose: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        wanted: list[ColumnElement[bool]] = []
        for column, value in (
            (entries.c.clip_id, self.clip_id), (entries.c.actor_type, self.actor_type),
            (entries.c.purpose, self.purpose), (entries.c.action, self.action),
        ):
            if value is not None:
                wanted.append(column == value)
        if self.since is not None:
            wanted.append(entries.c.occurred_at_us >= to_micros(self.since))
        if self.until is not None:
            wanted.append(entries.c.occurred_at_us < to_micros(self.until))
        return wanted


def _entry_rows(regulator: bool, *where: ColumnElement[bool]) -> Select[Any]:
    """Entries with their log index and, for regulators, the identities kept apart."""
    query = (
        select(entries.c.canonical, entries.c.entry_hash, entries.c.customer_seq, leaves.c.log_index)
        .outerjoin(leaves, leaves.c.entry_id == entries.c.id)
        .where(*where)
    )
    return _with_identities(query, regulator)


def _with_identities(query: Select[Any], regulator: bool) -> Select[Any]:
    if not regulator:
        return query.add_columns(null().label("employee_id"), null().label("id_salt"))
    return query.add_columns(identities.c.employee_id, identities.c.id_salt).outerjoin(
        identities, identities.c.entry_hash == entries.c.entry_hash
    )


def _identity(row: Any) -> tuple[str, str] | None:
    return (row.employee_id, row.id_salt) if row.employee_id is not None else None


async def list_accesses(
    session: AsyncSession, customer_id: str, filters: AccessFilters, *, limit: int,
    cursor: str | None, regulator: bool,
) -> Page:
    """Newest first by customer_seq: new entries land above the first page, so paging is exact."""
    query = _entry_rows(
        regulator, entries.c.customer_id == customer_id, entries.c.kind == "access", *filters.conditions()
    )
    after = decode_seq_cursor(cursor)
    if after is not None:
        query = query.where(entries.c.customer_seq < after)
    rows = (await session.execute(query.order_by(entries.c.customer_seq.desc()).limit(limit + 1))).all()
    return _page(rows, limit, lambda r: entry_view(
        r.canonical, r.entry_hash, r.log_index, _identity(r), with_identity=regulator))


async def list_entries(
    session: AsyncSession, customer_id: str, *, limit: int, cursor: str | None, regulator: bool
) -> Page:
    """The whole chain, every kind, oldest first."""
    query = _entry_rows(regulator, entries.c.customer_id == customer_id)
    after = decode_seq_cursor(cursor)
    if after is not None:
        query = query.where(entries.c.customer_seq > after)
    rows = (await session.execute(query.order_by(entries.c.customer_seq).limit(limit + 1))).all()
    return _page(rows, limit, lambda r: chain_item(
        r.canonical, r.entry_hash, r.log_index, _identity(r), with_identity=regulator))


def _page(rows: Sequence[Any], limit: int, item: Callable[[Any], dict[str, Any]]) -> Page:
    """One more row than the page was fetched: its presence is what says there is a next page."""
    next_cursor = encode_cursor(rows[limit - 1].customer_seq) if len(rows) > limit else None
    return Page(items=[item(r) for r in rows[:limit]], next_cursor=next_cursor)


async def get_entry(
    session: AsyncSession, customer_id: str, entry_hash: str, *, regulator: bool
) -> dict[str, Any]:
    query = _entry_rows(
        regulator, entries.c.customer_id == customer_id, entries.c.entry_hash == entry_hash
    )
    row = (await session.execute(query)).first()
    if row is None:
        raise NotFound(f"no entry {entry_hash} for customer {customer_id}")
    item = chain_item(row.canonical, row.entry_hash, row.log_index, _identity(row),
                      with_identity=regulator)
    item["proof"] = await tlog.entry_proof(session, row.log_index)
    return item


_SUMMARY_DIMENSIONS = {
    "by_actor_type": entries.c.actor_type,
    "by_purpose": entries.c.purpose,
    "by_action": entries.c.action,
    "by_actor_country": entries.c.actor_country,
    "by_clip": entries.c.clip_id,
}


async def summarize(session: AsyncSession, customer_id: str, filters: AccessFilters) -> dict[str, Any]:
    """Counts per dimension, each one GROUP BY in the database; actors without a country are left out
    of by_actor_country."""
    scope = (entries.c.customer_id == customer_id, entries.c.kind == "access", *filters.conditions())
    summary: dict[str, Any] = {
        "total": await session.scalar(select(func.count()).select_from(entries).where(*scope)) or 0
    }
    for name, column in _SUMMARY_DIMENSIONS.items():
        rows = await session.execute(
            select(column, func.count()).where(*scope, column.is_not(None)).group_by(column)
        )
        summary[name] = {value: count for value, count in rows.all()}
    return summary
