"""The notice types (CONTRACT "Notices and objections"), and which ones an entry gives."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from service.ledger.kinds import EntryKind

# Codes as stored in the outbox; within one entry, notices go out in this order.
NOTICE_TYPES: Mapping[str, int] = {
    "access.human": 1,
    "access.flagged": 2,
    "access.refused": 3,
    "deletion.completed": 4,
    "deletion.overdue": 5,
    "objection.filed": 6,
}
TYPE_NAMES: Mapping[int, str] = {code: name for name, code in NOTICE_TYPES.items()}

# A notice's delivery state in the outbox.
PENDING, DELIVERED, DEAD = 0, 1, 2

_BY_KIND: Mapping[str, str] = {
    EntryKind.ACCESS_REFUSED: "access.refused",
    EntryKind.DELETION_COMPLETED: "deletion.completed",
    EntryKind.OBJECTION: "objection.filed",
}


def for_entry(kind: str, body: Mapping[str, Any], flags: Sequence[str]) -> list[str]:
    """The notices an entry gives as it is recorded, one per type that applies. (`deletion.overdue`
    is given later, by the deliverer, when a request passes its due date.)"""
    if kind == EntryKind.ACCESS:
        actor = body.get("actor")
        found = ["access.human"] if isinstance(actor, dict) and actor.get("type") == "human" else []
        return found + (["access.flagged"] if flags else [])
    named = _BY_KIND.get(kind)
    return [named] if named else []
