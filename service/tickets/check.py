"""A clip store's check of a seenby access ticket: offline, single use, and nothing of the service.

Importable without a database, settings or a web framework: of seenby it needs service.jws (and,
through it, the ledger's pure Ed25519 verify); besides, python-jose, cryptography, PyNaCl and httpx.
A clip store builds one TicketChecker at start-up:

    checker = TicketChecker("seenby.dev/log", "clip-store-eu",
                            Jwks(url="https://seenby.example/v1/tickets/jwks.json"), MemoryReplayStore())
    claims = await checker.check(ticket, clip_id="clip-77a1", action="view")  # or TicketRefused

Every refusal names the check that failed (TicketRefused.check). They run in this order: alg, typ,
kid, signature, iss, aud, exp, iat, clip_id, action, and replay last; `malformed` comes before alg
(not a compact JWS, a header that is not JSON) or right after signature (a claim missing or of the
wrong type, a duplicated member).
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from service import jws

TICKET_TYP = "seenby-ticket+jwt"
ALGORITHM = jws.EDDSA
MAX_TICKET_BYTES = 8 * 1024  # seenby's tickets are well under 1 KiB; signed tokens have no cap of their own
MAX_LEEWAY_SECONDS = 30
MAX_LIFETIME_SECONDS = 3600  # SEENBY_TICKET_TTL_SECONDS is at most 3600: bounds what the replay store keeps
MAX_KID_LENGTH = 200
MAX_JTI_LENGTH = 128
MAX_NUMERIC_DATE = 253_402_300_799  # 9999-12-31T23:59:59Z
MAX_JWKS_KEYS = 100
# Claims of CONTRACT.md's ticket beyond those checked against the request, with their JSON types.
_STRING_CLAIMS = ("sub", "jti", "purpose", "entry_hash")

logger = logging.getLogger(__name__)


class TicketRefused(Exception):
    """A ticket that does not allow the request; `check` is the machine name of the failed check."""

    def __init__(self, check: str, detail: str) -> None:
        super().__init__(f"{check}: {detail}")
        self.check = check
        self.detail = detail


# --- single use -------------------------------------------------------------------------------

class ReplayStore(Protocol):
    """Remembers each ticket's jti until the ticket has expired, and says whether a use is the first.

    `first_use` must be atomic: of two concurrent calls with one jti, exactly one gets True. It may
    forget a jti once `expires_at` (Unix seconds) has passed, since the checker refuses the ticket
    by then anyway; so what it holds is bounded by the tickets alive at one time.

    Several replicas of a clip store must share one store, or a ticket can be used once per
    replica. A shared store is a few lines over an atomic insert-if-absent:
    Redis `SET ticket:<jti> 1 NX EXAT <expires_at>` (True when it answers OK), or PostgreSQL
    `INSERT INTO used_tickets (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING
    RETURNING jti` (True when a row comes back) with a periodic
    `DELETE FROM used_tickets WHERE expires_at < now()`.
    """

    async def first_use(self, jti: str, expires_at: int) -> bool: ...


class ReplayStoreFull(Exception):
    """More live tickets than the store may hold: refuse the ticket rather than grow without bound."""


class MemoryReplayStore:
    """A ReplayStore for one process: expired jtis are purged on every call, and at `max_entries` live
    jtis a new one raises ReplayStoreFull (the checker's refusal `replay`)."""

    def __init__(self, max_entries: int = 100_000, *, clock: Callable[[], float] = time.time) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._clock = clock
        self._expiry: dict[str, int] = {}
        self._by_expiry: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    async def first_use(self, jti: str, expires_at: int) -> bool:
        # No await inside: on one event loop, the check and the insert cannot interleave.
        self._purge()
        if jti in self._expiry:
            return False
        if len(self._expiry) >= self._max_entries:
            raise ReplayStoreFull(f"{self._max_entries} unexpired tickets are remembered already")
        self._expiry[jti] = expires_at
        heapq.heappush(self._by_expiry, (expires_at, jti))
        return True

    def _purge(self) -> None:
        now = self._clock()
        while self._by_expiry and self._by_expiry[0][0] < now:
            _, jti = heapq.heappop(self._by_expiry)
            del self._expiry[jti]


# --- keys -------------------------------------------------------------------------------------

class Jwks:
    """seenby's ticket keys by kid, from a JWKS document (a dict or a file) or a JWKS URL.

    Keys come from here only: a ticket's `jwk`, `jku`, `x5u` and `x5c` headers are never read. Only
    OKP Ed25519 keys for EdDSA signatures are kept, each under its RFC 7638 thumbprint (a key listed
    under another kid is left out, as the contract makes the kid the thumbprint).

    From a URL the keys are fetched on first use, again once they are `max_age_seconds` old (so a
    retired key leaves), and for a kid not yet known at most once per `min_refetch_seconds`, so that
    tickets with random kids cannot make the clip store hammer seenby. A fetch is bounded by
    `timeout_seconds` overall and `max_bytes`, follows no redirect, and when it fails the keys
    already known are kept.
    """

    def __init__(
        self, *, url: str | None = None, document: Mapping[str, Any] | None = None,
        min_refetch_seconds: float = 30.0, max_age_seconds: float = 300.0, timeout_seconds: float = 5.0,
        max_bytes: int = 64 * 1024, transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if (url is None) == (document is None):
            raise ValueError("a Jwks comes from a url or from a document, not both")
        if min_refetch_seconds < 0 or max_age_seconds < min_refetch_seconds:
            raise ValueError("need 0 <= min_refetch_seconds <= max_age_seconds")
        self._url, self._transport = url, transport
        self._min_refetch_seconds, self._max_age_seconds = min_refetch_seconds, max_age_seconds
        self._timeout_seconds, self._max_bytes = timeout_seconds, max_bytes
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._fetched_at = -math.inf
        self._lock = asyncio.Lock()
        if document is not None:
            self._keys = _index(document)

    @classmethod
    def from_file(cls, path: str | Path) -> Jwks:
        return cls(document=json.loads(Path(path).read_text()))

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    async def key_for(self, kid: str) -> Ed25519PublicKey | None:
        if self._url is not None:
            age = time.monotonic() - self._fetched_at
            if age >= self._max_age_seconds or (kid not in self._keys and age >= self._min_refetch_seconds):
                await self.refresh(unless_younger_than=self._min_refetch_seconds)
        return self._keys.get(kid)

    async def refresh(self, *, unless_younger_than: float = 0.0) -> None:
        """Fetch the keys now (a URL Jwks), unless another caller fetched them while this one waited."""
        if self._url is None:
            return
        async with self._lock:
            if time.monotonic() - self._fetched_at < unless_younger_than:
                return
            try:
                async with asyncio.timeout(self._timeout_seconds):
                    self._keys = _index(await self._fetch(self._url))
            except (httpx.HTTPError, TimeoutError, ValueError, RecursionError) as exc:
                logger.warning("ticket JWKS not fetched from %s (%s); keeping %d known keys",
                               self._url, exc, len(self._keys))
            self._fetched_at = time.monotonic()

    async def _fetch(self, url: str) -> Any:
        async with httpx.AsyncClient(
            timeout=self._timeout_seconds, follow_redirects=False, transport=self._transport
        ) as client, client.stream("GET", url, headers={"Accept": "application/json"}) as response:
            if response.status_code != 200:
                raise ValueError(f"the JWKS URL answered {response.status_code}")
            if int(response.headers.get("content-length") or 0) > self._max_bytes:
                raise ValueError(f"the JWKS is larger than {self._max_bytes} bytes")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self._max_bytes:
                    raise ValueError(f"the JWKS is larger than {self._max_bytes} bytes")
        return json.loads(body)


def _index(document: Any) -> dict[str, Ed25519PublicKey]:
    """The usable keys of a JWKS by their thumbprint; ValueError when it is not a JWKS at all."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("a JWKS is a JSON object with a 'keys' list")
    keys: dict[str, Ed25519PublicKey] = {}
    for entry in document["keys"][:MAX_JWKS_KEYS]:
        if not isinstance(entry, Mapping):
            continue
        try:
            key = jws.ed25519_from_jwk(entry)
        except ValueError:
            continue  # another kind of key (RSA, EC, another curve, an encryption key): not for tickets
        kid = jws.thumbprint(key)
        if entry.get("kid", kid) != kid:
            logger.warning("JWKS key %r left out: its kid is not its RFC 7638 thumbprint %s",
                           entry.get("kid"), kid)
            continue
        keys[kid] = key
    return keys


# --- the check ----------------------------------------------------------------------------------

class TicketChecker:
    def __init__(
        self, issuer: str, audience: str, jwks: Jwks, replay: ReplayStore, leeway_seconds: int = 30,
    ) -> None:
        if not issuer or not audience:
            raise ValueError("a ticket checker needs seenby's issuer and the clip store's own name")
        if not 0 <= leeway_seconds <= MAX_LEEWAY_SECONDS:
            raise ValueError(f"leeway_seconds must be between 0 and {MAX_LEEWAY_SECONDS}")
        self.issuer = issuer
        self.audience = audience
        self._jwks = jwks
        self._replay = replay
        self._leeway = leeway_seconds

    async def check(self, ticket: str, *, clip_id: str, action: str) -> dict[str, Any]:
        """The ticket's claims when it allows `action` on `clip_id`, now and for the first time."""
        parsed = _parse(ticket)
        header = parsed.header
        if header.get("alg") != ALGORITHM:
            raise TicketRefused("alg", f"a ticket is signed with {ALGORITHM} and nothing else")
        if not _is_ticket_type(header.get("typ")):
            raise TicketRefused("typ", f"the token is not typed {TICKET_TYP}: not an access ticket")
        if "crit" in header:  # RFC 7515 §4.1.11: we understand no extension, so none may be critical
            raise TicketRefused("malformed", "the ticket's critical header extensions are not understood")
        kid = header.get("kid")
        if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH:
            raise TicketRefused("kid", "the ticket names no key (kid)")
        key = await self._jwks.key_for(kid)
        if key is None:
            raise TicketRefused("kid", "the ticket's kid is not a key in seenby's ticket JWKS")
        try:
            claims = jws.verify_eddsa(parsed, key)
        except jws.BadSignature as exc:
            raise TicketRefused("signature", "the ticket's signature does not verify") from exc
        except jws.TokenError as exc:
            raise TicketRefused("malformed", str(exc)) from exc
        _check_shape(claims)
        self._check_claims(claims, clip_id=clip_id, action=action)
        # Last, so that only a ticket that passed everything else can use up its jti.
        try:
            first = await self._replay.first_use(claims["jti"], math.ceil(claims["exp"]) + self._leeway)
        except ReplayStoreFull as exc:
            raise TicketRefused("replay", f"the clip store cannot remember more tickets now: {exc}") from exc
        if not first:
            raise TicketRefused("replay", "the ticket has been used already")
        return claims

    def _check_claims(self, claims: dict[str, Any], *, clip_id: str, action: str) -> None:
        if claims["iss"] != self.issuer:
            raise TicketRefused("iss", "the ticket is not issued by this clip store's seenby")
        audience = claims["aud"]
        if audience != self.audience and not (isinstance(audience, list) and self.audience in audience):
            raise TicketRefused("aud", f"the ticket is not for {self.audience}")
        now = time.time()
        if now >= claims["exp"] + self._leeway:
            raise TicketRefused("exp", "the ticket has expired")
        if not 0 < claims["exp"] - claims["iat"] <= MAX_LIFETIME_SECONDS:
            raise TicketRefused("exp", f"a ticket lives between 1 and {MAX_LIFETIME_SECONDS} seconds")
        if claims["iat"] > now + self._leeway:
            raise TicketRefused("iat", "the ticket is issued in the future")
        if "nbf" in claims and claims["nbf"] > now + self._leeway:
            raise TicketRefused("iat", "the ticket is not valid yet (nbf)")
        if claims["clip_id"] != clip_id:
            raise TicketRefused("clip_id", "the ticket is for another clip")
        if claims["action"] != action:
            raise TicketRefused("action", f"the ticket does not allow {action}")


def _parse(ticket: Any) -> jws.CompactJws:
    """The ticket split and its header read, once: nothing verified yet. An unsecured JWS passes here,
    so that its alg "none" is refused as such."""
    if not isinstance(ticket, str) or not ticket:
        raise TicketRefused("malformed", "no ticket")
    if len(ticket) > MAX_TICKET_BYTES:
        raise TicketRefused("malformed", f"the ticket is longer than {MAX_TICKET_BYTES} bytes")
    try:
        return jws.parse_compact(ticket, unsecured=True)
    except jws.TokenError as exc:
        raise TicketRefused("malformed", str(exc)) from exc


def _is_ticket_type(typ: Any) -> bool:
    """RFC 7515 §4.1.9: a media type, compared case-insensitively, "application/" optional."""
    return isinstance(typ, str) and typ.lower().removeprefix("application/") == TICKET_TYP


def _check_shape(claims: dict[str, Any]) -> None:
    """Every claim CONTRACT.md puts in a ticket, of its JSON type (RFC 7519 §2: a NumericDate is a
    number; jose alone would take "exp": "1893456000" or 1e20)."""
    for name, check in (("exp", "exp"), ("iat", "iat"), ("nbf", "iat")):
        if (name in claims or name != "nbf") and not _is_numeric_date(claims.get(name)):
            raise TicketRefused(check, f"the ticket's {name} is not a NumericDate")
    for name in (*_STRING_CLAIMS, "iss", "clip_id", "action"):
        if not isinstance(claims.get(name), str) or not claims[name]:
            raise TicketRefused("malformed", f"the ticket's {name} is not a non-empty string")
    if len(claims["jti"]) > MAX_JTI_LENGTH:
        raise TicketRefused("malformed", f"the ticket's jti is longer than {MAX_JTI_LENGTH} characters")
    if not isinstance(claims.get("aud"), str) and not _is_strings(claims.get("aud")):
        raise TicketRefused("aud", "the ticket's aud is not a string or a list of strings")
    if not _is_strings(claims.get("media")):
        raise TicketRefused("malformed", "the ticket's media is not a list of strings")
    if not isinstance(claims.get("customer_seq"), int) or isinstance(claims["customer_seq"], bool):
        raise TicketRefused("malformed", "the ticket's customer_seq is not an integer")


def _is_numeric_date(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= MAX_NUMERIC_DATE


def _is_strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)
