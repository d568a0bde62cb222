"""Writing notices with their entries: the transactional outbox.

The ledger's store calls `notice_rows` for the entries it appends, in their transaction, so a notice
exists exactly when its entry committed. Which types are written, and for how long they are retried,
comes with the session (`Database` puts an `Outbox` in every session's `info` when webhooks are on).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from service.notices.types import NOTICE_TYPES, PENDING, for_entry

OUTBOX_KEY = "seenby.outbox"
WROTE_NOTICES_KEY = "seenby.wrote_notices"


@dataclass(frozen=True)
class Outbox:
    types: frozenset[str]
    retry_seconds: int


def outbox_of(session: AsyncSession) -> Outbox | None:
    outbox: Outbox | None = session.info.get(OUTBOX_KEY)
    return outbox


def notice_rows(outbox: Outbox, entry_id: int, kind: str, body: dict[str, Any], flags: list[str],
                now_us: int) -> list[tuple[int, ...]]:
    """The outbox rows (tables.NOTICE_COLUMNS) of one new entry."""
    retry_until = now_us + outbox.retry_seconds * 1_000_000
    return [(entry_id, NOTICE_TYPES[name], now_us, PENDING, 0, 0, retry_until)
            for name in for_entry(kind, body, flags) if name in outbox.types]


def mark_written(session: AsyncSession) -> None:
    session.info[WROTE_NOTICES_KEY] = True


def wrote_notices(session: AsyncSession) -> bool:
    return bool(session.info.get(WROTE_NOTICES_KEY))
