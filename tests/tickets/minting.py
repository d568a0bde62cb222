"""Tickets for the clip-store tests: real ones from service.jws, forged ones by hand, and a local
HTTP server that counts what is asked of it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service import jws
from service.tickets.check import TICKET_TYP

ISSUER = "seenby.dev/log"
AUDIENCE = "clip-store-eu"
CLIP = "clip-77a1"
DROP: Any = object()  # as a claim's value: leave the claim out


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: Any) -> str:
    return b64url(value if isinstance(value, bytes) else json.dumps(value).encode())


class FromNow(int):
    """A time claim given as seconds from when the ticket is minted, not from when the test module
    was collected (a parametrized time goes stale in a suite that runs for minutes)."""


def ticket_claims(**overrides: Any) -> dict[str, Any]:
    """The claims seenby puts in a ticket (CONTRACT.md), some replaced or left out (DROP)."""
    now = int(time.time())
    overrides = {name: now + value if isinstance(value, FromNow) else value
                 for name, value in overrides.items()}
    values: dict[str, Any] = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": "cust-1042", "jti": str(uuid.uuid4()), "clip_id": CLIP,
        "action": "view", "media": ["video", "audio"], "purpose": "quality_review",
        "entry_hash": hashlib.sha256(b"entry").hexdigest(), "customer_seq": 17, "iat": now, "exp": now + 300,
    }
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not DROP}


def mint(key: Ed25519PrivateKey, **overrides: Any) -> str:
    """A ticket as seenby signs it (service.jws.sign_eddsa)."""
    return jws.sign_eddsa(ticket_claims(**overrides), key, typ=TICKET_TYP)


def header_of(key: Ed25519PrivateKey, **changes: Any) -> dict[str, Any]:
    header = {"alg": "EdDSA", "typ": TICKET_TYP, "kid": jws.thumbprint(key.public_key()), **changes}
    return {name: value for name, value in header.items() if value is not DROP}


def forge(header: dict[str, Any], payload: Any, sign: Callable[[bytes], bytes]) -> str:
    """A compact JWS with any header and payload, signed by `sign` over the signing input."""
    signing_input = f"{segment(header)}.{segment(payload)}"
    return f"{signing_input}.{b64url(sign(signing_input.encode()))}"


def eddsa_signer(key: Ed25519PrivateKey) -> Callable[[bytes], bytes]:
    return key.sign


def hmac_signer(secret: bytes) -> Callable[[bytes], bytes]:
    return lambda message: hmac.new(secret, message, hashlib.sha256).digest()


def with_payload(token: str, payload: dict[str, Any]) -> str:
    """The same header and signature around another payload."""
    header, _, signature = token.split(".")
    return f"{header}.{segment(payload)}.{signature}"


def jwks_of(*keys: Ed25519PrivateKey) -> dict[str, Any]:
    return {"keys": [jws.public_jwk(key.public_key()) for key in keys]}
