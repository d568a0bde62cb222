"""Writing notices with their entries: the transactional outbox.

The ledger's store calls `notices_of` for each entry it appends and writes what they give as one
`notice_batches` row (`pack`), in their transaction, so a notice exists exactly when its entry
committed. The deliverer unpacks batches (`unpack`) into `notices` rows as it needs them. Which
types are written, and for how long they are retried, comes with the session (`Database` puts an
`Outbox` in every session's `info` when webhooks are on).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
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


_PACKED = struct.Struct(">QB")  # a notice in a batch: entry id, type


def notices_of(outbox: Outbox, entry_id: int, kind: str, body: dict[str, Any],
               flags: list[str]) -> list[tuple[int, int]]:
    """The (entry id, type) of each notice one new entry gives."""
    return [(entry_id, NOTICE_TYPES[name]) for name in for_entry(kind, body, flags) if name in outbox.types]


def pack(given: Sequence[tuple[int, int]]) -> bytes:
    return b"".join(_PACKED.pack(entry_id, type_) for entry_id, type_ in given)


def unpack(packed: bytes) -> list[tuple[int, int]]:
    return list(_PACKED.iter_unpack(packed))


def notice_rows(outbox: Outbox, given: Sequence[tuple[int, int]],
                created_at_us: int) -> list[tuple[int, ...]]:
    """The `notices` rows (tables.NOTICE_COLUMNS) of a batch's notices, pending from the start."""
    retry_until = created_at_us + outbox.retry_seconds * 1_000_000
    return [(entry_id, type_, created_at_us, PENDING, 0, 0, retry_until) for entry_id, type_ in given]


def mark_written(session: AsyncSession) -> None:
    session.info[WROTE_NOTICES_KEY] = True


def wrote_notices(session: AsyncSession) -> bool:
    return bool(session.info.get(WROTE_NOTICES_KEY))
