"""Issuing access tickets: the access is recorded (and committed) first, then signed into a short-lived
ticket that a clip store checks offline (service.tickets.check). An access the customer's consent,
a deletion request or an invalid authorization would flag is refused instead, and the attempt is
recorded as an access_refused entry."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from service import jws
from service.accesses.schemas import AccessEvent, Receipt
from service.accesses.service import Recorder
from service.clock import format_micros
from service.consent.rules import REFUSING_FLAGS
from service.errors import AccessRefused
from service.keys import Keys
from service.ledger.kinds import EntryKind
from service.metrics import TICKET_SECONDS, TICKETS_ISSUED, TICKETS_REFUSED
from service.settings import Settings

TICKET_TYPE = "seenby-ticket+jwt"


@dataclass(frozen=True)
class Issued:
    receipt: Receipt
    ticket: str
    expires_at: str
    created: bool  # False for a replay: the same entry, a fresh ticket


class TicketIssuer:
    def __init__(self, recorder: Recorder, settings: Settings, keys: Keys) -> None:
        self._recorder = recorder
        self._issuer = settings.resolved_ticket_issuer
        self._ttl_seconds = settings.ticket_ttl_seconds
        self._enforce = settings.tickets_enforce
        self._key = keys.ticket_key
        # The current key first, then retired ones whose tickets may still be live; encoded once.
        self.jwks = orjson.dumps({"keys": [jws.public_jwk(key) for key in
                                           (keys.ticket_key.public_key(), *keys.retired_ticket_keys)]})

    async def issue(self, audience: str, event: AccessEvent, *, requested_by: str) -> Issued:
        """403 AccessRefused, after the attempt committed, for an access its flags refuse."""
        with TICKET_SECONDS.time():
            recorded = await self._recorder.record([event], recorded_by=requested_by, refuse=self._enforce)
            [receipt], [judged] = recorded.receipts, recorded.judged
            refusing = [flag for flag in judged.flags if flag in REFUSING_FLAGS]
            # A replay answers as the first request did; an access recorded through POST /v1/accesses
            # with refusing flags gets no ticket either (but it stays an access: nothing new is written).
            if judged.kind == EntryKind.ACCESS_REFUSED or (self._enforce and refusing):
                for flag in refusing:
                    TICKETS_REFUSED.labels(flag=flag).inc()
                # A refused attempt's 403 names the flags its entry holds: the same answer on replay.
                shown = judged.flags if judged.kind == EntryKind.ACCESS_REFUSED else refusing
                raise AccessRefused(shown, receipt["entry_hash"])
            now = int(time.time())
            claims = self._claims(audience, event, receipt, judged.flags, now)
            ticket = jws.sign_eddsa(claims, self._key, typ=TICKET_TYPE)
        TICKETS_ISSUED.inc()
        return Issued(receipt, ticket, format_micros(claims["exp"] * 1_000_000), recorded.created)

    def _claims(self, audience: str, event: AccessEvent, receipt: Receipt, flags: list[str],
                now: int) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "iss": self._issuer, "aud": audience, "sub": event["customer_id"],
            "jti": event["event_id"].lower(), "clip_id": event["clip_id"], "action": event["action"],
            "media": list(event["media"]), "purpose": event["purpose"],
            "entry_hash": receipt["entry_hash"], "customer_seq": receipt["customer_seq"],
            "iat": now, "exp": now + self._ttl_seconds,
        }
        if flags:  # monitor-only mode (SEENBY_TICKETS_ENFORCE=false), or needs_review
            claims["flags"] = flags
        return claims
