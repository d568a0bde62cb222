"""Which clips a live (not rejected) deletion request covers: read by the consent rules."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import one_of
from service.deletions.tables import DeletionRequest, DeletionRequestClip

requests = DeletionRequest.__table__
request_clips = DeletionRequestClip.__table__


async def clips_under_deletion(
    session: AsyncSession, pairs: Collection[tuple[str, str]]
) -> set[tuple[str, str]]:
    """The (customer, clip) pairs among `pairs` that a filed, not rejected, request covers."""
    if not pairs:
        return set()
    customers = sorted({customer for customer, _ in pairs})
    clips = sorted({clip for _, clip in pairs})
    everything = await session.execute(
        select(requests.c.customer_id).where(
            one_of(session, requests.c.customer_id, customers), requests.c.scope == "all",
            requests.c.status != "rejected",
        )
    )
    all_of = set(everything.scalars())
    listed = await session.execute(
        select(request_clips.c.customer_id, request_clips.c.clip_id)
        .join(requests, requests.c.id == request_clips.c.request_id)
        .where(
            one_of(session, request_clips.c.customer_id, customers),
            one_of(session, request_clips.c.clip_id, clips),
            requests.c.status != "rejected",
        )
    )
    covered = {(row.customer_id, row.clip_id) for row in listed}
    return {(c, clip) for c, clip in pairs if c in all_of or (c, clip) in covered}
