"""RFC 9864's `Ed25519` algorithm name, as current identity providers write it, beside RFC 8037's
`EdDSA`: each accepted where it is configured, never where it is not, never against another key."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from service.main import create_app
from service.settings import Settings
from tests.conftest import Backend, base_settings, serve
from tests.test_auth import (
    ME,
    Hmac,
    assert_401,
    b64url,
    bearer,
    claims,
    eddsa_token,
    hmac_token,
    public_jwk,
)


@dataclass(frozen=True)
class Okp:
    client: httpx.AsyncClient
    claims: dict[str, Any]
    keys: dict[str, Ed25519PrivateKey]

    async def status(self, kid: str, alg: str, key: Ed25519PrivateKey | None = None) -> httpx.Response:
        token = eddsa_token(key or self.keys[kid], self.claims, alg=alg, kid=kid)
        return await self.client.get(ME, headers=bearer(token))


def _jwk(key: Ed25519PrivateKey, kid: str, alg: str | None) -> dict[str, Any]:
    jwk = public_jwk(key, kid)
    if alg is None:
        del jwk["alg"]
    else:
        jwk["alg"] = alg
    return jwk


async def _okp_app(backend: Backend, folder: Path, algorithms: list[str]) -> AsyncIterator[Okp]:
    keys = {kid: Ed25519PrivateKey.generate() for kid in ("ed25519", "eddsa", "no-alg")}
    ed448 = Ed448PrivateKey.generate().public_key().public_bytes_raw()
    published = [_jwk(keys["ed25519"], "ed25519", "Ed25519"), _jwk(keys["eddsa"], "eddsa", "EdDSA"),
                 _jwk(keys["no-alg"], "no-alg", None),
                 {"kty": "OKP", "crv": "Ed448", "kid": "ed448", "alg": "EdDSA", "x": b64url(ed448)}]
    path = folder / "jwks.json"
    path.write_text(json.dumps({"keys": published}))
    settings = base_settings(folder, jwt_algorithms=algorithms, jwks_file=path,
                             database_url=backend.settings.database_url)
    async for client in serve(create_app(settings)):
        yield Okp(client, claims(settings), keys)


@pytest.fixture(scope="module")
async def both(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Okp]:
    async for okp in _okp_app(backend, tmp_path_factory.mktemp("okp-both"), ["Ed25519", "EdDSA"]):
        yield okp


@pytest.fixture(scope="module")
async def eddsa_only(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Okp]:
    async for okp in _okp_app(backend, tmp_path_factory.mktemp("okp-eddsa"), ["EdDSA"]):
        yield okp


@pytest.fixture(scope="module")
async def ed25519_only(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Okp]:
    async for okp in _okp_app(backend, tmp_path_factory.mktemp("okp-ed25519"), ["Ed25519"]):
        yield okp


@pytest.fixture
def hs(app: FastAPI) -> Hmac:
    """The default app: HS256 only."""
    return Hmac(app.state.settings, app.state.keys.jwt_secret.encode())


@pytest.mark.parametrize("kid", ["ed25519", "eddsa", "no-alg"])
@pytest.mark.parametrize("alg", ["Ed25519", "EdDSA"])
async def test_both_names_are_accepted_when_both_are_allowed(both: Okp, kid: str, alg: str) -> None:
    # A key published as "EdDSA" verifies an "Ed25519" token and the other way round: for an
    # Ed25519 key, RFC 9864 §2 makes them one algorithm.
    response = await both.status(kid, alg)
    assert response.status_code == 200, response.text


async def test_each_name_is_accepted_only_where_it_is_configured(eddsa_only: Okp, ed25519_only: Okp) -> None:
    assert (await eddsa_only.status("eddsa", "EdDSA")).status_code == 200
    assert_401(await eddsa_only.status("eddsa", "Ed25519"))
    assert (await ed25519_only.status("ed25519", "Ed25519")).status_code == 200
    assert_401(await ed25519_only.status("ed25519", "EdDSA"))


async def test_ed25519_tokens_are_refused_when_only_hs256_is_configured(
    client: httpx.AsyncClient, hs: Hmac
) -> None:
    signed = eddsa_token(Ed25519PrivateKey.generate(), hs.claims(), alg="Ed25519", kid="any")
    response = await client.get(ME, headers=bearer(signed))
    assert_401(response)
    assert response.json()["detail"] == "the token's algorithm is not allowed"
    # The HS256 secret never verifies a token that calls itself Ed25519.
    confused = hmac_token(hs.secret, {"alg": "Ed25519", "typ": "JWT"}, hs.claims())
    assert_401(await client.get(ME, headers=bearer(confused)))
    assert (await client.get(ME, headers=bearer(hs.token()))).status_code == 200  # the control


FORGED = {
    "another-key-same-kid": lambda o: o.status("ed25519", "Ed25519", key=Ed25519PrivateKey.generate()),
    "kid-of-the-ed448-key": lambda o: o.status("ed448", "Ed25519", key=o.keys["ed25519"]),
    "eddsa-kid-of-the-ed448-key": lambda o: o.status("ed448", "EdDSA", key=o.keys["ed25519"]),
    "unknown-kid": lambda o: o.status("ed9", "Ed25519", key=o.keys["ed25519"]),
    "alg-with-other-case": lambda o: o.status("ed25519", "ed25519"),
}


@pytest.mark.parametrize("forge", FORGED.values(), ids=FORGED.keys())
async def test_forged_ed25519_tokens_are_401(both: Okp, forge: Any) -> None:
    assert_401(await forge(both))


@pytest.mark.parametrize("algorithms", [["HS256", "Ed25519"], ["Ed25519", "HS512"]])
def test_settings_refuse_ed25519_mixed_with_hmac(algorithms: list[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEENBY_JWT_ALGORITHMS", ",".join(algorithms))
    with pytest.raises(ValueError, match="HMAC and asymmetric"):
        Settings(_env_file=None)  # type: ignore[call-arg]
