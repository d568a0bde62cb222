"""What an entry's row repeats of its canonical bytes, and the identity kept apart from them: what
`seenby audit` expects of each, from the canonical bytes alone.

Reads filter, count and show by these columns (histories, summaries, exports, reports), so an edit
to one behind the service's back changes what readers are told as surely as an edit to the bytes.
The domains fill them when they record (store.NewEntry.columns: accesses and refused attempts,
access decisions, objections); this says again, independently, what each must hold.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from service.clock import timestamp_micros
from service.ledger.kinds import EntryKind

# The row's columns checked here, in the order the audit reads them. request_digest is a digest of
# the body as sent, employee id included, which the ledger does not keep: it cannot be checked.
COLUMNS = ("kind", "recorded_at_us", "flags", "recorded_by", "event_id", "clip_id", "occurred_at_us",
           "actor_type", "actor_country", "actor_organization", "purpose", "action")

# An objection repeats the purpose and organization of the entry it objects to: those are checked
# against that entry's bytes (ObjectionColumns), not the objection's.
_OF_THE_OBJECTED = object()
_ACCESS_KINDS = frozenset({EntryKind.ACCESS, EntryKind.ACCESS_REFUSED})


class ObjectionColumns(NamedTuple):
    """An objection's columns that name what it objects to, for a check against that entry."""

    objected_entry_hash: Any
    actor_organization: Any
    purpose: Any


def column_faults(recorded: Mapping[str, Any], stored: tuple[Any, ...]) -> list[str]:
    """The columns (COLUMNS, in order) whose stored value is not what the canonical bytes say."""
    expected = _expected(recorded)
    if expected == stored:  # nearly always: one comparison of tuples
        return []
    differing = [name for name, want, have in zip(COLUMNS, expected, stored, strict=True)
                 if want is not _OF_THE_OBJECTED and want != have]
    if not differing:
        return []
    return [f"stored columns disagree with the canonical bytes: {', '.join(differing)}"]


def objection_columns(recorded: Mapping[str, Any], stored: Sequence[Any]) -> ObjectionColumns | None:
    """An objection's stored purpose and organization, with the entry they must be taken from."""
    if recorded.get("kind") != EntryKind.OBJECTION:
        return None
    by_name = dict(zip(COLUMNS, stored, strict=True))
    return ObjectionColumns(recorded.get("objected_entry_hash"), by_name["actor_organization"],
                            by_name["purpose"])


def objected_faults(objection: ObjectionColumns, objected: Mapping[str, Any] | None) -> list[str]:
    """An objection's purpose and organization against the bytes of the entry it objects to."""
    if objected is None:
        return ["the entry it objects to is not in the customer's chain"]
    repeated = (_actor(objected).get("organization"), objected.get("purpose"))
    if (objection.actor_organization, objection.purpose) == repeated:
        return []
    return ["stored columns disagree with the entry it objects to: actor_organization, purpose"]


def identity_faults(recorded: Mapping[str, Any], employee_id: str | None, salt: bytes | None) -> list[str]:
    """A human actor's identity, kept apart, against the commitment in the bytes; none for others."""
    commitment = _actor(recorded).get("id_commitment")
    if commitment is None:
        return [] if employee_id is None else ["an identity is kept for an entry with no human actor"]
    if employee_id is None or salt is None:
        return ["the human actor's identity is missing"]
    if hashlib.sha256(salt + employee_id.encode()).hexdigest() != commitment:
        return ["the identity kept for the human actor does not match its id_commitment"]
    return []


def _expected(recorded: Mapping[str, Any]) -> tuple[Any, ...]:
    get = recorded.get
    kind, flags = get("kind"), get("flags")
    if isinstance(flags, list) and all(isinstance(flag, str) for flag in flags):
        flags = ",".join(flags)
    common = (kind, _micros(get("recorded_at")), flags, get("recorded_by"))
    if kind in _ACCESS_KINDS:
        actor, event_id = _actor(recorded), get("event_id")
        return (*common, event_id.lower() if isinstance(event_id, str) else event_id, get("clip_id"),
                _micros(get("occurred_at")), actor.get("type"), actor.get("country"),
                actor.get("organization"), get("purpose"), get("action"))
    if kind == EntryKind.ACCESS_DECISION:
        return (*common, None, get("clip_id"), None, _actor(recorded).get("type"), None, None,
                get("purpose"), get("action"))
    if kind == EntryKind.OBJECTION:
        return (*common, None, None, None, None, None, _OF_THE_OBJECTED, _OF_THE_OBJECTED, None)
    return (*common, None, None, None, None, None, None, None, None)


def _actor(recorded: Mapping[str, Any]) -> Mapping[str, Any]:
    actor = recorded.get("actor")
    return actor if isinstance(actor, dict) else {}


def _micros(moment: Any) -> Any:
    """A time in the bytes as its column holds it; anything unreadable as itself (never equal)."""
    return _parsed(moment) if isinstance(moment, str) else moment


@functools.lru_cache(maxsize=4096)  # entries recorded together share their recorded_at
def _parsed(moment: str) -> int | str:
    try:
        return timestamp_micros(moment)
    except ValueError:
        return moment
