"""Every read of the ledger's entry tables: the one module that knows how entries, their log
leaves and the identities kept apart are queried. Domains ask for rows here and shape them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, String, cast, func, literal, null, select, true
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from service.db import dialect_of, one_of, per_dialect
from service.ledger.kinds import EntryKind
from service.ledger.tables import entries, identities, leaves
from service.types import Period

# What a customer's history lists: accesses, and attempts refused a ticket (CONTRACT.md, "Refusal").
HISTORY_KINDS = (EntryKind.ACCESS, EntryKind.ACCESS_REFUSED)
# A subquery of customer ids a reader is limited to (a regulator's jurisdiction), or None.
CustomerScope = Select[Any] | None


@dataclass(frozen=True)
class AccessFilters:
    """What a customer's history may be filtered by; the period is on `occurred_at`."""

    clip_id: str | None = None
    actor_type: str | None = None
    purpose: str | None = None
    action: str | None = None
    occurred: Period = field(default_factory=Period)

    def conditions(self, kinds: Sequence[str] = (EntryKind.ACCESS,)) -> list[ColumnElement[bool]]:
        wanted: list[ColumnElement[bool]] = [entries.c.kind.in_(kinds)]
        for column, value in (
            (entries.c.clip_id, self.clip_id), (entries.c.actor_type, self.actor_type),
            (entries.c.purpose, self.purpose), (entries.c.action, self.action),
        ):
            if value is not None:
                wanted.append(column == value)
        return wanted + self.occurred.conditions(entries.c.occurred_at_us)


def _scoped(conditions: list[ColumnElement[bool]], scope: CustomerScope) -> list[ColumnElement[bool]]:
    return conditions if scope is None else [*conditions, entries.c.customer_id.in_(scope)]


# --- Recording: the replay check -------------------------------------------------------------


@dataclass(frozen=True)
class RecordedEvent:
    request_digest: str
    entry_hash: str
    customer_seq: int
    recorded_at_us: int
    log_index: int | None
    kind: str
    flags: list[str]


@per_dialect
def _events_query(dialect: str) -> Select[Any]:
    return (
        select(entries.c.event_id, entries.c.request_digest, entries.c.entry_hash,
               entries.c.customer_seq, entries.c.recorded_at_us, leaves.c.log_index, entries.c.kind,
               entries.c.flags)
        .outerjoin(leaves, leaves.c.entry_id == entries.c.id)
        .where(one_of(dialect, entries.c.event_id, "keys"))
    )


async def recorded_events(session: AsyncSession, keys: set[str]) -> dict[str, RecordedEvent]:
    """The access events among `keys` (lower-cased event ids) that are recorded already."""
    rows = await session.execute(_events_query(session), {"keys": sorted(keys)})
    return {
        row.event_id: RecordedEvent(row.request_digest, row.entry_hash, row.customer_seq,
                                    row.recorded_at_us, row.log_index, row.kind,
                                    row.flags.split(",") if row.flags else [])
        for row in rows
    }


# --- A customer's chain and history -----------------------------------------------------------


def _entry_rows(regulator: bool, *where: ColumnElement[bool]) -> Select[Any]:
    """Entries with their log index and, for regulators, the identities kept apart (else nulls)."""
    query = (
        select(entries.c.canonical, entries.c.entry_hash, entries.c.customer_seq, leaves.c.log_index)
        .outerjoin(leaves, leaves.c.entry_id == entries.c.id)
        .where(*where)
    )
    if not regulator:
        return query.add_columns(null().label("employee_id"), null().label("id_salt"))
    return query.add_columns(identities.c.employee_id, identities.c.id_salt).outerjoin(
        identities, identities.c.entry_id == entries.c.id
    )


async def customer_accesses(
    session: AsyncSession, customer_id: str, filters: AccessFilters, *, before_seq: int | None,
    limit: int, regulator: bool,
) -> Sequence[Row[Any]]:
    """Accesses and refused attempts, newest first by customer_seq, below `before_seq`."""
    query = _entry_rows(regulator, entries.c.customer_id == customer_id, *filters.conditions(HISTORY_KINDS))
    if before_seq is not None:
        query = query.where(entries.c.customer_seq < before_seq)
    rows: Sequence[Row[Any]] = (
        await session.execute(query.order_by(entries.c.customer_seq.desc()).limit(limit))).all()
    return rows


async def customer_chain(
    session: AsyncSession, customer_id: str, *, after_seq: int | None, limit: int, regulator: bool
) -> Sequence[Row[Any]]:
    """Entries of every kind, oldest first, above `after_seq`."""
    query = _entry_rows(regulator, entries.c.customer_id == customer_id)
    if after_seq is not None:
        query = query.where(entries.c.customer_seq > after_seq)
    rows: Sequence[Row[Any]] = (
        await session.execute(query.order_by(entries.c.customer_seq).limit(limit))).all()
    return rows


async def customer_entry(
    session: AsyncSession, customer_id: str, entry_hash: str, *, regulator: bool
) -> Row[Any] | None:
    query = _entry_rows(regulator, entries.c.customer_id == customer_id, entries.c.entry_hash == entry_hash)
    row: Row[Any] | None = (await session.execute(query)).first()
    return row


_SUMMARY_DIMENSIONS = {
    "by_actor_type": entries.c.actor_type,
    "by_purpose": entries.c.purpose,
    "by_action": entries.c.action,
    "by_actor_country": entries.c.actor_country,
    "by_clip": entries.c.clip_id,
}


async def access_summary(session: AsyncSession, customer_id: str, filters: AccessFilters) -> dict[str, Any]:
    """Counts of accesses per dimension, each one GROUP BY in the database (actors without a country
    are left out of by_actor_country), and of the attempts refused a ticket."""
    customer = entries.c.customer_id == customer_id
    scope = (customer, *filters.conditions())
    count = select(func.count()).select_from(entries)
    summary: dict[str, Any] = {
        "total": await session.scalar(count.where(*scope)) or 0,
        "refused": await session.scalar(
            count.where(customer, *filters.conditions((EntryKind.ACCESS_REFUSED,)))) or 0,
    }
    for name, column in _SUMMARY_DIMENSIONS.items():
        rows = await session.execute(
            select(column, func.count()).where(*scope, column.is_not(None)).group_by(column)
        )
        summary[name] = {value: count for value, count in rows.all()}
    return summary


# --- Exports: entries in log order ------------------------------------------------------------


LeafRange = tuple[int, int]  # the first and last log_index of a range of the log


async def span_of_period(connection: AsyncConnection, recorded: Period) -> LeafRange:
    """A range of the log that holds every entry recorded in the period (and maybe a few others):
    its entries are a range of ids, found through PostgreSQL's BRIN index on recorded_at_us, and
    their leaves a range of log indexes. (1, 0), holding nothing, when the period holds no entry in
    the log. An export of a period bounded by it reads the leaves of that range, not the whole log."""
    # OFFSET 0 keeps the planner from turning min(id) and max(id) into walks of the primary key
    # from either end, filtering every row on the way: through the BRIN index, it reads the period.
    in_period = (select(entries.c.id).where(*recorded.conditions(entries.c.recorded_at_us))
                 .offset(0).subquery())
    ids = select(func.min(in_period.c.id).label("low"), func.max(in_period.c.id).label("high")).subquery()
    first, last = (await connection.execute(
        select(func.min(leaves.c.log_index), func.max(leaves.c.log_index))
        .select_from(leaves.join(ids, leaves.c.entry_id.between(ids.c.low, ids.c.high)))
    )).one()
    return (1, 0) if first is None else (first, last)


def in_log_order(
    *, tree_size: int, customer_id: str | None, kind: str, recorded: Period, scope: CustomerScope,
    span: LeafRange | None = None,
) -> Select[Any]:
    """Entries below `tree_size` in log order, with the identities kept apart (regulators only
    export); `kind` "all" takes every kind; `span` (span_of_period), when the caller has it, bounds
    the leaves read. Page it with `after`."""
    conditions = [leaves.c.log_index < tree_size, *recorded.conditions(entries.c.recorded_at_us)]
    if span is not None:
        conditions.append(leaves.c.log_index.between(*span))
    if customer_id is not None:
        conditions.append(entries.c.customer_id == customer_id)
    if kind != "all":
        conditions.append(entries.c.kind == kind)
    return (
        select(leaves.c.log_index, entries.c.canonical, entries.c.entry_hash,
               identities.c.employee_id, identities.c.id_salt)
        .select_from(
            leaves.join(entries, entries.c.id == leaves.c.entry_id)
            .outerjoin(identities, identities.c.entry_id == entries.c.id)
        )
        .where(*_scoped(conditions, scope))
        .order_by(leaves.c.log_index)
    )


def after(statement: Select[Any], log_index: int) -> Select[Any]:
    """The same rows as `statement` (from in_log_order) past `log_index`."""
    return statement.where(leaves.c.log_index > log_index)


# --- Reports: accesses in aggregate ------------------------------------------------------------

_REPORT_DIMENSIONS = {
    "by_purpose": entries.c.purpose,
    "by_action": entries.c.action,
    "by_actor_type": entries.c.actor_type,
    "by_organization": entries.c.actor_organization,
    "by_actor_country": entries.c.actor_country,
}


async def access_report(
    session: AsyncSession, recorded: Period, scope: CustomerScope, reported_flags: Sequence[str]
) -> dict[str, Any]:
    """The transparency report's access section, every number an aggregate query."""
    in_period = recorded.conditions(entries.c.recorded_at_us)
    wanted = _scoped([entries.c.kind == EntryKind.ACCESS, *in_period], scope)
    totals = (await session.execute(
        select(func.count(), func.count(func.distinct(entries.c.customer_id))).where(*wanted)
    )).one()
    report: dict[str, Any] = {"total": totals[0]}
    for name, column in _REPORT_DIMENSIONS.items():
        rows = await session.execute(
            select(column, func.count()).where(*wanted, column.is_not(None)).group_by(column)
            .order_by(column)
        )
        report[name] = {value: count for value, count in rows.all()}
    report["flagged"] = await _flag_counts(session, wanted, reported_flags)
    report["refused"] = await session.scalar(select(func.count()).select_from(entries).where(*_scoped(
        [entries.c.kind == EntryKind.ACCESS_REFUSED, *in_period], scope))) or 0
    report["distinct_customers"] = totals[1]
    clips = (
        select(entries.c.customer_id, entries.c.clip_id)
        .where(*wanted, entries.c.actor_type == "human").distinct().subquery()
    )
    report["distinct_clips_seen_by_humans"] = await session.scalar(
        select(func.count()).select_from(clips)
    ) or 0
    return report


async def _flag_counts(
    session: AsyncSession, wanted: list[ColumnElement[bool]], reported: Sequence[str]
) -> dict[str, int]:
    """Entries per flag, `reported` ones even at zero; `flags` holds them comma-joined, split here
    by the database itself."""
    flagged = [*wanted, entries.c.flags != ""]
    if dialect_of(session) == "postgresql":
        split = (
            select(func.unnest(func.string_to_array(entries.c.flags, ",")).label("flag"))
            .where(*flagged).subquery()
        )
        query = select(split.c.flag, func.count()).group_by(split.c.flag)
    else:
        as_json = literal('["') + func.replace(entries.c.flags, ",", '","') + literal('"]')
        each = func.json_each(cast(as_json, String)).table_valued("value")
        query = (
            select(each.c.value, func.count()).select_from(entries).join(each, true())
            .where(*flagged).group_by(each.c.value)
        )
    counts = dict.fromkeys(reported, 0)
    counts.update({flag: count for flag, count in (await session.execute(query)).all()})
    return dict(sorted(counts.items()))
