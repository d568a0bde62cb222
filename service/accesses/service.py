"""Recording access events: validation done, this makes them idempotent ledger entries."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from service import clock
from service.accesses.schemas import AccessEvent, Receipt
from service.actors import recorded_actor
from service.consent import rules
from service.consent import service as consent
from service.db import Database
from service.errors import Conflict
from service.ledger import store
from service.ledger.canonical import canonical_bytes
from service.metrics import ACCESSES_FLAGGED, ENTRIES_RECORDED
from service.settings import Settings
from service.types import format_micros, timestamp_micros

entries = store.entries_table
# Two writers racing on one new event_id: the loser's unique violation is retried as a replay.
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Recorded:
    receipts: list[Receipt]
    created: bool


@dataclass(frozen=True)
class _Sent:
    event: AccessEvent
    key: str  # the event_id, lower-cased: one UUID however it is spelt
    as_sent: dict[str, Any]
    digest: str


def _sent(event: AccessEvent) -> _Sent:
    # An explicit null equals an absent field: both vanish before canonicalisation.
    as_sent = event.model_dump(mode="json", exclude_none=True)
    return _Sent(event, event.event_id.lower(), as_sent,
                 hashlib.sha256(canonical_bytes(as_sent)).hexdigest())


async def record(
    database: Database, events: Sequence[AccessEvent], *, recorded_by: str, pseudonym_key: bytes,
    settings: Settings,
) -> Recorded:
    sent = _dedupe([_sent(e) for e in events])
    for attempt in range(MAX_ATTEMPTS):
        receipts = await _existing_receipts(database, sent)
        new = [s for s in sent.values() if s.key not in receipts]
        if not new:
            return Recorded([receipts[e.event_id.lower()] for e in events], created=False)
        try:
            receipts |= await _append(database, new, recorded_by, pseudonym_key, settings)
        except IntegrityError:
            if attempt == MAX_ATTEMPTS - 1:
                raise
            continue
        return Recorded([receipts[e.event_id.lower()] for e in events], created=True)
    raise AssertionError("unreachable")


def _dedupe(sent: list[_Sent]) -> dict[str, _Sent]:
    unique: dict[str, _Sent] = {}
    for s in sent:
        first = unique.setdefault(s.key, s)
        if first.digest != s.digest:
            raise Conflict(f"event_id {s.event.event_id} appears twice with different bodies")
    return unique


async def _existing_receipts(database: Database, sent: dict[str, _Sent]) -> dict[str, Receipt]:
    async with database.sessions() as session:
        rows = await session.execute(
            select(entries.c.event_id, entries.c.request_digest, entries.c.entry_hash,
                   entries.c.customer_seq, entries.c.recorded_at_us)
            .where(entries.c.event_id.in_(list(sent)))
        )
    receipts = {}
    for row in rows:
        if sent[row.event_id].digest != row.request_digest:
            raise Conflict(
                f"event_id {sent[row.event_id].event.event_id} was already recorded with another body"
            )
        receipts[row.event_id] = Receipt(
            event_id=sent[row.event_id].event.event_id, entry_hash=row.entry_hash,
            customer_seq=row.customer_seq, recorded_at=format_micros(row.recorded_at_us),
        )
    return receipts


async def _append(
    database: Database, new: list[_Sent], recorded_by: str, pseudonym_key: bytes, settings: Settings
) -> dict[str, Receipt]:
    accesses = [_access(s.event) for s in new]
    async with database.write(a.customer_id for a in accesses) as session:
        # Flags are judged under the customers' locks, as things stand when the entry is recorded.
        now = clock.now_us()
        facts = await consent.facts_for(session, accesses, settings, now)
        flags = [rules.flags(a, f) for a, f in zip(accesses, facts, strict=True)]
        new_entries = [_new_entry(s, recorded_by, pseudonym_key, f) for s, f in zip(new, flags, strict=True)]
        appended = await store.append(session, new_entries, now)
    ENTRIES_RECORDED.labels(kind="access").inc(len(appended))
    for flag in (flag for entry_flags in flags for flag in entry_flags):
        ACCESSES_FLAGGED.labels(flag=flag).inc()
    return {
        s.key: Receipt(event_id=s.event.event_id, entry_hash=a.entry_hash,
                       customer_seq=a.customer_seq, recorded_at=a.recorded_at)
        for s, a in zip(new, appended, strict=True)
    }


def _access(event: AccessEvent) -> rules.Access:
    return rules.Access(event.customer_id, event.clip_id, event.actor.type.value, event.action.value,
                        event.purpose.value, event.authorization_id)


def _new_entry(sent: _Sent, recorded_by: str, pseudonym_key: bytes, flags: list[str]) -> store.NewEntry:
    event = sent.event
    body = dict(sent.as_sent)
    body["actor"], identity = recorded_actor(body["actor"], event.customer_id, pseudonym_key)
    return store.NewEntry(
        customer_id=event.customer_id,
        kind="access",
        body=body,
        recorded_by=recorded_by,
        flags=flags,
        identity=identity,
        columns={
            "event_id": sent.key,
            "request_digest": sent.digest,
            "clip_id": event.clip_id,
            "occurred_at_us": timestamp_micros(event.occurred_at),
            "actor_type": event.actor.type.value,
            "actor_country": event.actor.country,
            "actor_organization": event.actor.organization,
            "purpose": event.purpose.value,
            "action": event.action.value,
        },
    )
