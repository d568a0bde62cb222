"""Recording access events as idempotent ledger entries.

Every request in a process hands its events to one Recorder, which writes them through group
commit (service.group_commit): each group is one transaction that tells replays and conflicts
apart from what is stored, judges the new events' flags under their customers' locks and appends
them. Each request still gets all-or-nothing and its own answer.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from service import clock
from service.accesses.schemas import AccessEvent, Receipt, as_sent
from service.actors import SALT_BYTES, recorded_actor
from service.clock import format_micros, timestamp_micros
from service.consent import rules
from service.consent import service as consent
from service.db import Database
from service.errors import Conflict
from service.group_commit import GroupCommit, Outcome, Submission
from service.ids import random_blocks
from service.ledger import reads, store
from service.ledger.canonical import canonical_bytes
from service.ledger.kinds import EntryKind
from service.metrics import ACCESSES_FLAGGED
from service.settings import Settings

# Events prepared between yields to the event loop: a 1,000-event batch in one go would hold up,
# for some 20 ms, a writer whose query has returned while it holds the customers' locks.
PREPARE_CHUNK = 100


class Judged(NamedTuple):
    """How an event stands in the ledger: the kind of its entry and the flags it carries."""

    kind: str  # an EntryKind, or as read back for an event recorded before
    flags: list[str]


@dataclass(frozen=True)
class Recorded:
    receipts: list[Receipt]
    created: bool
    judged: list[Judged]  # in request order, as the receipts


class PreparedEvent(NamedTuple):
    event_id: str  # as sent
    key: str  # the event_id, lower-cased: one UUID however it is spelt
    digest: str
    access: rules.Access
    entry: store.NewEntry  # prepared before the customers' locks; its flags are set under them


@dataclass
class Sent:
    """One request's events, as the writer needs them."""

    events: list[PreparedEvent]  # in request order, repeats included
    unique: dict[str, PreparedEvent]
    refuse: bool  # a new event whose flags refuse it is recorded as an access_refused entry


_Submission = Submission[Sent, Recorded]


def prepare(event: AccessEvent, recorded_by: str, pseudonym_key: bytes, salt: bytes) -> PreparedEvent:
    """Everything about one event that does not depend on the ledger's state, done while the
    request waits for the writer rather than inside the writer's locks."""
    body = as_sent(event)
    digest = hashlib.sha256(canonical_bytes(body)).hexdigest()
    key = body["event_id"].lower()
    return PreparedEvent(body["event_id"], key, digest, _access(body),
                 _new_entry(body, key, digest, recorded_by, pseudonym_key, salt))


def _dedupe(sent: list[PreparedEvent]) -> dict[str, PreparedEvent]:
    unique: dict[str, PreparedEvent] = {}
    for s in sent:
        first = unique.setdefault(s.key, s)
        if first.digest != s.digest:
            raise Conflict(f"event_id {s.event_id} appears twice with different bodies")
    return unique


class Recorder:
    def __init__(
        self, database: Database, settings: Settings, pseudonym_key: bytes, *, group_events: int = 4000
    ) -> None:
        self.database = database
        self.settings = settings
        self.pseudonym_key = pseudonym_key
        # Two writers on PostgreSQL: under a backlog one prepares its group while the other waits on
        # the database. Per-customer locks keep their chains in order; SQLite has one writer anyway.
        self.group_commit: GroupCommit[Sent, Recorded] = GroupCommit(
            self._write, writers=1 if database.sqlite else 2, group_units=group_events)

    async def record(
        self, events: Sequence[AccessEvent], *, recorded_by: str, refuse: bool = False
    ) -> Recorded:
        """Record the events, all or none; with `refuse`, one that its flags refuse (REFUSING_FLAGS)
        is recorded as an attempt, an access_refused entry, instead of an access."""
        salts = random_blocks(len(events), SALT_BYTES)
        sent = []
        for start in range(0, len(events), PREPARE_CHUNK):
            if start:
                await asyncio.sleep(0)  # let a writer holding customers' locks move on meanwhile
            chunk = zip(events[start:start + PREPARE_CHUNK], salts[start:start + PREPARE_CHUNK], strict=True)
            sent += [prepare(event, recorded_by, self.pseudonym_key, salt) for event, salt in chunk]
        unique = _dedupe(sent)
        return await self.group_commit.submit(Sent(sent, unique, refuse), len(unique))

    async def close(self) -> None:
        await self.group_commit.close()

    async def _write(self, pending: list[_Submission]) -> list[Outcome[Sent, Recorded]]:
        """One transaction: replays and conflicts told apart from what is stored, the new events
        appended under their customers' locks; answers only once it committed."""
        outcomes: list[Outcome[Sent, Recorded]] = []
        async with self.database.write(()) as session:
            # Read before the locks, so it does not lengthen them: an event_id recorded by another
            # process in between fails our insert on its unique index, and the retry sees it.
            existing = await reads.recorded_events(session, {k for s in pending for k in s.work.unique})
            claimed: dict[str, tuple[PreparedEvent, _Submission]] = {}
            accepted = []
            for submission in pending:
                conflict = _conflict(submission, existing, claimed)
                if conflict:
                    outcomes.append((submission, Conflict(conflict)))
                    continue
                accepted.append(submission)
                for key, sent in submission.work.unique.items():
                    if key not in existing:
                        claimed.setdefault(key, (sent, submission))
            receipts = {}
            if claimed:
                await self.database.lock(session, {sent.access.customer_id for sent, _ in claimed.values()})
                receipts = await self._append(session, list(claimed.values()))
        # Committed: count the flags once, never for a group rolled back and retried.
        for flag, count in Counter(f for sent, _ in claimed.values() for f in sent.entry.flags).items():
            ACCESSES_FLAGGED.labels(flag=flag).inc(count)
        for submission in accepted:
            created = any(claimed.get(k, (None, None))[1] is submission for k in submission.work.unique)
            events = submission.work.events
            outcomes.append((submission, Recorded(
                [receipts.get(s.key) or _replayed_receipt(s, existing[s.key]) for s in events],
                created=created,
                judged=[_judged(s, existing, claimed) for s in events],
            )))
        return outcomes

    async def _append(
        self, session: AsyncSession, new: list[tuple[PreparedEvent, _Submission]]
    ) -> dict[str, Receipt]:
        accesses = [sent.access for sent, _ in new]
        # Flags are judged under the customers' locks, as things stand when the entry is recorded.
        now = clock.now_us()
        facts = await consent.facts_for(session, accesses, self.settings, now)
        new_entries = []
        for (sent, submission), access, access_facts in zip(new, accesses, facts, strict=True):
            sent.entry.flags = rules.flags(access, access_facts)
            refused = submission.work.refuse and not rules.REFUSING_FLAGS.isdisjoint(sent.entry.flags)
            if refused:  # the entry holds the flags that refused it (CONTRACT "Refusal"), no others
                sent.entry.kind = EntryKind.ACCESS_REFUSED
                sent.entry.flags = [flag for flag in sent.entry.flags if flag in rules.REFUSING_FLAGS]
            else:
                sent.entry.kind = EntryKind.ACCESS
            new_entries.append(sent.entry)
        appended = await store.append(session, new_entries, now)
        return {sent.key: new_receipt(sent, a) for (sent, _), a in zip(new, appended, strict=True)}


def new_receipt(sent: PreparedEvent, appended: store.AppendedEntry) -> Receipt:
    """The receipt of an event just recorded: not in the log yet, so no log index."""
    return {"event_id": sent.event_id, "entry_hash": appended.entry_hash,
            "customer_seq": appended.customer_seq, "recorded_at": appended.recorded_at, "log_index": None}


def _judged(sent: PreparedEvent, existing: dict[str, reads.RecordedEvent],
            claimed: dict[str, tuple[PreparedEvent, _Submission]]) -> Judged:
    if sent.key in existing:
        return Judged(existing[sent.key].kind, existing[sent.key].flags)
    entry = claimed[sent.key][0].entry  # whichever request of the group recorded it
    return Judged(entry.kind, entry.flags)


def _replayed_receipt(sent: PreparedEvent, recorded: reads.RecordedEvent) -> Receipt:
    """The original receipt; a replay has the same body, so the same event_id spelling."""
    return {"event_id": sent.event_id, "entry_hash": recorded.entry_hash,
            "customer_seq": recorded.customer_seq, "recorded_at": format_micros(recorded.recorded_at_us),
            "log_index": recorded.log_index}


def _conflict(
    submission: _Submission, existing: dict[str, reads.RecordedEvent],
    claimed: dict[str, tuple[PreparedEvent, _Submission]],
) -> str | None:
    for key, sent in submission.work.unique.items():
        if key in existing and existing[key].request_digest != sent.digest:
            return f"event_id {sent.event_id} was already recorded with another body"
        if key in claimed and claimed[key][0].digest != sent.digest:
            return f"event_id {sent.event_id} is being recorded with another body"
    return None


def _access(as_sent: dict[str, Any]) -> rules.Access:
    # From the body as sent, whose enums are plain strings already (use_enum_values).
    return rules.Access(as_sent["customer_id"], as_sent["clip_id"], as_sent["actor"]["type"],
                        as_sent["action"], as_sent["purpose"], as_sent.get("authorization_id"))


def _new_entry(
    as_sent: dict[str, Any], key: str, digest: str, recorded_by: str, pseudonym_key: bytes, salt: bytes
) -> store.NewEntry:
    body = dict(as_sent)
    actor = as_sent["actor"]
    body["actor"], identity = recorded_actor(actor, as_sent["customer_id"], pseudonym_key, salt)
    return store.NewEntry(
        customer_id=as_sent["customer_id"],
        kind=EntryKind.ACCESS,
        body=body,
        recorded_by=recorded_by,
        identity=identity,
        columns={
            "event_id": key,
            "request_digest": digest,
            "clip_id": as_sent["clip_id"],
            "occurred_at_us": timestamp_micros(as_sent["occurred_at"]),
            "actor_type": actor["type"],
            "actor_country": actor.get("country"),
            "actor_organization": actor.get("organization"),
            "purpose": as_sent["purpose"],
            "action": as_sent["action"],
        },
    )
