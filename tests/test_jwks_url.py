"""Public keys from a JWKS URL: fetched, cached by kid, refetched for a new kid, never a 500."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from service import auth
from service.main import create_app
from tests.conftest import Backend, serve
from tests.servers import RecordingServer, recording_server
from tests.test_auth import claims, public_jwk, signed


@pytest.fixture
def jwks_server() -> Iterator[RecordingServer]:
    with recording_server({"keys": []}) as server:
        yield server


async def test_keys_come_from_the_url_and_rotate(
    backend: Backend, jwks_server: RecordingServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_key, new_key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    jwks_server.document = {"keys": [public_jwk(old_key, "2026-11")]}
    settings = backend.settings.model_copy(update={
        "jwt_algorithms": ["RS256"], "jwt_secret": "", "jwks_url": jwks_server.url, "data_dir": tmp_path,
    })
    app = create_app(settings)
    token_claims = claims(settings, sub="cust-jwks", roles=["customer"])
    async for client in serve(app):
        def get(token: str, http: httpx.AsyncClient = client) -> Any:
            return http.get("/v1/me/accesses", headers={"Authorization": f"Bearer {token}"})

        assert (await get(signed(old_key, token_claims, kid="2026-11"))).status_code == 200
        assert (await get(signed(old_key, token_claims, kid="2026-11"))).status_code == 200
        assert jwks_server.requests == 1, "cached, not fetched per request"

        # The issuer rotates: a token with a new kid triggers one refetch (after the minimum interval).
        jwks_server.document = {"keys": [public_jwk(new_key, "2026-12")]}
        monkeypatch.setattr(auth._JwksCache, "MIN_REFETCH_SECONDS", 0.0)
        assert (await get(signed(new_key, token_claims, kid="2026-12"))).status_code == 200
        assert jwks_server.requests == 2
        unknown = await get(signed(new_key, token_claims, kid="never-published"))
        assert unknown.status_code == 401 and unknown.headers["www-authenticate"].startswith("Bearer")


async def test_an_unreachable_jwks_url_is_401_not_500(backend: Backend, tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    settings = backend.settings.model_copy(update={
        "jwt_algorithms": ["RS256"], "jwt_secret": "", "data_dir": tmp_path,
        "jwks_url": "http://127.0.0.1:9/nothing-listens-here",
    })
    async for client in serve(create_app(settings)):
        response = await client.get("/v1/me/accesses", headers={
            "Authorization": f"Bearer {signed(key, claims(settings, roles=['customer']), kid='k')}"})
        assert response.status_code == 401


async def test_many_requests_with_a_new_kid_refetch_the_keys_once(
    backend: Backend, jwks_server: RecordingServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst of tokens signed with a freshly rotated key: one request fetches the JWKS, the
    others wait for it and use what it fetched instead of fetching again."""
    old_key, new_key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    jwks_server.document = {"keys": [public_jwk(old_key, "2026-11")]}
    settings = backend.settings.model_copy(update={
        "jwt_algorithms": ["RS256"], "jwt_secret": "", "jwks_url": jwks_server.url, "data_dir": tmp_path,
    })
    monkeypatch.setattr(auth._JwksCache, "MIN_REFETCH_SECONDS", 0.3)
    token_claims = claims(settings, sub="cust-jwks-burst", roles=["customer"])
    async for client in serve(create_app(settings)):
        def get(token: str, http: httpx.AsyncClient = client) -> Any:
            return http.get("/v1/me/accesses", headers={"Authorization": f"Bearer {token}"})

        assert (await get(signed(old_key, token_claims, kid="2026-11"))).status_code == 200
        await asyncio.sleep(0.4)  # past the minimum interval: a new kid may trigger a fetch
        jwks_server.document = {"keys": [public_jwk(new_key, "2026-12")]}
        # Distinct tokens (jti), so none is answered from the verified-token cache.
        burst = [signed(new_key, {**token_claims, "jti": str(n)}, kid="2026-12") for n in range(12)]
        responses = await asyncio.gather(*(get(token) for token in burst))
        assert [r.status_code for r in responses] == [200] * 12
        assert jwks_server.requests == 2
