"""seenby and the example clip store as two real processes: a clip leaves storage only against a
ticket seenby issued after the access committed, once, for that clip, that store and that action."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service import jws
from service.keys import load_keys
from service.migrate import upgrade
from service.settings import Settings
from service.tickets.service import TICKET_TYPE
from tests.chains import assert_chain_intact, fetch_chain
from tests.conftest import Tokens, base_settings
from tests.factories import access_event
from tests.pg import free_port
from tests.servers import Replicas, running_server, serving, settings_env, wait_until_integrated
from tests.tickets.minting import eddsa_signer, forge, hmac_signer, segment, with_payload

ROOT = Path(__file__).resolve().parents[2]
STORE = "clip-store-eu1"
CLIP_ID = "clip-77a1"
CLIP = b"\x00\x00\x00\x18ftypmp42 not a real video, but bytes all the same" * 100


@pytest.fixture(params=["sqlite", "postgresql"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """A database of its own: seenby serve runs in another process, with its own integrator."""
    if request.param == "postgresql":
        settings: Settings = request.getfixturevalue("fresh_pg").settings
        return settings
    data = tmp_path / "seenby"
    settings = base_settings(data, database_url=f"sqlite+aiosqlite:///{data}/seenby.db")
    upgrade(settings)
    return settings


@contextlib.contextmanager
def clip_store(seenby_url: str, workdir: Path) -> Iterator[str]:
    """`uvicorn examples.clip_store.app:app`, holding one clip, trusting seenby's JWKS."""
    clips = workdir / "clips"
    clips.mkdir()
    (clips / CLIP_ID).write_bytes(CLIP)
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("SEENBY_", "CLIP_STORE_"))},
           "PYTHONPATH": str(ROOT), "CLIP_STORE_NAME": STORE, "CLIP_STORE_DIR": str(clips),
           "CLIP_STORE_SEENBY_URL": seenby_url}
    command = [sys.executable, "-m", "uvicorn", "examples.clip_store.app:app", "--port", str(port)]
    with serving(command, env, workdir, port, ready_path="/clips/ready", ready_status=401) as url:
        yield url


@contextlib.asynccontextmanager
async def both(
    settings: Settings, workdir: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    with running_server(settings_env(settings), workdir) as seenby, clip_store(seenby, workdir) as store:
        async with httpx.AsyncClient(base_url=seenby, timeout=30) as api, \
                httpx.AsyncClient(base_url=store, timeout=30) as clips:
            yield api, clips


def ticket_header(ticket: str) -> dict[str, str]:
    return {"Authorization": f"Ticket {ticket}"}


def payload_of(ticket: str) -> dict[str, Any]:
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(ticket.split(".")[1] + "=="))
    return claims


async def test_a_clip_leaves_the_store_only_against_a_valid_ticket(
    deployment: Settings, tmp_path: Path
) -> None:
    tokens = Tokens.for_settings(deployment)
    ticket_key = load_keys(deployment).ticket_key
    customer = f"cust-{os.urandom(4).hex()}"
    async with both(deployment, tmp_path) as (api, clips):
        consent = await api.put(f"/v1/customers/{customer}/consent", json={"human_review": True},
                                headers=tokens.customer(customer))
        assert consent.status_code == 200

        async def issue(audience: str = STORE, action: str = "view") -> str:
            event = access_event(customer, clip_id=CLIP_ID, purpose="quality_review", action=action)
            response = await api.post("/v1/access-tickets", json={"audience": audience, "event": event},
                                      headers=tokens.service())
            assert response.status_code == 201, response.text
            ticket: str = response.json()["ticket"]
            return ticket

        async def refused(ticket: str | None, check: str, url: str = f"/clips/{CLIP_ID}") -> None:
            headers = ticket_header(ticket) if ticket is not None else {}
            response = await clips.get(url, headers=headers)
            assert response.status_code == (401 if ticket is None else 403), (check, response.text)
            assert CLIP not in response.content
            assert response.headers["content-type"] == "application/problem+json"
            if ticket is not None:
                assert response.json()["check"] == check, response.text

        ticket = await issue()
        served = await clips.get(f"/clips/{CLIP_ID}", headers=ticket_header(ticket))
        assert served.status_code == 200 and served.content == CLIP
        await refused(ticket, "replay")
        await refused(None, "none")
        await refused(await issue(), "clip_id", url="/clips/clip-other")
        await refused(await issue(audience="another-store"), "aud")
        await refused(await issue(), "action", url=f"/clips/{CLIP_ID}/download")
        download = await issue(action="download")
        fetched = await clips.get(f"/clips/{CLIP_ID}/download", headers=ticket_header(download))
        assert fetched.status_code == 200 and fetched.content == CLIP

        good = payload_of(await issue())
        kid = jws.thumbprint(ticket_key.public_key())
        header = {"alg": "EdDSA", "typ": TICKET_TYPE, "kid": kid}
        now = int(time.time())
        expired = {**good, "iat": now - 900, "exp": now - 600}
        await refused(forge(header, expired, eddsa_signer(ticket_key)), "exp")
        stranger = Ed25519PrivateKey.generate()
        await refused(jws.sign_eddsa(payload_of(await issue()), stranger, typ=TICKET_TYPE), "kid")
        await refused(forge(header, payload_of(await issue()), eddsa_signer(stranger)), "signature")
        public_bytes = base64.urlsafe_b64decode(jws.public_jwk(ticket_key.public_key())["x"] + "=")
        await refused(forge({**header, "alg": "HS256"}, payload_of(await issue()), hmac_signer(public_bytes)),
                      "alg")
        unsigned = f"{segment({'alg': 'none', 'typ': TICKET_TYPE})}.{segment(payload_of(await issue()))}."
        await refused(unsigned, "alg")
        changed = await issue()
        await refused(with_payload(changed, {**payload_of(changed), "clip_id": "clip-other"}), "signature")
        untyped = {name: value for name, value in header.items() if name != "typ"}
        await refused(forge(untyped, payload_of(await issue()), eddsa_signer(ticket_key)), "typ")
        await refused(forge({**header, "typ": "JWT"}, payload_of(await issue()), eddsa_signer(ticket_key)),
                      "typ")
        api_token = tokens.mint("service", "clip-viewer")
        await refused(api_token, "alg")  # an HS256 API token: refused before its typ is read

        # Every ticket above named an entry the customer can read, committed before it was issued.
        history = await api.get("/v1/me/accesses", params={"limit": 500}, headers=tokens.customer(customer))
        assert all(item["kind"] == "access" for item in history.json()["items"])


async def test_a_refused_access_gets_no_ticket_and_the_store_serves_nothing(
    deployment: Settings, tmp_path: Path
) -> None:
    tokens = Tokens.for_settings(deployment)
    customer = f"cust-{os.urandom(4).hex()}"
    async with both(deployment, tmp_path) as (api, clips):
        event = access_event(customer, clip_id=CLIP_ID, purpose="quality_review", action="view")
        response = await api.post("/v1/access-tickets", json={"audience": STORE, "event": event},
                                  headers=tokens.service())
        assert response.status_code == 403 and response.json()["type"].endswith("access-refused")
        chain = (await api.get(f"/v1/customers/{customer}/entries", headers=tokens.regulator())).json()
        assert [(i["kind"], i["entry_hash"]) for i in chain["items"]] == [
            ("access_refused", response.json()["entry_hash"])]
        assert (await clips.get(f"/clips/{CLIP_ID}")).status_code == 401


async def test_tickets_under_load_each_name_an_entry_readable_when_they_arrive(
    deployment: Settings, tmp_path: Path
) -> None:
    tokens = Tokens.for_settings(deployment)
    customers = [f"cust-{os.urandom(4).hex()}" for _ in range(4)]
    async with both(deployment, tmp_path) as (api, clips):
        for customer in customers:
            await api.put(f"/v1/customers/{customer}/consent", json={"human_review": True},
                          headers=tokens.customer(customer))

        async def one(n: int) -> None:
            customer = customers[n % len(customers)]
            event = access_event(customer, clip_id=CLIP_ID, purpose="quality_review", action="view")
            issued = await api.post("/v1/access-tickets", json={"audience": STORE, "event": event},
                                    headers=tokens.service())
            assert issued.status_code == 201, issued.text
            entry_hash = issued.json()["receipt"]["entry_hash"]
            entry = await api.get(f"/v1/customers/{customer}/entries/{entry_hash}",
                                  headers=tokens.customer(customer))
            assert entry.status_code == 200, "a ticket arrived before its entry could be read"
            served = await clips.get(f"/clips/{CLIP_ID}", headers=ticket_header(issued.json()["ticket"]))
            assert served.status_code == 200 and served.content == CLIP

        await asyncio.gather(*(one(n) for n in range(60)))


async def test_sigkill_while_issuing_tickets_loses_and_duplicates_nothing(
    fresh_pg: Any, tmp_path: Path
) -> None:
    """Clients retry an ambiguous failure with the same event_id on either replica; every ticket that
    reached a client names an entry that is in the chain and the log, and no event is there twice."""
    tokens = Tokens.for_settings(fresh_pg.settings)
    replicas = Replicas(settings_env(fresh_pg.settings), tmp_path)
    customers = [f"cust-{os.urandom(4).hex()}" for _ in range(3)]
    sent: dict[str, dict[str, Any]] = {}
    tickets: dict[str, str] = {}  # event_id -> the entry_hash its ticket names
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            await replicas.ready(http)
            for customer in customers:
                assert (await http.put(f"{replicas.bases[0]}/v1/customers/{customer}/consent",
                                       json={"human_review": True},
                                       headers=tokens.customer(customer))).status_code == 200

            async def client(worker: int, count: int) -> None:
                for n in range(count):
                    event = access_event(customers[(worker + n) % len(customers)], clip_id=CLIP_ID,
                                         purpose="quality_review", action="view")
                    sent[event["event_id"]] = event
                    response = await replicas.post_until_acknowledged(
                        http, "/v1/access-tickets", {"audience": STORE, "event": event}, tokens.service(),
                        worker + n)
                    claims = payload_of(response.json()["ticket"])
                    assert claims["jti"] == event["event_id"]
                    assert claims["entry_hash"] == response.json()["receipt"]["entry_hash"]
                    tickets[event["event_id"]] = claims["entry_hash"]

            await asyncio.gather(*(client(w, 60) for w in range(6)), replicas.kill_in_turn(http, every=0.7))
            assert len(tickets) == len(sent) == 6 * 60
            await wait_until_integrated(http, replicas.bases[0], customers, tokens.regulator(), within=30)
            async with httpx.AsyncClient(base_url=replicas.bases[0], timeout=30) as reader:
                chains = [await fetch_chain(reader, customer, tokens.regulator()) for customer in customers]
    finally:
        replicas.stop()
    accesses = [item for chain in chains for item in chain if item["kind"] == "access"]
    for chain in chains:
        assert_chain_intact(chain)
    recorded = [item["event_id"] for item in accesses]
    assert len(recorded) == len(set(recorded)), "an event was recorded twice"
    assert {item["event_id"]: item["entry_hash"] for item in accesses} == tickets
    assert all(item["log_index"] is not None for item in accesses)
