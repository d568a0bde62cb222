"""The clip store's ticket check: one good ticket passes once; every forged, misaddressed, stale or
replayed one is refused naming its check; keys come from the JWKS only, fetched sparingly."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service import jws
from service.auth import mint_token
from service.keys import load_keys
from service.tickets.check import (
    MAX_TICKET_BYTES,
    Jwks,
    MemoryReplayStore,
    ReplayStore,
    ReplayStoreFull,
    TicketChecker,
    TicketRefused,
)
from tests.conftest import base_settings
from tests.servers import RecordingServer, recording_server
from tests.tickets.minting import (
    AUDIENCE,
    CLIP,
    DROP,
    ISSUER,
    FromNow,
    b64url,
    eddsa_signer,
    forge,
    header_of,
    hmac_signer,
    jwks_of,
    mint,
    segment,
    ticket_claims,
    with_payload,
)

SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def checker_over(
    jwks: Jwks | Ed25519PrivateKey, replay: ReplayStore | None = None, leeway: int = 30
) -> TicketChecker:
    """A checker for the tests' issuer and audience; a key stands for a JWKS of that key alone."""
    if isinstance(jwks, Ed25519PrivateKey):
        jwks = Jwks(document=jwks_of(jwks))
    replay = MemoryReplayStore() if replay is None else replay  # an empty MemoryReplayStore is falsy
    return TicketChecker(ISSUER, AUDIENCE, jwks, replay, leeway_seconds=leeway)


@pytest.fixture
def checker(key: Ed25519PrivateKey) -> TicketChecker:
    return checker_over(key)


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    with recording_server() as running:
        yield running


async def refused(checker: TicketChecker, ticket: str, *, clip_id: str = CLIP, action: str = "view") -> str:
    with pytest.raises(TicketRefused) as caught:
        await checker.check(ticket, clip_id=clip_id, action=action)
    return caught.value.check


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


# --- the good ticket ------------------------------------------------------------------------------

async def test_a_valid_ticket_passes_once(checker: TicketChecker, key: Ed25519PrivateKey) -> None:
    claims = ticket_claims()
    ticket = jws.sign_eddsa(claims, key, typ="seenby-ticket+jwt")
    assert await checker.check(ticket, clip_id=CLIP, action="view") == claims
    assert await refused(checker, ticket) == "replay"


async def test_a_fresh_ticket_for_the_same_entry_is_still_a_replay(
    checker: TicketChecker, key: Ed25519PrivateKey
) -> None:
    # seenby answers a replayed event with a fresh ticket for the same entry: same jti, one use.
    await checker.check(mint(key, jti="6f1c2a9e-3b0d-4c8e-9a57-0c1d2e3f4a5b"), clip_id=CLIP, action="view")
    again = mint(key, jti="6f1c2a9e-3b0d-4c8e-9a57-0c1d2e3f4a5b", iat=int(time.time()) + 1)
    assert await refused(checker, again) == "replay"


@pytest.mark.parametrize("overrides", [
    {"aud": [AUDIENCE]}, {"aud": ["another-store", AUDIENCE]},
    {"exp": FromNow(-10), "iat": FromNow(-300)},  # expired within the 30 s leeway
    {"iat": FromNow(20)},  # issued by a clock 20 s ahead
    {"action": "download"},
])
async def test_tickets_within_the_rules_pass(
    checker: TicketChecker, key: Ed25519PrivateKey, overrides: dict[str, Any]
) -> None:
    action = overrides.get("action", "view")
    assert (await checker.check(mint(key, **overrides), clip_id=CLIP, action=action))["clip_id"] == CLIP


@pytest.mark.parametrize("typ", ["application/seenby-ticket+jwt", "Seenby-Ticket+JWT"])
async def test_typ_is_a_media_type_compared_without_case(
    checker: TicketChecker, key: Ed25519PrivateKey, typ: str
) -> None:
    ticket = forge(header_of(key, typ=typ), ticket_claims(), eddsa_signer(key))
    assert (await checker.check(ticket, clip_id=CLIP, action="view"))["clip_id"] == CLIP


# --- misaddressed, stale ------------------------------------------------------------------------

async def test_a_ticket_for_another_clip_or_action_is_refused(
    checker: TicketChecker, key: Ed25519PrivateKey
) -> None:
    assert await refused(checker, mint(key), clip_id="clip-other") == "clip_id"
    assert await refused(checker, mint(key), action="download") == "action"
    assert await refused(checker, mint(key, action="download")) == "action"


@pytest.mark.parametrize(("overrides", "check"), [
    ({"aud": "another-store"}, "aud"),
    ({"aud": ["another-store"]}, "aud"),
    ({"aud": []}, "aud"),
    ({"aud": AUDIENCE.upper()}, "aud"),
    ({"aud": DROP}, "aud"),
    ({"aud": {"name": AUDIENCE}}, "aud"),
    ({"iss": "https://evil.example"}, "iss"),
    ({"iss": DROP}, "malformed"),
    ({"exp": FromNow(-31), "iat": FromNow(-300)}, "exp"),
    ({"exp": DROP}, "exp"),
    ({"exp": "300"}, "exp"),
    ({"exp": 1e20}, "exp"),
    ({"exp": True}, "exp"),
    ({"exp": FromNow(7200)}, "exp"),  # longer than any ticket lives
    ({"exp": FromNow(-1), "iat": FromNow(0)}, "exp"),  # expires before it is issued
    ({"iat": FromNow(60), "exp": FromNow(360)}, "iat"),
    ({"iat": DROP}, "iat"),
    ({"iat": "now"}, "iat"),
    ({"nbf": FromNow(60)}, "iat"),
    ({"clip_id": DROP}, "malformed"),
    ({"clip_id": [CLIP]}, "malformed"),
    ({"action": DROP}, "malformed"),
    ({"jti": DROP}, "malformed"),
    ({"jti": ""}, "malformed"),
    ({"jti": 12345}, "malformed"),
    ({"jti": "j" * 129}, "malformed"),
    ({"sub": DROP}, "malformed"),
    ({"entry_hash": DROP}, "malformed"),
    ({"purpose": DROP}, "malformed"),
    ({"media": "video"}, "malformed"),
    ({"customer_seq": True}, "malformed"),
    ({"customer_seq": "17"}, "malformed"),
])
async def test_a_ticket_with_a_wrong_or_missing_claim_is_refused(
    checker: TicketChecker, key: Ed25519PrivateKey, overrides: dict[str, Any], check: str
) -> None:
    assert await refused(checker, mint(key, **overrides)) == check


# --- forged ---------------------------------------------------------------------------------------

async def test_a_kid_not_in_the_jwks_is_refused(checker: TicketChecker) -> None:
    assert await refused(checker, mint(Ed25519PrivateKey.generate())) == "kid"


async def test_the_real_kid_with_another_keys_signature_is_refused(
    checker: TicketChecker, key: Ed25519PrivateKey
) -> None:
    forged = forge(header_of(key), ticket_claims(), eddsa_signer(Ed25519PrivateKey.generate()))
    assert await refused(checker, forged) == "signature"


async def test_a_changed_claim_under_the_old_signature_is_refused(
    checker: TicketChecker, key: Ed25519PrivateKey
) -> None:
    claims = ticket_claims(clip_id="clip-other")
    ticket = jws.sign_eddsa(claims, key, typ="seenby-ticket+jwt")
    assert await refused(checker, with_payload(ticket, {**claims, "clip_id": CLIP})) == "signature"
    assert await refused(checker, with_payload(ticket, {**claims, "exp": claims["exp"] + 60}),
                         clip_id="clip-other") == "signature"


@pytest.mark.parametrize("secret", ["raw", "jwk", "pem", "der", "x"])
async def test_hs256_signed_with_the_public_key_is_refused(
    checker: TicketChecker, key: Ed25519PrivateKey, secret: str
) -> None:
    public = key.public_key()
    secrets = {
        "raw": raw_public(key),
        "jwk": json.dumps(jws.public_jwk(public)).encode(),
        "pem": public.public_bytes(serialization.Encoding.PEM, SPKI),
        "der": public.public_bytes(serialization.Encoding.DER, SPKI),
        "x": jws.public_jwk(public)["x"].encode(),
    }
    forged = forge(header_of(key, alg="HS256"), ticket_claims(), hmac_signer(secrets[secret]))
    assert await refused(checker, forged) == "alg"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "", None, "Ed25519", "eddsa", "ES256", "RS256",
                                 "HS512", ["EdDSA"]])
async def test_any_alg_but_eddsa_is_refused(
    checker: TicketChecker, key: Ed25519PrivateKey, alg: Any
) -> None:
    unsigned = f"{segment(header_of(key, alg=alg))}.{segment(ticket_claims())}."
    signed = forge(header_of(key, alg=alg), ticket_claims(), eddsa_signer(key))
    assert await refused(checker, unsigned) == "alg"
    assert await refused(checker, signed) == "alg"


@pytest.mark.parametrize(("header", "check"), [
    *(({"kid": kid}, "kid") for kid in (DROP, "", 7, ["a"], "k" * 201)),
    *(({"typ": typ}, "typ")
      for typ in (DROP, "JWT", "jwt", "at+jwt", "seenby-ticket", "seenby-ticket+jwt ", 1)),
])
async def test_a_header_without_a_usable_kid_or_the_ticket_type_is_refused(
    checker: TicketChecker, key: Ed25519PrivateKey, header: dict[str, Any], check: str
) -> None:
    # Signed by the ticket key itself: only the header tells it from a ticket (RFC 8725 §3.11).
    ticket = forge(header_of(key, **header), ticket_claims(), eddsa_signer(key))
    assert await refused(checker, ticket) == check


async def test_a_bearer_style_token_is_refused_even_from_the_ticket_key(
    checker: TicketChecker, key: Ed25519PrivateKey
) -> None:
    api_style = {"iss": ISSUER, "aud": AUDIENCE, "sub": "svc", "roles": ["service"],
                 "iat": int(time.time()), "exp": int(time.time()) + 300}
    assert await refused(checker, jws.sign_eddsa(api_style, key, typ="JWT")) == "typ"


async def test_an_api_token_from_seenbys_auth_is_refused(tmp_path: Path) -> None:
    settings = base_settings(tmp_path)
    keys = load_keys(settings)
    checker = checker_over(keys.ticket_key)
    token = mint_token(settings, keys, role="service", subject="clip-pipeline", ttl_seconds=300)
    assert await refused(checker, token) == "alg"


async def test_embedded_keys_and_key_urls_are_never_used(
    key: Ed25519PrivateKey, server: RecordingServer
) -> None:
    attacker = Ed25519PrivateKey.generate()
    embedded = {
        "jwk": jws.public_jwk(attacker.public_key()),
        "jku": f"{server.base_url}/jku.json", "x5u": f"{server.base_url}/x5u.pem",
        "x5c": [b64url(raw_public(attacker))],
    }
    server.document = jwks_of(attacker)
    with recording_server(jwks_of(key)) as seenby:
        for jwks in (Jwks(document=jwks_of(key)), Jwks(url=seenby.url)):
            checker = checker_over(jwks)
            own_kid = forge(header_of(attacker, **embedded), ticket_claims(), eddsa_signer(attacker))
            real_kid = forge(header_of(key, **embedded), ticket_claims(), eddsa_signer(attacker))
            assert await refused(checker, own_kid) == "kid"
            assert await refused(checker, real_kid) == "signature"
        assert seenby.paths == ["/v1/tickets/jwks.json"]
    assert server.paths == []


@pytest.mark.parametrize("ticket", [
    "", "x", "a.b", "a.b.c.d", "a.b.", ".b.c", "a b.c.d", "e30.e30.e30", "W10.e30.AAAA",
    "eyJhbGciOiJFZERTQSJ9.e30.AAAA=", "e" * (MAX_TICKET_BYTES + 1),
])
async def test_malformed_tickets_are_refused(checker: TicketChecker, ticket: str) -> None:
    assert await refused(checker, ticket) in {"malformed", "alg"}


async def test_one_ticket_has_one_spelling(checker: TicketChecker, key: Ed25519PrivateKey) -> None:
    ticket = mint(key)
    # The last character of a 64-byte signature carries 4 unused bits: another spelling, same bytes.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    other = ticket[:-1] + alphabet[alphabet.index(ticket[-1]) | 1]
    for spelling in (other, ticket + "=", ticket + "*", f" {ticket}"):
        assert await refused(checker, spelling) == "malformed"
    await checker.check(ticket, clip_id=CLIP, action="view")


async def test_critical_header_extensions_and_duplicate_claims_are_refused(
    checker: TicketChecker, key: Ed25519PrivateKey
) -> None:
    crit = forge(header_of(key, crit=["exp"]), ticket_claims(), eddsa_signer(key))
    assert await refused(checker, crit) == "malformed"
    body = json.dumps(ticket_claims(clip_id="clip-other"))[:-1] + f', "clip_id": "{CLIP}"}}'
    duplicated = forge(header_of(key), body.encode(), eddsa_signer(key))
    assert await refused(checker, duplicated) == "malformed"


async def test_a_refused_ticket_does_not_use_up_its_jti(
    checker: TicketChecker, key: Ed25519PrivateKey
) -> None:
    jti = "6f1c2a9e-3b0d-4c8e-9a57-0c1d2e3f4a5b"
    attempts = [
        forge(header_of(key), ticket_claims(jti=jti), eddsa_signer(Ed25519PrivateKey.generate())),
        mint(key, jti=jti, clip_id="clip-other"),
        mint(key, jti=jti, aud="another-store"),
        mint(key, jti=jti, exp=int(time.time()) - 100, iat=int(time.time()) - 400),
        mint(key, jti=jti, action="download"),
    ]
    for attempt in attempts:
        assert await refused(checker, attempt) != "replay"
    await checker.check(mint(key, jti=jti), clip_id=CLIP, action="view")


async def test_concurrent_uses_of_one_ticket_pass_once(
    checker: TicketChecker, key: Ed25519PrivateKey
) -> None:
    ticket = mint(key)
    outcomes = await asyncio.gather(
        *(checker.check(ticket, clip_id=CLIP, action="view") for _ in range(20)), return_exceptions=True
    )
    assert sum(isinstance(outcome, dict) for outcome in outcomes) == 1
    assert {outcome.check for outcome in outcomes if isinstance(outcome, TicketRefused)} == {"replay"}


@pytest.mark.parametrize("leeway", [31, 300, -1])
def test_a_leeway_beyond_30_seconds_is_refused(key: Ed25519PrivateKey, leeway: int) -> None:
    with pytest.raises(ValueError):
        checker_over(key, leeway=leeway)


async def test_leeway_zero_is_strict(key: Ed25519PrivateKey) -> None:
    checker = checker_over(key, leeway=0)
    now = int(time.time())
    assert await refused(checker, mint(key, iat=now - 300, exp=now - 1)) == "exp"
    assert await refused(checker, mint(key, iat=now + 5, exp=now + 300)) == "iat"


# --- the replay store -----------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_the_memory_store_forgets_a_jti_only_after_its_expiry() -> None:
    clock = Clock()
    store = MemoryReplayStore(clock=clock)
    assert await store.first_use("a", 1_000_100)
    clock.now = 1_000_100.0
    assert not await store.first_use("a", 1_000_100)
    clock.now = 1_000_101.0
    assert await store.first_use("b", 1_000_200)
    assert len(store) == 1  # "a" has gone
    assert await store.first_use("a", 1_000_300)


async def test_the_memory_store_is_bounded_and_refuses_when_full(key: Ed25519PrivateKey) -> None:
    clock = Clock()
    store = MemoryReplayStore(max_entries=3, clock=clock)
    for jti in "abc":
        assert await store.first_use(jti, 1_000_050)
    with pytest.raises(ReplayStoreFull):
        await store.first_use("d", 1_000_050)
    assert len(store) == 3
    clock.now = 1_000_051.0
    assert await store.first_use("d", 1_000_100)
    assert len(store) == 1

    full = MemoryReplayStore(max_entries=1)
    checker = checker_over(key, full)
    await checker.check(mint(key), clip_id=CLIP, action="view")
    assert await refused(checker, mint(key)) == "replay"


async def test_the_checker_keeps_a_jti_until_the_ticket_expires_with_leeway(key: Ed25519PrivateKey) -> None:
    remembered: list[tuple[str, int]] = []

    class Recording:
        async def first_use(self, jti: str, expires_at: int) -> bool:
            remembered.append((jti, expires_at))
            return True

    checker = checker_over(key, Recording(), leeway=10)
    claims = await checker.check(mint(key, exp=int(time.time()) + 99), clip_id=CLIP, action="view")
    assert remembered == [(claims["jti"], claims["exp"] + 10)]


# --- the JWKS -------------------------------------------------------------------------------------

def test_only_ed25519_signature_keys_under_their_thumbprint_are_kept(key: Ed25519PrivateKey) -> None:
    other = Ed25519PrivateKey.generate()
    good = jws.public_jwk(key.public_key())
    no_kid = {k: v for k, v in jws.public_jwk(other.public_key()).items() if k != "kid"}
    document = {"keys": [
        good, no_kid,
        {**jws.public_jwk(Ed25519PrivateKey.generate().public_key()), "kid": "chosen-by-hand"},
        {**jws.public_jwk(Ed25519PrivateKey.generate().public_key()), "use": "enc"},
        {"kty": "RSA", "kid": "rsa", "n": "AQAB", "e": "AQAB"},
        {"kty": "oct", "kid": "hmac", "k": b64url(b"s" * 32)},
        "not a key", None, 7,
    ]}
    assert Jwks(document=document).kids == {good["kid"], jws.thumbprint(other.public_key())}


@pytest.mark.parametrize("document", [[], {"keys": {}}, {}, {"keys": "x"}])
def test_a_jwks_file_that_is_not_a_jwks_fails_at_start_up(tmp_path: Path, document: Any) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError):
        Jwks.from_file(path)


def test_a_jwks_comes_from_a_url_or_a_document() -> None:
    with pytest.raises(ValueError):
        Jwks()
    with pytest.raises(ValueError):
        Jwks(url="http://127.0.0.1:1/jwks.json", document={"keys": []})


async def warmed_up(server: RecordingServer, key: Ed25519PrivateKey, *, min_refetch_seconds: float
                    ) -> TicketChecker:
    """A checker on the server's JWKS (holding `key`), which has fetched it for a first ticket."""
    server.document = jwks_of(key)
    checker = checker_over(Jwks(url=server.url, min_refetch_seconds=min_refetch_seconds))
    await checker.check(mint(key), clip_id=CLIP, action="view")
    return checker


async def test_unknown_kids_refetch_the_jwks_at_most_once_per_interval(
    key: Ed25519PrivateKey, server: RecordingServer
) -> None:
    checker = await warmed_up(server, key, min_refetch_seconds=0.5)
    assert server.requests == 1

    random_kids = [mint(Ed25519PrivateKey.generate()) for _ in range(30)]
    for ticket in random_kids:
        assert await refused(checker, ticket) == "kid"
    assert server.requests == 1  # within the interval: not one fetch for a random kid

    await asyncio.sleep(0.55)
    outcomes = await asyncio.gather(*(refused(checker, ticket) for ticket in random_kids))
    assert set(outcomes) == {"kid"}
    assert server.requests == 2  # thirty concurrent unknown kids after the interval: one fetch


async def test_a_new_key_is_found_after_the_interval(key: Ed25519PrivateKey, server: RecordingServer) -> None:
    new_key = Ed25519PrivateKey.generate()
    server.document = jwks_of(key)
    checker = checker_over(Jwks(url=server.url, min_refetch_seconds=0.3))
    assert await refused(checker, mint(new_key)) == "kid"
    server.document = jwks_of(key, new_key)
    assert await refused(checker, mint(new_key)) == "kid"  # too soon to ask again
    await asyncio.sleep(0.35)
    await checker.check(mint(new_key), clip_id=CLIP, action="view")
    assert server.requests == 2


async def test_a_slow_fetch_for_an_unknown_kid_does_not_hold_up_known_keys(
    key: Ed25519PrivateKey, server: RecordingServer
) -> None:
    checker = await warmed_up(server, key, min_refetch_seconds=0.0)
    server.delay = 1.0
    unknown = asyncio.create_task(refused(checker, mint(Ed25519PrivateKey.generate())))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await checker.check(mint(key), clip_id=CLIP, action="view")
    assert time.monotonic() - started < 0.5
    assert await unknown == "kid"


async def test_the_default_interval_is_thirty_seconds(
    key: Ed25519PrivateKey, server: RecordingServer
) -> None:
    server.document = jwks_of(key)
    checker = checker_over(Jwks(url=server.url))
    for _ in range(5):
        assert await refused(checker, mint(Ed25519PrivateKey.generate())) == "kid"
    await checker.check(mint(key), clip_id=CLIP, action="view")
    assert server.requests == 1


async def test_stale_keys_are_refetched_so_a_retired_key_leaves(
    key: Ed25519PrivateKey, server: RecordingServer
) -> None:
    retired = Ed25519PrivateKey.generate()
    server.document = jwks_of(key, retired)
    jwks = Jwks(url=server.url, min_refetch_seconds=0.1, max_age_seconds=0.3)
    checker = checker_over(jwks)
    await checker.check(mint(retired), clip_id=CLIP, action="view")
    server.document = jwks_of(key)
    await asyncio.sleep(0.35)
    assert await refused(checker, mint(retired)) == "kid"
    await checker.check(mint(key), clip_id=CLIP, action="view")


@pytest.mark.parametrize("failure", [
    "status", "redirect", "not-json", "not-a-jwks", "too-large", "too-large-unannounced", "slow", "drip",
])
async def test_a_failed_fetch_keeps_the_known_keys_and_waits_for_the_interval(
    key: Ed25519PrivateKey, server: RecordingServer, failure: str
) -> None:
    server.document = jwks_of(key)
    jwks = Jwks(url=server.url, min_refetch_seconds=0.4, timeout_seconds=0.5, max_bytes=4096)
    checker = checker_over(jwks)
    await checker.check(mint(key), clip_id=CLIP, action="view")

    with recording_server(jwks_of(Ed25519PrivateKey.generate())) as elsewhere:
        if failure == "status":
            server.status = 500
        elif failure == "redirect":
            server.status, server.headers = 302, {"Location": elsewhere.url}
        elif failure == "not-json":
            server.body = b"<html>"
        elif failure.startswith("too-large"):
            server.document = {"keys": [jws.public_jwk(key.public_key())] * 40}
            server.send_length = failure == "too-large"
        elif failure == "not-a-jwks":
            server.document = ["keys"]
        elif failure == "slow":
            server.delay = 2.0
        elif failure == "drip":  # each byte well within the read timeout, the whole far beyond it
            server.drip = 0.05
        await asyncio.sleep(0.45)
        started = time.monotonic()
        assert await refused(checker, mint(Ed25519PrivateKey.generate())) == "kid"
        assert time.monotonic() - started < 1.5  # the slow server costs the timeout, no more
        await checker.check(mint(key), clip_id=CLIP, action="view")  # the known key still works
        assert await refused(checker, mint(Ed25519PrivateKey.generate())) == "kid"
        assert server.requests == 2
        assert elsewhere.paths == []


# --- no service in the clip store -----------------------------------------------------------------

_NO_DATABASE = ("sqlalchemy", "sqlmodel", "asyncpg", "aiosqlite", "service.db", "service.main",
                "service.settings", "service.errors", "service.auth")


@pytest.mark.parametrize(("module", "banned"), [
    ("service.tickets.check", (*_NO_DATABASE, "fastapi", "starlette", "pydantic")),
    ("service.tickets.clip_store", _NO_DATABASE),  # the FastAPI dependency: a clip store is a web app
])
def test_the_clip_store_side_imports_no_database_and_no_settings(
    module: str, banned: tuple[str, ...]
) -> None:
    program = (f"import sys, {module}\n"
               f"print(sorted(m for m in sys.modules if m.startswith({banned!r})))\n")
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.stdout.strip() == "[]"
