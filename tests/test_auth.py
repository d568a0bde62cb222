"""Bearer tokens over HTTP: every forged, malformed or misaddressed token is a 401, every wrong role a 403."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from jose import jwt

from service.auth import Authenticator
from service.errors import PROBLEM_JSON, Unauthorized
from service.keys import load_keys
from service.main import create_app
from service.openapi import openapi_document
from service.settings import Settings
from tests.conftest import Backend, Tokens, base_settings, serve
from tests.factories import access_event

ME = "/v1/me/accesses"
DROP: Any = object()  # as a claim's value: leave the claim out
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | Ed25519PrivateKey


# --- building tokens by hand ---------------------------------------------------------------------

def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: Any) -> str:
    """A JSON value, or raw bytes as they are, as one base64url token segment."""
    return b64url(value if isinstance(value, bytes) else json.dumps(value).encode())


def hmac_token(secret: bytes, header: Any, payload: Any, digest: Any = hashlib.sha256) -> str:
    signing_input = f"{segment(header)}.{segment(payload)}"
    return f"{signing_input}.{b64url(hmac.new(secret, signing_input.encode(), digest).digest())}"


def eddsa_token(key: Ed25519PrivateKey, payload: Any, **header: Any) -> str:
    signing_input = f"{segment({'alg': 'EdDSA', 'typ': 'JWT', **header})}.{segment(payload)}"
    return f"{signing_input}.{b64url(key.sign(signing_input.encode()))}"


def signed(key: PrivateKey, payload: dict[str, Any], **header: Any) -> str:
    """RS256, ES256 or EdDSA according to the key; jose signs the first two."""
    if isinstance(key, Ed25519PrivateKey):
        return eddsa_token(key, payload, **header)
    algorithm = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return jwt.encode(payload, pem.decode(), algorithm=algorithm, headers=header)


def with_payload(token: str, payload: dict[str, Any]) -> str:
    """The same header and signature around another payload."""
    header, _, signature = token.split(".")
    return f"{header}.{segment(payload)}.{signature}"


def _uint(value: int, length: int | None = None) -> str:
    return b64url(value.to_bytes(length or (value.bit_length() + 7) // 8, "big"))


def public_jwk(key: PrivateKey, kid: str) -> dict[str, Any]:
    match key:
        case rsa.RSAPrivateKey():
            numbers = key.public_key().public_numbers()
            return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                    "n": _uint(numbers.n), "e": _uint(numbers.e)}
        case ec.EllipticCurvePrivateKey():
            point = key.public_key().public_numbers()
            return {"kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256",
                    "x": _uint(point.x, 32), "y": _uint(point.y, 32)}
        case Ed25519PrivateKey():
            raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return {"kty": "OKP", "kid": kid, "use": "sig", "alg": "EdDSA", "crv": "Ed25519",
                    "x": b64url(raw)}
    raise TypeError(key)


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def public_der(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


@cache
def attacker_rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def claims(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Claims the app accepts for a customer, with some replaced (or left out, as DROP)."""
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": settings.jwt_issuer, "aud": settings.jwt_audience, "sub": "cust-auth-1",
        "roles": ["customer"], "iat": now, "exp": now + 600,
    }
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not DROP}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- what the answers must look like -------------------------------------------------------------

def assert_401(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["status"] == 401


def assert_403(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["status"] == 403


@dataclass(frozen=True)
class Hmac:
    """The HS256 app (the development default) and its own secret."""

    settings: Settings
    secret: bytes

    def claims(self, **overrides: Any) -> dict[str, Any]:
        return claims(self.settings, **overrides)

    def token(self, payload: Any = None, **header: Any) -> str:
        payload = self.claims() if payload is None else payload
        return hmac_token(self.secret, {"alg": "HS256", "typ": "JWT", **header}, payload)


@pytest.fixture
def hs(app: FastAPI) -> Hmac:
    return Hmac(app.state.settings, app.state.keys.jwt_secret.encode())


# --- the HS256 app: good tokens (the controls that make the 401s mean something) -----------------

async def test_good_tokens_are_accepted(client: httpx.AsyncClient, hs: Hmac) -> None:
    by_jose = jwt.encode(hs.claims(), hs.secret.decode(), algorithm="HS256")
    for headers in (bearer(hs.token()), bearer(by_jose), {"Authorization": f"bearer {by_jose}"}):
        response = await client.get(ME, headers=headers)
        assert response.status_code == 200, response.text


# --- the HS256 app: forged and broken tokens ----------------------------------------------------

def _payload_altered(hs: Hmac) -> str:
    return with_payload(hs.token(), hs.claims(roles=["regulator"], sub="regulator-1"))


def _signature_in_standard_alphabet(hs: Hmac) -> str:
    """A valid token whose signature is respelled with '+' and '/' (base64, not base64url)."""
    for attempt in range(200):
        header, payload, signature = hs.token(hs.claims(jti=str(attempt))).split(".")
        if "-" in signature or "_" in signature:
            respelled = signature.translate(str.maketrans("-_", "+/"))
            return f"{header}.{payload}.{respelled}"
    raise AssertionError("no signature with '-' or '_' in 200 tries")


FORGED: dict[str, Callable[[Hmac], str]] = {
    # algorithms outside the allow-list, even with the right secret
    "alg-HS384": lambda hs: hmac_token(hs.secret, {"alg": "HS384"}, hs.claims(), hashlib.sha384),
    "alg-HS512": lambda hs: hmac_token(hs.secret, {"alg": "HS512"}, hs.claims(), hashlib.sha512),
    "alg-hs256-lowercase": lambda hs: hs.token(alg="hs256"),
    "alg-missing": lambda hs: hmac_token(hs.secret, {"typ": "JWT"}, hs.claims()),
    "alg-empty": lambda hs: hs.token(alg=""),
    "alg-a-list": lambda hs: hs.token(alg=["HS256"]),
    "alg-RS256-attacker-key": lambda hs: signed(attacker_rsa(), hs.claims()),
    # signatures
    "payload-altered-old-signature": _payload_altered,
    "signature-stripped": lambda hs: hs.token().rsplit(".", 1)[0] + ".",
    "signature-truncated": lambda hs: hs.token()[:-6],
    "signature-of-another-token": lambda hs: (
        with_payload(hs.token(hs.claims(sub="cust-other")), hs.claims())
    ),
    "wrong-secret": lambda hs: hmac_token(secrets.token_bytes(32), {"alg": "HS256"}, hs.claims()),
    "empty-secret": lambda hs: hmac_token(b"", {"alg": "HS256"}, hs.claims()),
    "self-minted-regulator-wrong-key": lambda hs: jwt.encode(
        hs.claims(sub="regulator-1", roles=["regulator"]), secrets.token_hex(32), algorithm="HS256"
    ),
    "hs256-secret-is-public-pem": lambda hs: hmac_token(
        public_pem(attacker_rsa()), {"alg": "HS256"}, hs.claims()),
    "hs256-secret-is-public-der": lambda hs: hmac_token(
        public_der(attacker_rsa()), {"alg": "HS256"}, hs.claims()),
    "hs256-secret-is-public-jwk": lambda hs: hmac_token(
        json.dumps(public_jwk(attacker_rsa(), "k")).encode(), {"alg": "HS256"}, hs.claims()),
    # headers
    "embedded-jwk-rs256": lambda hs: signed(attacker_rsa(), hs.claims(),
                                             jwk=public_jwk(attacker_rsa(), "attacker")),
    "embedded-jwk-hs256-oct": lambda hs: hmac_token(
        b"attacker-secret-attacker-secret!", {"alg": "HS256", "jwk": {
            "kty": "oct", "k": b64url(b"attacker-secret-attacker-secret!")}}, hs.claims()),
    "crit-extension-not-understood": lambda hs: hs.token(crit=["urn:example:must-understand"],
                                                         **{"urn:example:must-understand": True}),
    "header-not-an-object": lambda hs: hmac_token(hs.secret, ["HS256"], hs.claims()),
    # structure
    "not-a-jwt": lambda hs: "not-a-jwt",
    "two-segments": lambda hs: hs.token().rsplit(".", 1)[0],
    "one-segment": lambda hs: hs.token().split(".")[1],
    "four-segments": lambda hs: hs.token() + "." + b64url(b"extra"),
    "empty-segments": lambda hs: "..",
    "header-bad-base64": lambda hs: "!!!." + hs.token().split(".", 1)[1],
    "payload-bad-base64": lambda hs: hs.token().replace(".", ".%%%", 1),
    "signature-bad-base64": lambda hs: hs.token() + "*",
    # the right signature, spelled otherwise: jose's decoder would skip the stray characters
    "signature-padded": lambda hs: hs.token() + "=",
    "signature-junk-characters": lambda hs: hs.token() + "****",
    "signature-standard-alphabet": _signature_in_standard_alphabet,
    "header-not-json": lambda hs: hmac_token(hs.secret, b"{alg: HS256}", hs.claims()),
    "payload-a-json-array": lambda hs: hs.token(["customer"]),
    "payload-a-json-string": lambda hs: hs.token("cust-auth-1"),
    "payload-a-number": lambda hs: hs.token(42),
    "payload-null": lambda hs: hs.token(b"null"),
    "payload-not-json": lambda hs: hs.token(b"roles=customer"),
    "payload-not-utf8": lambda hs: hs.token(b"\xff\xfe{}"),
    # a validly signed payload nested past the JSON parser's recursion limit
    "payload-deeply-nested": lambda hs: hs.token(b'{"x":' + b"[" * 2500 + b"]" * 2500 + b"}"),
}


@pytest.mark.parametrize("forge", FORGED.values(), ids=FORGED.keys())
async def test_forged_or_broken_token_is_401(
    client: httpx.AsyncClient, hs: Hmac, forge: Callable[[Hmac], str]
) -> None:
    assert_401(await client.get(ME, headers=bearer(forge(hs))))


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", ["", b64url(b"forged")], ids=["unsigned", "junk-signature"])
async def test_alg_none_is_401(client: httpx.AsyncClient, hs: Hmac, alg: str, signature: str) -> None:
    token = f"{segment({'alg': alg, 'typ': 'JWT'})}.{segment(hs.claims())}.{signature}"
    assert_401(await client.get(ME, headers=bearer(token)))


CLAIMS_401: list[Any] = [
    pytest.param(lambda now: {"exp": now - 3600}, id="exp-past"),
    pytest.param(lambda now: {"exp": DROP}, id="exp-missing"),
    pytest.param(lambda now: {"exp": "tomorrow"}, id="exp-a-word"),
    pytest.param(lambda now: {"exp": str(now + 600)}, id="exp-a-numeric-string"),
    pytest.param(lambda now: {"exp": 10**20}, id="exp-huge"),
    pytest.param(lambda now: {"exp": 1e300}, id="exp-huge-float"),
    pytest.param(lambda now: {"exp": float("inf")}, id="exp-infinity"),
    pytest.param(lambda now: {"exp": float("nan")}, id="exp-nan"),
    pytest.param(lambda now: {"exp": -1}, id="exp-negative"),
    pytest.param(lambda now: {"exp": True}, id="exp-a-boolean"),
    pytest.param(lambda now: {"exp": [now + 600]}, id="exp-a-list"),
    pytest.param(lambda now: {"nbf": now + 3600}, id="nbf-future"),
    pytest.param(lambda now: {"nbf": "soon"}, id="nbf-a-word"),
    pytest.param(lambda now: {"iat": now + 3600}, id="iat-future"),
    pytest.param(lambda now: {"iat": "yesterday"}, id="iat-a-word"),
    pytest.param(lambda now: {"aud": "someone-else"}, id="aud-wrong"),
    pytest.param(lambda now: {"aud": DROP}, id="aud-missing"),
    pytest.param(lambda now: {"aud": ["someone-else", "another"]}, id="aud-list-without-ours"),
    pytest.param(lambda now: {"aud": [1, {}]}, id="aud-list-of-non-strings"),
    pytest.param(lambda now: {"iss": "https://evil.example"}, id="iss-wrong"),
    pytest.param(lambda now: {"iss": DROP}, id="iss-missing"),
    pytest.param(lambda now: {"iss": {"iss": "x"}}, id="iss-an-object"),
    pytest.param(lambda now: {"sub": DROP}, id="sub-missing"),
    pytest.param(lambda now: {"sub": ""}, id="sub-empty"),
    pytest.param(lambda now: {"sub": 12345}, id="sub-a-number"),
    pytest.param(lambda now: {"sub": ["cust-auth-1"]}, id="sub-a-list"),
    pytest.param(lambda now: {"sub": "c" * 129}, id="sub-too-long"),
    # Compared with ids that requests carry, under the same rule: PostgreSQL refuses NUL in text, and
    # no UTF-8 encodes a lone surrogate (both once answered 500 on every endpoint that reads by
    # subject). Other characters an id may hold (a tab, say) a subject may hold too.
    pytest.param(lambda now: {"sub": "cust-\u0000x"}, id="sub-with-nul"),
    pytest.param(lambda now: {"sub": "\ud800"}, id="sub-a-lone-surrogate"),
]


@pytest.mark.parametrize("overrides", CLAIMS_401)
async def test_bad_claims_are_401(
    client: httpx.AsyncClient, hs: Hmac, overrides: Callable[[int], dict[str, Any]]
) -> None:
    payload = hs.claims(**overrides(int(time.time())))
    assert_401(await client.get(ME, headers=bearer(hs.token(payload))))


@pytest.mark.parametrize("authorization", [
    pytest.param("Basic " + b64url(b"cust-auth-1:password"), id="basic-scheme"),
    pytest.param("Bearer", id="bearer-without-token"),
    pytest.param("Bearer    ", id="bearer-blank-token"),
    pytest.param("", id="empty"),
])
async def test_unusable_authorization_header_is_401(client: httpx.AsyncClient, authorization: str) -> None:
    assert_401(await client.get(ME, headers={"Authorization": authorization}))


async def test_the_challenge_names_an_error_only_when_a_bearer_token_was_sent(
    client: httpx.AsyncClient, hs: Hmac
) -> None:
    """RFC 6750 §3.1: no credentials, the bare challenge; a token that fails, invalid_token."""
    for headers in ({}, {"Authorization": "Basic " + b64url(b"cust-auth-1:password")}):
        assert (await client.get(ME, headers=headers)).headers["www-authenticate"] == "Bearer"
    forged = hs.token() + "x"
    assert (await client.get(ME, headers=bearer(forged))).headers["www-authenticate"] == (
        'Bearer error="invalid_token"')


async def test_a_good_token_in_the_wrong_place_is_401(client: httpx.AsyncClient, hs: Hmac) -> None:
    token = hs.token()
    assert_401(await client.get(ME))
    assert_401(await client.get(ME, params={"access_token": token}))
    assert_401(await client.get(ME, headers={"Authorization": token}))
    assert_401(await client.get(ME, headers={"Authorization": f"Token {token}"}))
    assert_401(await client.get(ME, headers={"Authorization": f"Bearer {token} {token}"}))


@pytest.mark.parametrize("signed_huge", [False, True], ids=["garbage", "validly-signed"])
async def test_a_64kb_authorization_header_is_refused(
    client: httpx.AsyncClient, hs: Hmac, signed_huge: bool
) -> None:
    token = hs.token(hs.claims(padding="p" * 65536)) if signed_huge else "a" * 65536
    response = await client.get(ME, headers=bearer(token))
    assert response.status_code in (401, 431), response.text
    if response.status_code == 401:
        assert_401(response)


# --- jku / x5u are never fetched -----------------------------------------------------------------

@dataclass
class Listener:
    url: str
    connections: list[tuple[str, int]]


@asynccontextmanager
async def tcp_listener() -> AsyncIterator[Listener]:
    connections: list[tuple[str, int]] = []

    async def on_connect(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer.get_extra_info("peername"))
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield Listener(f"http://127.0.0.1:{port}", connections)
    finally:
        server.close()
        await server.wait_closed()


async def _settle(listener: Listener, expected: int) -> None:
    for _ in range(50):
        if len(listener.connections) >= expected:
            return
        await asyncio.sleep(0.01)


# --- a JWKS-configured app: RS256, ES256 and EdDSA ------------------------------------------------

@dataclass(frozen=True)
class Jwks:
    client: httpx.AsyncClient
    settings: Settings
    keys: dict[str, PrivateKey]  # by kid, all published in the JWKS file
    impostors: dict[str, PrivateKey]  # same types, never published

    def claims(self, **overrides: Any) -> dict[str, Any]:
        return claims(self.settings, **overrides)

    def token(self, kid: str, *, key: PrivateKey | None = None, **header: Any) -> str:
        return signed(key or self.keys[kid], self.claims(), kid=kid, **header)


def _new_keys() -> dict[str, PrivateKey]:
    return {
        "rsa-1": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "rsa-2": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec-1": ec.generate_private_key(ec.SECP256R1()),
        "ed-1": Ed25519PrivateKey.generate(),
    }


@pytest.fixture(scope="module")
async def jwks(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Jwks]:
    keys, impostors = _new_keys(), _new_keys()
    folder = tmp_path_factory.mktemp("jwks")
    path = folder / "jwks.json"
    path.write_text(json.dumps({"keys": [public_jwk(key, kid) for kid, key in keys.items()]}))
    settings = base_settings(folder, jwt_algorithms=["RS256", "ES256", "EdDSA"], jwks_file=path,
                             database_url=backend.settings.database_url)
    async for client in serve(create_app(settings)):
        yield Jwks(client, settings, keys, impostors)


@pytest.mark.parametrize("kid", ["rsa-1", "rsa-2", "ec-1", "ed-1"])
async def test_jwks_good_token_of_each_kind_is_accepted(jwks: Jwks, kid: str) -> None:
    response = await jwks.client.get(ME, headers=bearer(jwks.token(kid)))
    assert response.status_code == 200, response.text


def _hs256_with_public(encode: Callable[[rsa.RSAPrivateKey], bytes]) -> Callable[[Jwks], str]:
    def forge(j: Jwks) -> str:
        key = j.keys["rsa-1"]
        assert isinstance(key, rsa.RSAPrivateKey)
        return hmac_token(encode(key), {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, j.claims())
    return forge


JWKS_FORGED: dict[str, Callable[[Jwks], str]] = {
    "right-key-unknown-kid": lambda j: j.token("rsa-9", key=j.keys["rsa-1"]),
    "right-key-kid-of-another-rsa-key": lambda j: j.token("rsa-2", key=j.keys["rsa-1"]),
    "rs256-another-key-same-kid": lambda j: j.token("rsa-1", key=j.impostors["rsa-1"]),
    "es256-another-key-same-kid": lambda j: j.token("ec-1", key=j.impostors["ec-1"]),
    "eddsa-another-key-same-kid": lambda j: j.token("ed-1", key=j.impostors["ed-1"]),
    "rs256-kid-names-the-ec-key": lambda j: j.token("ec-1", key=j.keys["rsa-1"]),
    "es256-kid-names-the-ed-key": lambda j: j.token("ed-1", key=j.keys["ec-1"]),
    "eddsa-kid-names-the-rsa-key": lambda j: j.token("rsa-1", key=j.keys["ed-1"]),
    "eddsa-signature-truncated": lambda j: j.token("ed-1")[:-8],
    "rs256-payload-altered": lambda j: with_payload(j.token("rsa-1"), j.claims(roles=["regulator"])),
    "eddsa-payload-altered": lambda j: with_payload(j.token("ed-1"), j.claims(sub="cust-other")),
    "hs256-secret-is-public-pem": _hs256_with_public(public_pem),
    "hs256-secret-is-public-der": _hs256_with_public(public_der),
    "hs256-secret-is-public-jwk": lambda j: hmac_token(
        json.dumps(public_jwk(j.keys["rsa-1"], "rsa-1")).encode(),
        {"alg": "HS256", "kid": "rsa-1"}, j.claims()),
    "alg-none-with-a-known-kid": lambda j: (
        f"{segment({'alg': 'none', 'kid': 'rsa-1'})}.{segment(j.claims())}."
    ),
    "embedded-jwk-known-kid": lambda j: j.token(
        "rsa-1", key=j.impostors["rsa-1"], jwk=public_jwk(j.impostors["rsa-1"], "rsa-1")),
    "embedded-jwk-own-kid": lambda j: j.token(
        "attacker", key=j.impostors["rsa-1"], jwk=public_jwk(j.impostors["rsa-1"], "attacker")),
    "rs256-expired": lambda j: signed(j.keys["rsa-1"], j.claims(exp=int(time.time()) - 3600), kid="rsa-1"),
    "es256-wrong-audience": lambda j: signed(j.keys["ec-1"], j.claims(aud="someone-else"), kid="ec-1"),
    "eddsa-wrong-issuer": lambda j: signed(j.keys["ed-1"], j.claims(iss="https://evil.example"),
                                           kid="ed-1"),
    "eddsa-no-exp": lambda j: signed(j.keys["ed-1"], j.claims(exp=DROP), kid="ed-1"),
}


@pytest.mark.parametrize("forge", JWKS_FORGED.values(), ids=JWKS_FORGED.keys())
async def test_jwks_forged_token_is_401(jwks: Jwks, forge: Callable[[Jwks], str]) -> None:
    assert_401(await jwks.client.get(ME, headers=bearer(forge(jwks))))


@pytest.mark.parametrize("kid", [
    pytest.param(DROP, id="missing"),
    pytest.param("", id="empty"),
    pytest.param("rsa-unknown", id="unknown"),
    pytest.param("../../dev/null", id="path-traversal"),
    pytest.param("/etc/passwd", id="absolute-path"),
    pytest.param("rsa-1' OR '1'='1' --", id="sql-looking"),
    pytest.param("k" * 1000, id="oversized"),
    pytest.param(1, id="a-number"),
    pytest.param(["rsa-1"], id="a-list"),
])
async def test_jwks_bad_kid_is_401(jwks: Jwks, kid: Any) -> None:
    header = {} if kid is DROP else {"kid": kid}
    token = signed(jwks.keys["rsa-1"], jwks.claims(), **header)
    assert_401(await jwks.client.get(ME, headers=bearer(token)))


async def test_jku_and_x5u_are_never_fetched(client: httpx.AsyncClient, hs: Hmac, jwks: Jwks) -> None:
    attacker = attacker_rsa()
    async with tcp_listener() as listener:
        jwks_url, cert_url = f"{listener.url}/jwks.json", f"{listener.url}/cert.pem"
        hmac_app_tokens = [
            hmac_token(b"attacker-secret-attacker-secret!", {"alg": "HS256", "jku": jwks_url}, hs.claims()),
            signed(attacker, hs.claims(), jku=jwks_url, kid="attacker"),
            signed(attacker, hs.claims(), x5u=cert_url),
        ]
        jwks_app_tokens = [
            signed(attacker, jwks.claims(), kid="rsa-1", jku=jwks_url),
            signed(attacker, jwks.claims(), kid="attacker", jku=jwks_url),
            signed(attacker, jwks.claims(), kid="attacker", x5u=cert_url),
            signed(attacker, jwks.claims(), jku=jwks_url),
        ]
        for token in hmac_app_tokens:
            assert_401(await client.get(ME, headers=bearer(token)))
        for token in jwks_app_tokens:
            assert_401(await jwks.client.get(ME, headers=bearer(token)))
        await _settle(listener, 1)
        assert listener.connections == []

        # The control: the listener does see a connection when one is made.
        _, writer = await asyncio.open_connection("127.0.0.1", int(listener.url.rsplit(":", 1)[1]))
        writer.close()
        await writer.wait_closed()
        await _settle(listener, 1)
        assert len(listener.connections) == 1


# --- valid tokens, wrong roles: 403 ---------------------------------------------------------------

ROLE_CLAIMS_403: dict[str, dict[str, Any]] = {
    "roles-missing": {"roles": DROP},
    "roles-a-string": {"roles": "customer"},
    "roles-empty": {"roles": []},
    "roles-unknown": {"roles": ["superuser"]},
    "roles-wrong-case": {"roles": ["Customer"]},
    "roles-an-object": {"roles": {"customer": True}},
    "roles-nested": {"roles": [["customer"]]},
    "role-singular-claim": {"roles": DROP, "role": "customer"},
}


@pytest.mark.parametrize("overrides", ROLE_CLAIMS_403.values(), ids=ROLE_CLAIMS_403.keys())
async def test_no_recognised_role_is_403(
    client: httpx.AsyncClient, hs: Hmac, overrides: dict[str, Any]
) -> None:
    assert_403(await client.get(ME, headers=bearer(hs.token(hs.claims(**overrides)))))


@pytest.mark.parametrize("jurisdiction",
                         ["Germany", "de", "DEU", "D", "", 49, ["DE"], None, "ZZ", "XX", "EU"])
async def test_a_jurisdiction_that_is_not_an_assigned_alpha_2_code_is_403(
    client: httpx.AsyncClient, hs: Hmac, customer_id: str, jurisdiction: Any
) -> None:
    payload = hs.claims(sub="regulator-1", roles=["regulator"], jurisdiction=jurisdiction)
    response = await client.get(f"/v1/customers/{customer_id}/accesses", headers=bearer(hs.token(payload)))
    assert_403(response)


async def test_a_null_jurisdiction_means_nothing_on_a_token_that_is_not_a_regulators(
    client: httpx.AsyncClient, hs: Hmac
) -> None:
    """Identity providers that put the claim, empty, on every token still sign customers in."""
    assert (await client.get(ME, headers=bearer(hs.token(hs.claims(jurisdiction=None))))).status_code == 200
    assert_403(await client.get(ME, headers=bearer(hs.token(hs.claims(jurisdiction="ZZ")))))


async def test_a_regulator_token_is_accepted_with_or_without_jurisdiction(
    client: httpx.AsyncClient, hs: Hmac, customer_id: str
) -> None:
    path = f"/v1/customers/{customer_id}/accesses"
    plain = hs.claims(sub="regulator-1", roles=["regulator"])
    assert (await client.get(path, headers=bearer(hs.token(plain)))).status_code == 200
    # A customer outside the regulator's country does not exist for it: 404, past authentication.
    limited = bearer(hs.token({**plain, "jurisdiction": "DE"}))
    assert (await client.get(path, headers=limited)).status_code == 404


HISTORY_READS = ["/v1/customers/{cid}/accesses", "/v1/customers/{cid}/accesses/summary",
                 "/v1/customers/{cid}/entries"]
FORBIDDEN: list[tuple[str, str, str]] = [
    ("customer", "POST", "/v1/accesses"),
    ("customer", "POST", "/v1/accesses:batch"),
    ("regulator", "POST", "/v1/accesses"),
    ("regulator", "POST", "/v1/accesses:batch"),
    ("admin", "POST", "/v1/accesses"),
    *[("service", "GET", path) for path in HISTORY_READS],
    *[("admin", "GET", path) for path in HISTORY_READS],
    *[(role, "GET", path) for role in ("service", "regulator", "admin")
      for path in ("/v1/me/accesses", "/v1/me/accesses/summary", "/v1/me/entries")],
]
ALLOWED: list[tuple[str, str, str, int]] = [
    ("service", "POST", "/v1/accesses", 201),
    ("customer", "GET", "/v1/customers/{cid}/accesses", 200),
    ("customer", "GET", "/v1/me/accesses", 200),
    ("regulator", "GET", "/v1/customers/{cid}/accesses", 200),
]


async def _call(client: httpx.AsyncClient, tokens: Tokens, role: str, method: str, path: str,
                customer_id: str) -> httpx.Response:
    subject = customer_id if role == "customer" else f"{role}-1"
    body: Any = None
    if method == "POST":
        event = access_event(customer_id)
        body = {"events": [event]} if path.endswith(":batch") else event
    return await client.request(method, path.format(cid=customer_id), json=body,
                                headers=tokens.headers(role, subject))


@pytest.mark.parametrize(("role", "method", "path"), FORBIDDEN,
                         ids=[f"{r}-{m}-{p}" for r, m, p in FORBIDDEN])
async def test_a_role_the_endpoint_does_not_allow_is_403(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str, role: str, method: str, path: str
) -> None:
    assert_403(await _call(client, tokens, role, method, path, customer_id))


@pytest.mark.parametrize(("role", "method", "path", "allowed"), [
    ("customer", "POST", "/v1/accesses", "service"),
    ("customer", "GET", "/v1/exports/accesses", "regulator"),
    ("service", "GET", "/v1/customers/{cid}/accesses", "customer, regulator"),
    ("regulator", "GET", "/v1/me/accesses", "customer"),
])
async def test_a_403_names_the_roles_the_endpoint_allows(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str, role: str, method: str, path: str,
    allowed: str,
) -> None:
    response = await _call(client, tokens, role, method, path, customer_id)
    assert_403(response)
    assert response.json()["detail"] == f"this endpoint is for roles: {allowed}; the token has: {role}"


def _documented_roles() -> list[tuple[str, str, tuple[str, ...]]]:
    """Each operation that takes a token, with the roles its OpenAPI security names."""
    return [(method.upper(), path, tuple(role for requirement in operation["security"]
                                         for role in requirement["bearer"]))
            for path, operations in openapi_document()["paths"].items()
            for method, operation in operations.items() if "security" in operation]


DOCUMENTED_ROLES = _documented_roles()


@pytest.mark.parametrize(("method", "path", "roles"), DOCUMENTED_ROLES,
                         ids=[f"{m}-{p}" for m, p, _ in DOCUMENTED_ROLES])
async def test_every_operation_refuses_the_roles_it_does_not_name(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str, method: str, path: str,
    roles: tuple[str, ...],
) -> None:
    """The document's roles are the ones the server lets through: every other role is a 403 that
    names exactly them (test_schemathesis fuzzes each operation with the roles named only)."""
    assert roles, f"{method} {path} names no role"
    url = re.sub(r"\{[a-z_]+\}", "x", path.replace("{customer_id}", customer_id))
    for role in sorted({"customer", "service", "regulator", "admin"} - set(roles)):
        subject = customer_id if role == "customer" else f"{role}-1"
        response = await client.request(method, url, headers=tokens.headers(role, subject))
        assert_403(response)
        assert response.json()["detail"] == (f"this endpoint is for roles: {', '.join(roles)}; "
                                             f"the token has: {role}")


async def test_a_403_says_when_the_token_has_no_recognised_role(client: httpx.AsyncClient, hs: Hmac) -> None:
    response = await client.get(ME, headers=bearer(hs.token(hs.claims(roles=["superuser", "Customer"]))))
    assert_403(response)
    assert response.json()["detail"] == ("this endpoint is for roles: customer; the token has: no "
                                         "recognised role")


async def test_an_expired_token_says_it_expired(client: httpx.AsyncClient, hs: Hmac) -> None:
    now = int(time.time())
    for exp in (now - 3600, now - hs.settings.jwt_leeway_seconds - 2):
        response = await client.get(ME, headers=bearer(hs.token(hs.claims(exp=exp, iat=exp - 600))))
        assert_401(response)
        assert response.json()["detail"] == "the token has expired", exp
    # A forged token is not told about its claims: the signature is checked first.
    forged = hmac_token(b"x" * 32, {"alg": "HS256"}, hs.claims(exp=now - 3600))
    response = await client.get(ME, headers=bearer(forged))
    assert_401(response)
    assert "expired" not in response.json()["detail"]


@pytest.mark.parametrize(("role", "method", "path", "status"), ALLOWED,
                         ids=[f"{r}-{m}-{p}" for r, m, p, _ in ALLOWED])
async def test_a_role_the_endpoint_allows_gets_through(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str, role: str, method: str, path: str,
    status: int,
) -> None:
    response = await _call(client, tokens, role, method, path, customer_id)
    assert response.status_code == status, response.text


# --- settings refuse unsafe configurations at start-up --------------------------------------------

def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def _production(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "env": "production", "database_url": "postgresql+asyncpg://app@db.internal/seenby",
        "jwt_secret": secrets.token_hex(32), "pseudonym_secret": secrets.token_hex(32),
        "signing_key_file": tmp_path / "log-signing-key.pem", "jwt_issuer": "https://id.example.com",
        "ticket_key_file": tmp_path / "ticket-key.pem",
    }
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not DROP}


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("algorithms", [["HS256", "RS256"], ["ES256", "HS384"], ["HS512", "EdDSA"]])
def test_settings_refuse_hmac_mixed_with_asymmetric(algorithms: list[str]) -> None:
    with pytest.raises(ValueError, match="HMAC and asymmetric"):
        _settings(jwt_algorithms=algorithms)


@pytest.mark.usefixtures("clean_env")
def test_settings_refuse_the_mix_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEENBY_JWT_ALGORITHMS", "HS256,RS256")
    with pytest.raises(ValueError, match="HMAC and asymmetric"):
        _settings()
    monkeypatch.setenv("SEENBY_JWT_ALGORITHMS", "RS256, ES256,EdDSA")
    assert _settings().jwt_algorithms == ["RS256", "ES256", "EdDSA"]


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("algorithm", ["none", "None", "PS256", "HS1"])
def test_settings_refuse_unknown_algorithms(algorithm: str) -> None:
    with pytest.raises(ValueError, match="unsupported JWT algorithms"):
        _settings(jwt_algorithms=[algorithm])


@pytest.mark.usefixtures("clean_env")
def test_settings_refuse_a_jwt_secret_under_32_bytes() -> None:
    for short in ("x" * 31, "short", "é" * 15):
        with pytest.raises(ValueError, match="SEENBY_JWT_SECRET must be at least 32 bytes"):
            _settings(jwt_secret=short)
    assert _settings(jwt_secret="x" * 32).jwt_secret == "x" * 32


@pytest.mark.usefixtures("clean_env")
def test_production_refuses_missing_secrets() -> None:
    with pytest.raises(ValueError, match="production refuses development defaults") as refused:
        _settings(env="production")
    for name in ("SEENBY_DATABASE_URL", "SEENBY_JWT_SECRET", "SEENBY_SIGNING_KEY_FILE",
                 "SEENBY_TICKET_KEY_FILE", "SEENBY_PSEUDONYM_SECRET", "SEENBY_JWT_ISSUER"):
        assert name in str(refused.value)


@pytest.mark.usefixtures("clean_env")
def test_production_refuses_the_development_issuer(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SEENBY_JWT_ISSUER") as refused:
        _settings(**_production(tmp_path, jwt_issuer=DROP))
    assert "SEENBY_JWT_SECRET" not in str(refused.value)
    assert _settings(**_production(tmp_path)).env == "production"


# --- verified tokens are remembered, never past their lifetime ----------------------------------

async def test_a_remembered_token_still_expires(tmp_path: Path) -> None:
    settings = base_settings(tmp_path, jwt_leeway_seconds=0)
    authenticator = Authenticator(settings, load_keys(settings))
    expires = int(time.time()) + 2
    token = jwt.encode(claims(settings, exp=expires), settings.jwt_secret, algorithm="HS256")
    first = await authenticator.principal(f"Bearer {token}")
    assert await authenticator.principal(f"Bearer {token}") == first  # the remembered verification
    await asyncio.sleep(expires - time.time() + 0.1)
    with pytest.raises(Unauthorized):
        await authenticator.principal(f"Bearer {token}")


async def test_a_remembered_token_does_not_vouch_for_a_look_alike(tmp_path: Path) -> None:
    settings = base_settings(tmp_path)
    authenticator = Authenticator(settings, load_keys(settings))
    token = jwt.encode(claims(settings), settings.jwt_secret, algorithm="HS256")
    await authenticator.principal(f"Bearer {token}")
    header, payload, _ = token.split(".")
    forged = f"{header}.{segment(claims(settings, roles=['regulator']))}.{token.split('.')[2]}"
    for attempt in (forged, f"{header}.{payload}.{b64url(b'x' * 32)}"):
        with pytest.raises(Unauthorized):
            await authenticator.principal(f"Bearer {attempt}")


async def test_a_signature_respelled_in_its_unused_bits_is_401(client: httpx.AsyncClient, hs: Hmac) -> None:
    """A 32-byte HS256 signature leaves 2 bits of its last base64url character unused: the decoder
    ignores them, so three other spellings of the same signature would verify."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    token = hs.token()
    assert (await client.get(ME, headers=bearer(token))).status_code == 200
    last = alphabet.index(token[-1])
    for unused_bits in (1, 2, 3):
        respelled = token[:-1] + alphabet[last ^ unused_bits]
        assert_401(await client.get(ME, headers=bearer(respelled)))
