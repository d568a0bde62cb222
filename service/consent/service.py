"""Consent, troubleshooting grants and access decisions; and the facts every access is judged on."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, Select, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service import bulk, clock
from service.actors import SALT_BYTES, recorded_actor
from service.clock import format_micros
from service.consent import rules
from service.consent.tables import consents, decisions, grants
from service.db import Database, one_of, per_dialect
from service.deletions.coverage import clips_under_deletion
from service.errors import NotFound
from service.ids import new_id
from service.ledger import store
from service.ledger.kinds import EntryKind
from service.settings import Settings


def default_consent(settings: Settings) -> rules.ConsentState:
    return rules.ConsentState(settings.consent_default_human_review,
                              settings.consent_default_model_training)


@per_dialect
def _consent_query(dialect: str) -> Select[Any]:
    return select(consents.c.customer_id, consents.c.human_review, consents.c.model_training).where(
        one_of(dialect, consents.c.customer_id, "customers")
    )


@per_dialect
def _live_grants_query(dialect: str) -> Select[Any]:
    now = bindparam("now", type_=BigInteger)
    return select(grants.c.customer_id, grants.c.clip_id).where(
        one_of(dialect, grants.c.customer_id, "customers"),
        one_of(dialect, grants.c.clip_id, "clips"),
        grants.c.withdrawn_at_us.is_(None),
        grants.c.granted_at_us <= now,
        grants.c.expires_at_us > now,
    )


@per_dialect
def _decisions_query(dialect: str) -> Select[Any]:
    return select(decisions.c.id, decisions.c.customer_id, decisions.c.clip_id, decisions.c.action,
                  decisions.c.purpose, decisions.c.decision).where(one_of(dialect, decisions.c.id, "ids"))


async def current_consent(
    session: AsyncSession, customer_ids: Sequence[str], settings: Settings
) -> dict[str, rules.ConsentState]:
    rows = await session.execute(_consent_query(session), {"customers": sorted(set(customer_ids))})
    found = {r.customer_id: rules.ConsentState(r.human_review, r.model_training) for r in rows}
    default = default_consent(settings)
    return {c: found.get(c, default) for c in customer_ids}


async def facts_for(
    session: AsyncSession, accesses: Sequence[rules.Access], settings: Settings, now_us: int
) -> list[rules.Facts]:
    """The facts behind each access, in three queries whatever the batch size (four with cited decisions)."""
    pairs = {(a.customer_id, a.clip_id) for a in accesses}
    consent = await current_consent(session, [a.customer_id for a in accesses], settings)
    live = await session.execute(_live_grants_query(session), {
        "customers": sorted({c for c, _ in pairs}), "clips": sorted({clip for _, clip in pairs}),
        "now": now_us,
    })
    granted = {(r.customer_id, r.clip_id) for r in live}
    deleted = await clips_under_deletion(session, pairs)
    cited_ids = sorted({a.authorization_id for a in accesses if a.authorization_id})
    cited: dict[str, rules.CitedDecision] = {}
    if cited_ids:
        rows = await session.execute(_decisions_query(session), {"ids": cited_ids})
        cited = {r.id: rules.CitedDecision(r.customer_id, r.clip_id, r.action, r.purpose, r.decision)
                 for r in rows}
    return [
        rules.Facts(
            consent=consent[a.customer_id],
            live_grant=(a.customer_id, a.clip_id) in granted,
            deletion_requested=(a.customer_id, a.clip_id) in deleted,
            cited=cited.get(a.authorization_id) if a.authorization_id else None,
        )
        for a in accesses
    ]


def consent_view(state: rules.ConsentState) -> dict[str, bool]:
    return {"human_review": state.human_review, "model_training": state.model_training}


async def read_consent(session: AsyncSession, customer_id: str, settings: Settings) -> dict[str, bool]:
    return consent_view((await current_consent(session, [customer_id], settings))[customer_id])


CONSENT_COLUMNS = ("customer_id", "human_review", "model_training", "updated_at_us")


async def change_consent(
    database: Database, customer_id: str, wanted: dict[str, bool], settings: Settings, changed_by: str
) -> dict[str, bool]:
    """Apply the given fields; a real change is a consent_changed entry, a no-op writes nothing."""
    async with database.write([customer_id]) as session:
        before = (await current_consent(session, [customer_id], settings))[customer_id]
        after = rules.ConsentState(
            wanted.get("human_review", before.human_review),
            wanted.get("model_training", before.model_training),
        )
        if after == before:
            return consent_view(after)
        now = clock.now_us()
        await bulk.upsert_rows(session, consents, CONSENT_COLUMNS,
                               [(customer_id, after.human_review, after.model_training, now)])
        await store.append(session, [store.NewEntry(
            customer_id=customer_id, kind=EntryKind.CONSENT_CHANGED, recorded_by=changed_by,
            body={"consent": consent_view(after), "previous": consent_view(before)},
        )], now)
    return consent_view(after)


def grant_view(row: Any, now_us: int) -> dict[str, Any]:
    live = row.withdrawn_at_us is None and row.expires_at_us > now_us
    return {
        "id": row.id, "clip_id": row.clip_id, "note": row.note,
        "granted_at": format_micros(row.granted_at_us), "expires_at": format_micros(row.expires_at_us),
        "withdrawn_at": format_micros(row.withdrawn_at_us) if row.withdrawn_at_us else None,
        "status": "live" if live else ("withdrawn" if row.withdrawn_at_us else "expired"),
    }


async def grant_troubleshooting(
    database: Database, customer_id: str, clip_id: str, note: str | None, settings: Settings
) -> dict[str, Any]:
    grant_id = new_id()
    async with database.write([customer_id]) as session:
        now = clock.now_us()
        expires = now + settings.troubleshooting_grant_days * clock.DAY_US
        await session.execute(grants.insert(), [{
            "id": grant_id, "customer_id": customer_id, "clip_id": clip_id, "note": note,
            "granted_at_us": now, "expires_at_us": expires, "withdrawn_at_us": None,
        }])
        body = {"grant_id": grant_id, "clip_id": clip_id, "expires_at": format_micros(expires)}
        if note is not None:
            body["note"] = note
        await store.append(session, [store.NewEntry(
            customer_id=customer_id, kind=EntryKind.TROUBLESHOOTING_GRANTED, recorded_by=customer_id,
            body=body,
        )], now)
        row = (await session.execute(select(grants).where(grants.c.id == grant_id))).one()
    return grant_view(row, now)


async def withdraw_troubleshooting(database: Database, customer_id: str, grant_id: str) -> dict[str, Any]:
    async with database.write([customer_id]) as session:
        now = clock.now_us()
        row = (await session.execute(select(grants).where(
            grants.c.id == grant_id, grants.c.customer_id == customer_id))).first()
        if row is None:
            raise NotFound(f"no troubleshooting grant {grant_id}")
        if row.withdrawn_at_us is not None or row.expires_at_us <= now:
            return grant_view(row, now)  # already over: withdrawing again changes nothing
        await session.execute(update(grants).where(grants.c.id == grant_id).values(withdrawn_at_us=now))
        await store.append(session, [store.NewEntry(
            customer_id=customer_id, kind=EntryKind.TROUBLESHOOTING_WITHDRAWN, recorded_by=customer_id,
            body={"grant_id": grant_id, "clip_id": row.clip_id},
        )], now)
        row = (await session.execute(select(grants).where(grants.c.id == grant_id))).one()
    return grant_view(row, now)


async def list_grants(session: AsyncSession, customer_id: str) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(grants).where(grants.c.customer_id == customer_id).order_by(grants.c.id)
    )
    now = clock.now_us()
    return [grant_view(row, now) for row in rows]


async def decide_access(
    database: Database, request: dict[str, Any], *, decided_by: str, pseudonym_key: bytes,
    settings: Settings,
) -> dict[str, Any]:
    """An allow/deny answer, recorded as an access_decision entry that an access may later cite."""
    customer_id = request["customer_id"]
    access = rules.Access(customer_id, request["clip_id"], request["actor"]["type"],
                          request["action"], request["purpose"])
    decision_id = new_id()
    async with database.write([customer_id]) as session:
        now = clock.now_us()
        [facts] = await facts_for(session, [access], settings, now)
        verdict = rules.decide(access, facts)
        actor, identity = recorded_actor(request["actor"], customer_id, pseudonym_key,
                                         os.urandom(SALT_BYTES))
        body = {
            "decision_id": decision_id, "clip_id": access.clip_id, "actor": actor,
            "action": access.action, "purpose": access.purpose,
            "decision": "allow" if verdict.allow else "deny", "reason": verdict.reason,
        }
        [appended] = await store.append(session, [store.NewEntry(
            customer_id=customer_id, kind=EntryKind.ACCESS_DECISION, recorded_by=decided_by, body=body,
            identity=identity, columns={"clip_id": access.clip_id, "actor_type": access.actor_type,
                                        "purpose": access.purpose, "action": access.action},
        )], now)
        await session.execute(decisions.insert(), [{
            "id": decision_id, "customer_id": customer_id, "clip_id": access.clip_id,
            "action": access.action, "purpose": access.purpose, "decision": body["decision"],
            "entry_hash": appended.entry_hash, "decided_at_us": now,
        }])
    return {"id": decision_id, "decision": body["decision"], "reason": verdict.reason,
            "entry_hash": appended.entry_hash}
