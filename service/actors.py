"""How an actor is written into the ledger: humans pseudonymised and committed, algorithms in clear."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

PSEUDONYM_PREFIX = "psn_"
SALT_BYTES = 16


def pseudonym(key: bytes, customer_id: str, employee_id: str) -> str:
    """Stable per (customer, employee); unlinkable across customers without the key."""
    message = customer_id.encode() + b"\x00" + employee_id.encode()
    return PSEUDONYM_PREFIX + hmac.digest(key, message, "sha256").hex()[:32]


def id_commitment(salt: bytes, employee_id: str) -> str:
    """SHA-256(salt ‖ UTF-8 employee id), lowercase hex: what a regulator recomputes."""
    return hashlib.sha256(salt + employee_id.encode()).hexdigest()


def recorded_actor(
    actor: dict[str, Any], customer_id: str, pseudonym_key: bytes, salt: bytes
) -> tuple[dict[str, Any], tuple[str, str] | None]:
    """The actor as the ledger holds it, and the (employee id, hex salt) kept apart for humans.

    `salt`: SALT_BYTES fresh random bytes (callers draw them for a whole batch at once)."""
    if actor["type"] != "human":
        return actor, None
    employee_id = actor["id"]
    recorded = {k: v for k, v in actor.items() if k != "id"}
    recorded["pseudonym"] = pseudonym(pseudonym_key, customer_id, employee_id)
    recorded["id_commitment"] = id_commitment(salt, employee_id)
    return recorded, (employee_id, salt.hex())
