"""One notice as a Standard Webhooks request: its body, its stable id, its signature."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from standardwebhooks import Webhook

from service.clock import format_micros
from service.history.views import entry_view
from service.notices.types import TYPE_NAMES


@dataclass(frozen=True)
class Notice:
    """A pending notice with what its body is made of (read with the entry it announces)."""

    entry_id: int
    type: int
    created_at_us: int
    attempts: int
    next_attempt_at_us: int
    retry_until_us: int
    customer_id: str
    customer_seq: int
    entry_hash: str
    canonical: bytes
    log_index: int | None

    @property
    def type_name(self) -> str:
        return TYPE_NAMES[self.type]

    @property
    def webhook_id(self) -> str:
        """The same for every attempt, so receivers can drop a notice they already have."""
        return f"{self.type_name}:{self.entry_hash}"

    def body(self) -> bytes:
        """`{"type", "timestamp", "data": {"customer_id", "entry_hash", "customer_seq", "entry"}}`:
        the entry as the customer sees it (a human actor's pseudonym, never an employee id)."""
        view: dict[str, Any] = entry_view(self.canonical, self.entry_hash, self.log_index, None,
                                          with_identity=False)
        return orjson.dumps({
            "type": self.type_name,
            "timestamp": format_micros(self.created_at_us),
            "data": {"customer_id": self.customer_id, "entry_hash": self.entry_hash,
                     "customer_seq": self.customer_seq, "entry": view},
        })


class Signer:
    """Signs with every secret, the newest first: while a secret is rotated, a receiver that holds
    either the old or the new one verifies (Standard Webhooks: `webhook-signature` is a
    space-delimited list, and a receiver accepts any signature in it that it can check)."""

    def __init__(self, secrets: Sequence[str]) -> None:
        if not secrets:
            raise ValueError("a webhook signer needs at least one secret")
        self._webhooks = [Webhook(secret) for secret in secrets]

    def headers(self, notice: Notice, body: bytes, now: datetime | None = None) -> dict[str, str]:
        """webhook-id, webhook-timestamp (this attempt's) and webhook-signature (v1, HMAC-SHA256)."""
        moment = now or datetime.now(UTC)
        return {
            "content-type": "application/json",
            "webhook-id": notice.webhook_id,
            "webhook-timestamp": str(int(moment.timestamp())),
            "webhook-signature": " ".join(webhook.sign(notice.webhook_id, moment, body)
                                          for webhook in self._webhooks),
        }
