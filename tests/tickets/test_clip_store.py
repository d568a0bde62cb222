"""The example clip store over HTTP (in process): a good ticket streams its clip once, every other
ticket is a 403 naming its check, no ticket a 401, and no clip id reaches outside the folder."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from examples.clip_store import app as clip_store_app
from examples.clip_store.app import ClipStoreSettings, create_app
from service import jws
from service.auth import mint_token
from service.keys import load_keys
from tests.conftest import base_settings
from tests.servers import RecordingServer, recording_server
from tests.tickets import minting
from tests.tickets.minting import (
    AUDIENCE,
    CLIP,
    DROP,
    FromNow,
    eddsa_signer,
    forge,
    header_of,
    mint,
    segment,
    ticket_claims,
    with_payload,
)

SECRET_BYTES = b"outside the clip folder: " + secrets.token_bytes(16)


@dataclass
class Store:
    client: httpx.AsyncClient
    key: Ed25519PrivateKey
    clips: dict[str, bytes]
    root: Path

    async def get(self, path: str, ticket: str | None = None, **headers: str) -> httpx.Response:
        if ticket is not None:
            headers["Authorization"] = f"Ticket {ticket}"
        return await self.client.get(path, headers=headers)


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    with recording_server() as running:
        yield running


def clip_folder(root: Path) -> tuple[Path, dict[str, bytes]]:
    """clips/ with two clips and a symlink that points outside; a secret beside clips/."""
    folder = root / "clips"
    folder.mkdir()
    clips = {CLIP: secrets.token_bytes(200_000), "clip-2.mp4": secrets.token_bytes(1000)}
    for name, data in clips.items():
        (folder / name).write_bytes(data)
    (root / "secret.txt").write_bytes(SECRET_BYTES)
    (folder / "clip-link").symlink_to(root / "secret.txt")
    return folder, clips


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    key = Ed25519PrivateKey.generate()
    folder, clips = clip_folder(tmp_path)
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(minting.jwks_of(key)))
    app = create_app(ClipStoreSettings(name=AUDIENCE, clip_dir=folder, jwks_file=jwks_file))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://clip-store") as client:
        yield Store(client, key, clips, tmp_path)


def assert_refused(response: httpx.Response, check: str) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"].endswith("/ticket-refused")
    assert body["status"] == 403 and body["title"] and body["detail"]
    assert body["check"] == check, body


# --- served ---------------------------------------------------------------------------------------

async def test_a_valid_ticket_streams_the_clip_once(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="examples.clip_store")
    claims = ticket_claims()
    ticket = jws.sign_eddsa(claims, store.key, typ="seenby-ticket+jwt")

    response = await store.get(f"/clips/{CLIP}", ticket)
    assert response.status_code == 200
    assert response.content == store.clips[CLIP]
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-disposition"].startswith("inline")
    served = [r.getMessage() for r in caplog.records if r.name == "examples.clip_store"]
    assert len(served) == 1
    for value in (CLIP, claims["jti"], claims["entry_hash"], claims["sub"]):
        assert value in served[0]

    assert_refused(await store.get(f"/clips/{CLIP}", ticket), "replay")


async def test_a_download_ticket_downloads(store: Store) -> None:
    response = await store.get("/clips/clip-2.mp4/download", mint(store.key, clip_id="clip-2.mp4",
                                                                   action="download"))
    assert response.status_code == 200
    assert response.content == store.clips["clip-2.mp4"]
    assert response.headers["content-type"] == "video/mp4"
    assert response.headers["content-disposition"].startswith("attachment")


async def test_a_clip_the_store_does_not_hold_is_404_after_the_ticket_passed(store: Store) -> None:
    missing = await store.get("/clips/clip-gone", mint(store.key, clip_id="clip-gone"))
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert (await store.get("/clips/clip-gone")).status_code == 401


# --- no ticket: 401 -------------------------------------------------------------------------------

@pytest.mark.parametrize("authorization", [None, "", "Ticket", "Ticket ", "Bearer {ticket}", "{ticket}",
                                           "Basic dXNlcjpwYXNz", "Tickets {ticket}"])
async def test_no_ticket_is_401(store: Store, authorization: str | None) -> None:
    headers = {} if authorization is None else {
        "Authorization": authorization.format(ticket=mint(store.key))
    }
    response = await store.get(f"/clips/{CLIP}", **headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Ticket"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/ticket-required")


async def test_the_scheme_is_case_insensitive(store: Store) -> None:
    response = await store.get(f"/clips/{CLIP}", Authorization=f"ticket {mint(store.key)}")
    assert response.status_code == 200


# --- every refusal: 403 naming the check ----------------------------------------------------------

def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def changed_claim(key: Ed25519PrivateKey) -> str:
    ticket = mint(key, clip_id="clip-2.mp4")
    return with_payload(ticket, ticket_claims())


def api_token(tmp_path: Path) -> str:
    settings = base_settings(tmp_path / "seenby")
    return mint_token(settings, load_keys(settings), role="service", subject="clip-pipeline", ttl_seconds=300)


REFUSALS: dict[str, tuple[Callable[[Ed25519PrivateKey], str], str]] = {
    "another clip": (lambda key: mint(key, clip_id="clip-2.mp4"), "clip_id"),
    "another action": (lambda key: mint(key, action="download"), "action"),
    "another audience": (lambda key: mint(key, aud="clip-store-us"), "aud"),
    "another issuer": (lambda key: mint(key, iss="https://evil.example"), "iss"),
    "expired": (lambda key: mint(key, iat=FromNow(-600), exp=FromNow(-300)), "exp"),
    "issued in the future": (lambda key: mint(key, iat=FromNow(600), exp=FromNow(900)), "iat"),
    "a kid not in the JWKS": (lambda key: mint(Ed25519PrivateKey.generate()), "kid"),
    "the real kid, another key's signature": (
        lambda key: forge(header_of(key), ticket_claims(), eddsa_signer(Ed25519PrivateKey.generate())),
        "signature"),
    "HS256 with the public key as secret": (
        lambda key: forge(header_of(key, alg="HS256"), ticket_claims(),
                          minting.hmac_signer(raw_public(key))), "alg"),
    "alg none": (lambda key: f"{segment(header_of(key, alg='none'))}.{segment(ticket_claims())}.", "alg"),
    "alg none, signed": (lambda key: forge(header_of(key, alg="none"), ticket_claims(), eddsa_signer(key)),
                         "alg"),
    "a changed claim": (changed_claim, "signature"),
    "no typ": (lambda key: forge(header_of(key, typ=DROP), ticket_claims(), eddsa_signer(key)), "typ"),
    "typ JWT": (lambda key: jws.sign_eddsa(ticket_claims(), key, typ="JWT"), "typ"),
    "typ at+jwt": (lambda key: jws.sign_eddsa(ticket_claims(), key, typ="at+jwt"), "typ"),
    "garbage": (lambda key: "not-a-ticket", "malformed"),
    "huge": (lambda key: "a" * 100_000, "malformed"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_every_refused_ticket_is_403_naming_its_check(store: Store, case: str) -> None:
    make, check = REFUSALS[case]
    assert_refused(await store.get(f"/clips/{CLIP}", make(store.key)), check)


async def test_a_view_ticket_does_not_download(store: Store) -> None:
    assert_refused(await store.get(f"/clips/{CLIP}/download", mint(store.key)), "action")


async def test_an_api_token_is_403(store: Store) -> None:
    assert_refused(await store.get(f"/clips/{CLIP}", api_token(store.root)), "alg")
    response = await store.get(f"/clips/{CLIP}", Authorization=f"Bearer {api_token(store.root)}")
    assert response.status_code == 401


async def test_embedded_keys_and_key_urls_are_never_fetched(store: Store, server: RecordingServer) -> None:
    attacker = Ed25519PrivateKey.generate()
    server.document = minting.jwks_of(attacker)
    embedded = {"jwk": jws.public_jwk(attacker.public_key()), "jku": server.url,
                "x5u": f"{server.base_url}/cert.pem"}
    own_kid = forge(header_of(attacker, **embedded), ticket_claims(), eddsa_signer(attacker))
    real_kid = forge(header_of(store.key, **embedded), ticket_claims(), eddsa_signer(attacker))
    assert_refused(await store.get(f"/clips/{CLIP}", own_kid), "kid")
    assert_refused(await store.get(f"/clips/{CLIP}", real_kid), "signature")
    assert server.paths == []


async def test_a_forged_ticket_does_not_use_up_the_real_ones_jti(store: Store) -> None:
    jti = "6f1c2a9e-3b0d-4c8e-9a57-0c1d2e3f4a5b"
    forged = forge(header_of(store.key), ticket_claims(jti=jti), eddsa_signer(Ed25519PrivateKey.generate()))
    assert_refused(await store.get(f"/clips/{CLIP}", forged), "signature")
    assert (await store.get(f"/clips/{CLIP}", mint(store.key, jti=jti))).status_code == 200


# --- nothing outside the folder -------------------------------------------------------------------

@pytest.mark.parametrize(("path", "clip_id"), [
    ("/clips/..%2Fsecret.txt", "../secret.txt"),
    ("/clips/%2E%2E%2Fsecret.txt", "../secret.txt"),
    ("/clips/..%2Fsecret.txt/download", "../secret.txt"),
    ("/clips/%2E%2E", ".."),
    ("/clips/%2E%2E/download", ".."),
    ("/clips/.", "."),
    ("/clips/../secret.txt", "../secret.txt"),
    ("/clips/%2Fetc%2Fpasswd", "/etc/passwd"),
    ("/clips/%2F{root}%2Fsecret.txt", "{root}/secret.txt"),
    ("/clips/clip-link", "clip-link"),
    ("/clips/..%5Csecret.txt", "..\\secret.txt"),
    ("/clips/.hidden", ".hidden"),
    ("/clips/clip-77a1%00.txt", "clip-77a1\x00.txt"),
])
async def test_no_clip_id_reaches_outside_the_folder(store: Store, path: str, clip_id: str) -> None:
    (store.root / "clips" / ".hidden").write_bytes(SECRET_BYTES)
    root = str(store.root).lstrip("/")
    path, clip_id = path.format(root=root.replace("/", "%2F")), clip_id.format(root=f"/{root}")
    action = "download" if path.endswith("/download") else "view"
    for ticket in (None, mint(store.key, clip_id=clip_id, action=action)):
        response = await store.get(path, ticket)
        assert 400 <= response.status_code < 500, (path, response.status_code)
        assert SECRET_BYTES not in response.content


# --- settings from the environment ----------------------------------------------------------------

def test_settings_come_from_the_environment(tmp_path: Path) -> None:
    settings = ClipStoreSettings.from_env({
        "CLIP_STORE_NAME": "clip-store-eu", "CLIP_STORE_DIR": str(tmp_path),
        "CLIP_STORE_SEENBY_URL": "http://seenby.internal:8000/",
    })
    assert settings == ClipStoreSettings(name="clip-store-eu", clip_dir=tmp_path,
                                         seenby_url="http://seenby.internal:8000/")
    assert settings.issuer == "seenby.dev/log"


@pytest.mark.parametrize("environ", [
    {"CLIP_STORE_DIR": "{dir}", "CLIP_STORE_JWKS_FILE": "{dir}/jwks.json"},
    {"CLIP_STORE_NAME": "s", "CLIP_STORE_JWKS_FILE": "{dir}/jwks.json"},
    {"CLIP_STORE_NAME": "s", "CLIP_STORE_DIR": "{dir}"},
    {"CLIP_STORE_NAME": "s", "CLIP_STORE_DIR": "{dir}", "CLIP_STORE_JWKS_FILE": "{dir}/jwks.json",
     "CLIP_STORE_SEENBY_URL": "http://127.0.0.1:1"},
    {"CLIP_STORE_NAME": "s", "CLIP_STORE_DIR": "{dir}/absent", "CLIP_STORE_JWKS_FILE": "{dir}/jwks.json"},
])
def test_an_incomplete_configuration_fails_at_start_up(tmp_path: Path, environ: dict[str, str]) -> None:
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": []}))
    with pytest.raises((RuntimeError, OSError)):
        create_app(ClipStoreSettings.from_env({k: v.format(dir=tmp_path) for k, v in environ.items()}))


async def test_uvicorns_app_is_built_from_the_environment_with_seenbys_jwks(
    tmp_path: Path, server: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = Ed25519PrivateKey.generate()
    server.document = minting.jwks_of(key)
    folder, clips = clip_folder(tmp_path)
    monkeypatch.setenv("CLIP_STORE_NAME", AUDIENCE)
    monkeypatch.setenv("CLIP_STORE_DIR", str(folder))
    monkeypatch.setenv("CLIP_STORE_SEENBY_URL", server.base_url)
    for unset in ("CLIP_STORE_JWKS_FILE", "CLIP_STORE_ISSUER"):
        monkeypatch.delenv(unset, raising=False)
    logger = clip_store_app.logger
    handlers, level = logger.handlers[:], logger.level
    logger.handlers.clear()
    clip_store_app._app_from_env.cache_clear()
    try:
        app: Any = clip_store_app.app
        assert clip_store_app.app is app
        assert logger.handlers and logger.level == logging.INFO  # what is served shows under uvicorn
    finally:
        clip_store_app._app_from_env.cache_clear()
        logger.handlers[:] = handlers
        logger.setLevel(level)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://clip-store") as client:
        response = await client.get(f"/clips/{CLIP}", headers={"Authorization": f"Ticket {mint(key)}"})
    assert response.status_code == 200
    assert response.content == clips[CLIP]
    assert server.paths == ["/v1/tickets/jwks.json"]
