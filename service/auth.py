"""Bearer-token authentication and roles; tokens are decoded through service.jws (python-jose's one home)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import httpx
from fastapi import Depends, Request

from service import jws
from service.customers.countries import is_country
from service.errors import Forbidden, Unauthorized
from service.jws import COMPACT_JWS, EDDSA_NAMES, canonical_base64url
from service.keys import Keys
from service.settings import HMAC_ALGORITHMS, Settings
from service.types import valid_unicode

MAX_SUBJECT_LENGTH = 128
MAX_KID_LENGTH = 200
JURISDICTION = re.compile(r"[A-Z]{2}")
MAX_NUMERIC_DATE = 253_402_300_799  # 9999-12-31T23:59:59Z
_KEY_TYPES = {"RS": "RSA", "ES": "EC", "Ed": "OKP"}


class Role(StrEnum):
    CUSTOMER = "customer"
    SERVICE = "service"
    REGULATOR = "regulator"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: frozenset[Role]
    jurisdiction: str | None = None
    expires_at: float | None = None  # the token's exp: a long-lived stream ends there

    def has(self, role: Role) -> bool:
        return role in self.roles


class _JwksCache:
    """Public keys by `kid`, from a JWKS file or URL; a URL is refetched when stale or a kid is new."""

    MIN_REFETCH_SECONDS = 30.0

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        if settings.jwks_file:
            self._keys = _index_jwks(json.loads(settings.jwks_file.read_text()))

    async def key_for(self, kid: str) -> dict[str, Any] | None:
        if self._settings.jwks_url:
            age = time.monotonic() - self._fetched_at
            if age > self._settings.jwks_cache_seconds or (
                kid not in self._keys and age > self.MIN_REFETCH_SECONDS
            ):
                await self._refresh()
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        async with self._lock:
            fresh_for = min(self.MIN_REFETCH_SECONDS, self._settings.jwks_cache_seconds)
            if time.monotonic() - self._fetched_at < fresh_for:
                return  # another request refreshed while this one waited for the lock
            try:
                async with httpx.AsyncClient(timeout=5.0, follow_redirects=False) as client:
                    response = await client.get(self._settings.jwks_url)
                    response.raise_for_status()
                    self._keys = _index_jwks(response.json())
            except (httpx.HTTPError, ValueError):
                pass  # keep serving the keys we had; an unknown kid stays a 401
            self._fetched_at = time.monotonic()


def _index_jwks(document: Any) -> dict[str, dict[str, Any]]:
    keys = document.get("keys", []) if isinstance(document, dict) else []
    return {k["kid"]: k for k in keys if isinstance(k, dict) and isinstance(k.get("kid"), str)}


class Authenticator:
    def __init__(self, settings: Settings, keys: Keys) -> None:
        self._settings = settings
        self._secret = keys.jwt_secret
        self._jwks = None if settings.uses_hmac else _JwksCache(settings)
        # With a JWKS, never remember a verification longer than the keys themselves are cached.
        self._verified = _VerifiedTokens(
            _VerifiedTokens.TTL_SECONDS if settings.uses_hmac
            else min(_VerifiedTokens.TTL_SECONDS, settings.jwks_cache_seconds)
        )
        self._options = {
            "require_aud": True, "require_iss": True, "require_exp": True, "require_sub": True,
            "leeway": settings.jwt_leeway_seconds,
        }

    async def principal(self, authorization: str | None) -> Principal:
        token = self._bearer_token(authorization)
        if (known := self._verified.get(token)) is not None:
            return known
        claims = await self._verified_claims(token)
        principal = _principal_from(claims)
        self._verified.put(token, principal, claims, self._settings.jwt_leeway_seconds)
        return principal

    def _bearer_token(self, authorization: str | None) -> str:
        if not authorization:
            raise Unauthorized("an Authorization: Bearer token is required", token_sent=False)
        if len(authorization) > self._settings.max_auth_header_bytes:
            raise Unauthorized("the Authorization header is too large")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <token>'", token_sent=False)
        return token.strip()

    async def _verified_claims(self, token: str) -> dict[str, Any]:
        if not COMPACT_JWS.fullmatch(token):
            raise Unauthorized("the token is not three base64url segments")
        if not canonical_base64url(token.rsplit(".", 1)[1]):
            raise Unauthorized("the token's signature is not in canonical base64url")
        try:
            header = jws.unverified_header(token)
            algorithm = header.get("alg")
            if algorithm not in self._settings.jwt_algorithms:
                raise Unauthorized("the token's algorithm is not allowed")
            if "crit" in header:  # RFC 7515 §4.1.11: we understand no extension, so none may be critical
                raise Unauthorized("the token's critical header extensions are not understood")
            key = await self._key_for(algorithm, header.get("kid"))
            claims = jws.decode(
                token, key, algorithm=algorithm, audience=self._settings.jwt_audience,
                issuer=self._settings.jwt_issuer, options=self._options,
            )
        except Unauthorized:
            raise
        except jws.TokenExpired as exc:
            raise Unauthorized("the token has expired") from exc
        except jws.ClaimsRejected as exc:
            raise Unauthorized(f"the token's claims are not accepted: {exc}") from exc
        # jws turns everything jose raises into a TokenError; the plain Python errors are for garbage
        # met here, outside jose (an unhashable alg, a JWKS key of odd types): a bad token, never a 500.
        except (jws.TokenError, ValueError, TypeError, KeyError, OverflowError, AttributeError,
                RecursionError) as exc:
            raise Unauthorized("the token is not valid") from exc
        _check_times(claims, self._settings.jwt_leeway_seconds)
        return claims

    async def _key_for(self, algorithm: str, kid: Any) -> Any:
        if algorithm in HMAC_ALGORITHMS:
            return self._secret
        assert self._jwks is not None
        if not isinstance(kid, str) or not kid or len(kid) > MAX_KID_LENGTH:
            raise Unauthorized("the token needs a known 'kid'")
        key = await self._jwks.key_for(kid)
        if key is None:
            raise Unauthorized("the token's 'kid' is unknown")
        if key.get("kty") != _KEY_TYPES[algorithm[:2]] or not _same_algorithm(key.get("alg", algorithm),
                                                                              algorithm):
            raise Unauthorized("the token's algorithm does not match its key")
        if algorithm in EDDSA_NAMES and key.get("crv") != "Ed25519":
            raise Unauthorized("the token's algorithm does not match its key")
        return key


def _same_algorithm(key_algorithm: Any, token_algorithm: str) -> bool:
    """A JWK's `alg` against the token's: "EdDSA" and "Ed25519" are one for an Ed25519 key."""
    return key_algorithm == token_algorithm or {key_algorithm, token_algorithm} <= EDDSA_NAMES


class _VerifiedTokens:
    """Principals of tokens verified in the last minute, so a client sending the same token on every
    request pays for one signature check, not one per request (jose's is ~100 us of Python).

    Only successful verifications are remembered, keyed by the exact token; a hit is still refused
    outside the token's own exp/nbf window, and a key withdrawn from the JWKS stops working once
    the JWKS cache has let it go and `ttl_seconds` more have passed.
    """

    TTL_SECONDS = 60.0
    MAX_TOKENS = 10_000

    def __init__(self, ttl_seconds: float) -> None:
        self._ttl_seconds = ttl_seconds
        self._by_token: dict[str, tuple[Principal, float, float]] = {}

    def get(self, token: str) -> Principal | None:
        known = self._by_token.get(token)
        if known is None:
            return None
        principal, valid_from, valid_until = known
        if not valid_from <= time.time() < valid_until:
            del self._by_token[token]
            return None
        return principal

    def put(self, token: str, principal: Principal, claims: dict[str, Any], leeway: int) -> None:
        if len(self._by_token) >= self.MAX_TOKENS:
            self._by_token.pop(next(iter(self._by_token)))  # the oldest: dicts keep insertion order
        now = time.time()
        valid_until = min(now + self._ttl_seconds, claims["exp"] + leeway)
        valid_from = claims.get("nbf", now) - leeway
        self._by_token[token] = (principal, valid_from, valid_until)


def _check_times(claims: dict[str, Any], leeway: int) -> None:
    """What jose lets through: int() of any string ("exp": "1893456000"), no upper bound (an exp of
    1e20 never expires), and an iat in the future. RFC 7519 §2: a NumericDate is a JSON number."""
    for name in ("exp", "nbf", "iat"):
        value = claims.get(name)
        if name in claims and (
            isinstance(value, bool) or not isinstance(value, int | float)
            or not 0 <= value <= MAX_NUMERIC_DATE
        ):
            raise Unauthorized(f"the token's '{name}' is not a valid NumericDate")
    now = time.time()
    if "iat" in claims and claims["iat"] > now + leeway:
        raise Unauthorized("the token's 'iat' is in the future")
    # jose compares with whole seconds, so it still takes a token in the second of its exp.
    if "exp" in claims and now >= claims["exp"] + leeway:
        raise Unauthorized("the token has expired")


def _principal_from(claims: dict[str, Any]) -> Principal:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT_LENGTH:
        raise Unauthorized("the token's 'sub' must be a non-empty string")
    try:
        valid_unicode(subject)  # what an id in a request body must be: the subject is compared with them
    except ValueError as exc:
        raise Unauthorized(f"the token's 'sub' {exc}") from exc
    raw_roles = claims.get("roles")
    roles = frozenset(
        Role(r) for r in (raw_roles if isinstance(raw_roles, list) else [])
        if isinstance(r, str) and r in Role.__members__.values()
    )
    jurisdiction = claims.get("jurisdiction")
    # On a regulator's token, present means limited: a null or unassigned code is refused, never
    # read as "no limit". Other roles have no use for it: null there is no claim at all.
    present = jurisdiction is not None or ("jurisdiction" in claims and Role.REGULATOR in roles)
    if present and not (
        isinstance(jurisdiction, str) and JURISDICTION.fullmatch(jurisdiction) and is_country(jurisdiction)
    ):
        raise Forbidden("the 'jurisdiction' claim must be an ISO 3166-1 alpha-2 code")
    expires_at = claims.get("exp")
    return Principal(subject=subject, roles=roles, jurisdiction=jurisdiction,
                     expires_at=float(expires_at) if isinstance(expires_at, int | float) else None)


def mint_token(
    settings: Settings, keys: Keys, *, role: str, subject: str, ttl_seconds: int,
    jurisdiction: str | None = None,
) -> str:
    """A development token signed with the HS256 secret (the `seenby token` command)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer, "aud": settings.jwt_audience, "sub": subject,
        "roles": [role], "iat": now, "exp": now + ttl_seconds,
    }
    if jurisdiction:
        claims["jurisdiction"] = jurisdiction
    return jws.sign_hs256(claims, keys.jwt_secret)


async def authenticate(request: Request) -> Principal:
    authenticator: Authenticator = request.app.state.authenticator
    principal = await authenticator.principal(request.headers.get("authorization"))
    request.app.state.rate_limiter.check(principal.subject)
    return principal


class RoleRequirement:
    """A dependency that lets through a token holding any of `roles` (403 otherwise). A class, so that
    the OpenAPI document can read each operation's roles off its dependencies."""

    def __init__(self, *roles: Role) -> None:
        self.roles = roles

    async def __call__(self, principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not principal.roles & set(self.roles):
            held = ", ".join(sorted(principal.roles)) or "no recognised role"
            raise Forbidden(f"this endpoint is for roles: {', '.join(self.roles)}; the token has: {held}")
        return principal


def require(*allowed: Role) -> Any:
    return Depends(RoleRequirement(*allowed))


ServicePrincipal = Annotated[Principal, require(Role.SERVICE)]
ReaderPrincipal = Annotated[Principal, require(Role.CUSTOMER, Role.REGULATOR)]
CustomerPrincipal = Annotated[Principal, require(Role.CUSTOMER)]
RegulatorPrincipal = Annotated[Principal, require(Role.REGULATOR)]
AdminPrincipal = Annotated[Principal, require(Role.ADMIN)]
