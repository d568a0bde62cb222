"""Customers' histories and chains: keyset pages of the ledger's rows, shaped for the reader."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from service.errors import NotFound
from service.history.views import chain_item, entry_view
from service.ledger import reads
from service.paging import Page, decode_seq_cursor, encode_cursor
from service.tlog import service as tlog


def _view(row: Any, regulator: bool) -> dict[str, Any]:
    identity = (row.employee_id, row.id_salt) if row.employee_id is not None else None
    return entry_view(row.canonical, row.entry_hash, row.log_index, identity, with_identity=regulator)


async def list_accesses(
    session: AsyncSession, customer_id: str, filters: reads.AccessFilters, *, limit: int,
    cursor: str | None, regulator: bool,
) -> Page[dict[str, Any]]:
    """Newest first by customer_seq: new entries land above the first page, so paging is exact."""
    rows = await reads.customer_accesses(session, customer_id, filters, before_seq=decode_seq_cursor(cursor),
                                         limit=limit + 1, regulator=regulator)
    return _page(rows, limit, lambda r: _view(r, regulator))


async def list_entries(
    session: AsyncSession, customer_id: str, *, limit: int, cursor: str | None, regulator: bool,
    tree_size: int | None = None,
) -> Page[dict[str, Any]]:
    """The whole chain, every kind, oldest first; with a signed `tree_size`, each entry's inclusion
    proof in that tree (null for entries not in it yet), so a reader checks a page from one answer."""
    rows = await reads.customer_chain(session, customer_id, after_seq=decode_seq_cursor(cursor),
                                      limit=limit + 1, regulator=regulator)
    page = _page(rows, limit, lambda r: chain_item(_view(r, regulator), r.canonical))
    if tree_size is not None:
        included = [item for item in page.items
                    if item["log_index"] is not None and item["log_index"] < tree_size]
        proofs = await tlog.signed_inclusion_hashes(
            session, [item["log_index"] for item in included], tree_size)
        for item in page.items:
            item["inclusion"] = None
        for item, hashes in zip(included, proofs, strict=True):
            item["inclusion"] = hashes
    return page


def _page(rows: Sequence[Any], limit: int, item: Callable[[Any], dict[str, Any]]) -> Page[dict[str, Any]]:
    """One more row than the page was fetched: its presence is what says there is a next page."""
    next_cursor = encode_cursor(rows[limit - 1].customer_seq) if len(rows) > limit else None
    return Page(items=[item(r) for r in rows[:limit]], next_cursor=next_cursor)


async def get_entry(
    session: AsyncSession, customer_id: str, entry_hash: str, *, regulator: bool, witnessing: tlog.Witnessing
) -> dict[str, Any]:
    row = await reads.customer_entry(session, customer_id, entry_hash, regulator=regulator)
    if row is None:
        raise NotFound(f"no entry {entry_hash} for customer {customer_id}")
    item = chain_item(_view(row, regulator), row.canonical)
    item["proof"] = await tlog.entry_proof(session, row.log_index, witnessing)
    return item


async def summarize(session: AsyncSession, customer_id: str, filters: reads.AccessFilters) -> dict[str, Any]:
    return await reads.access_summary(session, customer_id, filters)
