"""Which clips a live (not rejected) deletion request covers: read by the consent rules."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import CompoundSelect, null, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import one_of, per_dialect
from service.deletions.tables import request_clips, requests
from service.vocabulary import DeletionStatus


@per_dialect
def _covering_query(dialect: str) -> CompoundSelect[str, str | None]:
    """Customers with a live request for all their clips (clip_id null), and live requests' clips."""
    everything = select(requests.c.customer_id, null().label("clip_id")).where(
        one_of(dialect, requests.c.customer_id, "customers"), requests.c.scope == "all",
        requests.c.status != DeletionStatus.REJECTED,
    )
    listed = (
        select(request_clips.c.customer_id, request_clips.c.clip_id)
        .join(requests, requests.c.id == request_clips.c.request_id)
        .where(
            one_of(dialect, request_clips.c.customer_id, "customers"),
            one_of(dialect, request_clips.c.clip_id, "clips"),
            requests.c.status != DeletionStatus.REJECTED,
        )
    )
    return union_all(everything, listed)


async def clips_under_deletion(
    session: AsyncSession, pairs: Collection[tuple[str, str]]
) -> set[tuple[str, str]]:
    """The (customer, clip) pairs among `pairs` that a filed, not rejected, request covers."""
    if not pairs:
        return set()
    rows = (await session.execute(_covering_query(session), {
        "customers": sorted({customer for customer, _ in pairs}),
        "clips": sorted({clip for _, clip in pairs}),
    })).all()
    all_of = {customer for customer, clip in rows if clip is None}
    covered = {(customer, clip) for customer, clip in rows}
    return {(c, clip) for c, clip in pairs if c in all_of or (c, clip) in covered}
