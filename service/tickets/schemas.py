"""Request and response bodies of POST /v1/access-tickets."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, StringConstraints, with_config
from typing_extensions import TypedDict

from service.accesses.schemas import AccessEvent, Receipt
from service.types import Text

Audience = Annotated[Text, StringConstraints(min_length=1, max_length=128, pattern=r"\S")]


@with_config(ConfigDict(extra="forbid"))
class TicketRequest(TypedDict):
    audience: Audience  # the clip store's name: the ticket's `aud`
    event: AccessEvent


class TicketKey(TypedDict):
    """An Ed25519 public key (RFC 8037), `kid` its RFC 7638 thumbprint."""

    kty: str
    crv: str
    x: str
    kid: str
    alg: str
    use: str


class TicketKeys(TypedDict):
    keys: list[TicketKey]  # the current key first, then retired ones whose tickets may be live


class TicketResponse(TypedDict):
    receipt: Receipt
    ticket: str  # a compact JWS (typ seenby-ticket+jwt), for the clip store
    expires_at: str
