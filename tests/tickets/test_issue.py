"""POST /v1/access-tickets over HTTP: log before access, on both backends."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt as pyjwt
import pytest
from fastapi import FastAPI

from service.main import create_app
from service.metrics import REGISTRY
from service.migrate import upgrade
from tests.chains import assert_chain_intact, fetch_chain
from tests.conftest import Tokens, base_settings, serve
from tests.factories import access_event, algorithm_actor

STORE = "clip-store-eu1"


def ticket_request(event: dict[str, Any], audience: str = STORE) -> dict[str, Any]:
    return {"audience": audience, "event": event}


async def jwks(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/v1/tickets/jwks.json")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    return response.json()


async def verified_claims(client: httpx.AsyncClient, ticket: str, audience: str = STORE) -> dict[str, Any]:
    """As a clip store in another language would: PyJWT, the key picked by kid from the JWKS."""
    kid = pyjwt.get_unverified_header(ticket)["kid"]
    [jwk] = [key for key in (await jwks(client))["keys"] if key["kid"] == kid]
    key = pyjwt.PyJWK(jwk).key
    return pyjwt.decode(ticket, key, algorithms=["EdDSA"], audience=audience, issuer="seenby.dev/log",
                        options={"require": ["exp", "iat", "jti", "sub", "aud", "iss"]})


async def ask(client: httpx.AsyncClient, tokens: Tokens, event: dict[str, Any], audience: str = STORE
              ) -> httpx.Response:
    return await client.post("/v1/access-tickets", json=ticket_request(event, audience),
                             headers=tokens.service())


async def consent(client: httpx.AsyncClient, tokens: Tokens, customer_id: str, **wanted: bool) -> None:
    response = await client.put(f"/v1/customers/{customer_id}/consent", json=wanted,
                                headers=tokens.customer(customer_id))
    assert response.status_code == 200, response.text


def human_view(customer_id: str, clip_id: str = "clip-77a1", **overrides: Any) -> dict[str, Any]:
    return access_event(customer_id, clip_id=clip_id, purpose="quality_review", action="view", **overrides)


async def test_a_ticket_names_the_committed_entry(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    await consent(client, tokens, customer_id, human_review=True)
    event = human_view(customer_id)
    response = await ask(client, tokens, event)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"receipt", "ticket", "expires_at"}
    header = json.loads(base64.urlsafe_b64decode(body["ticket"].split(".")[0] + "=="))
    assert header["alg"] == "EdDSA" and header["typ"] == "seenby-ticket+jwt"
    claims = await verified_claims(client, body["ticket"])
    receipt = body["receipt"]
    assert claims["jti"] == event["event_id"].lower() and claims["sub"] == customer_id
    assert (claims["clip_id"], claims["action"], claims["media"], claims["purpose"]) == (
        event["clip_id"], "view", event["media"], "quality_review")
    assert (claims["entry_hash"], claims["customer_seq"]) == (receipt["entry_hash"], receipt["customer_seq"])
    assert claims["exp"] - claims["iat"] == 300
    expires = datetime.fromtimestamp(claims["exp"], UTC)
    assert body["expires_at"].startswith(expires.strftime("%Y-%m-%dT%H:%M:%S"))
    # The entry was committed before the answer: the customer reads it at once.
    [item] = (await client.get("/v1/me/accesses", headers=tokens.customer(customer_id))).json()["items"]
    assert item["entry_hash"] == receipt["entry_hash"] and item["kind"] == "access"


async def test_a_replay_gets_a_fresh_ticket_for_the_same_entry(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    event = access_event(customer_id, actor=algorithm_actor(), purpose="other", action="infer")
    first = await ask(client, tokens, event)
    await asyncio.sleep(1.1)  # a new iat
    again = await ask(client, tokens, event)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["receipt"]["entry_hash"] == again.json()["receipt"]["entry_hash"]
    one, two = [await verified_claims(client, r.json()["ticket"]) for r in (first, again)]
    assert one["jti"] == two["jti"] and two["iat"] > one["iat"]
    assert len(await fetch_chain(client, customer_id, tokens.regulator())) == 1
    # Recorded through POST /v1/accesses as well: the same entry, no second one.
    replay = await client.post("/v1/accesses", json=event, headers=tokens.service())
    assert replay.status_code == 200 and replay.json()["entry_hash"] == one["entry_hash"]
    clash = await ask(client, tokens, {**event, "clip_id": "another-clip"})
    assert clash.status_code == 409


async def test_refused_without_consent_and_the_attempt_is_in_the_chain(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    event = human_view(customer_id)
    refused = await ask(client, tokens, event)
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["type"].endswith("access-refused") and problem["flags"] == ["unconsented"]
    assert "ticket" not in problem
    [item] = await fetch_chain(client, customer_id, tokens.regulator())
    assert item["kind"] == "access_refused" and item["entry_hash"] == problem["entry_hash"]
    assert item["flags"] == ["unconsented"] and item["clip_id"] == event["clip_id"]
    assert_chain_intact([item])
    # The same attempt again answers the same refusal, and writes nothing.
    again = await ask(client, tokens, event)
    assert again.status_code == 403 and again.json()["entry_hash"] == problem["entry_hash"]
    history = (await client.get("/v1/me/accesses", headers=tokens.customer(customer_id))).json()["items"]
    assert [i["kind"] for i in history] == ["access_refused"]
    summary = (await client.get("/v1/me/accesses/summary", headers=tokens.customer(customer_id))).json()
    assert (summary["total"], summary["refused"]) == (0, 1)


async def test_consent_grants_and_deletions_decide_whether_a_person_may_look(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    assert (await ask(client, tokens, human_view(customer_id))).status_code == 403
    await consent(client, tokens, customer_id, human_review=True)
    assert (await ask(client, tokens, human_view(customer_id))).status_code == 201
    await consent(client, tokens, customer_id, human_review=False)
    assert (await ask(client, tokens, human_view(customer_id))).status_code == 403
    granted = await client.post(f"/v1/customers/{customer_id}/troubleshooting-grants",
                                json={"clip_id": "clip-77a1", "note": "doorbell"},
                                headers=tokens.customer(customer_id))
    assert granted.status_code == 201
    assert (await ask(client, tokens, human_view(customer_id))).status_code == 201
    assert (await ask(client, tokens, human_view(customer_id, clip_id="clip-other"))).status_code == 403
    filed = await client.post(f"/v1/customers/{customer_id}/deletion-requests",
                              json={"clip_ids": ["clip-77a1"]}, headers=tokens.customer(customer_id))
    assert filed.status_code == 202
    after = await ask(client, tokens, human_view(customer_id))
    assert after.status_code == 403 and "access_after_deletion" in after.json()["flags"]
    kinds = [i["kind"] for i in await fetch_chain(client, customer_id, tokens.regulator())
             if i["kind"].startswith("access")]
    assert kinds == ["access_refused", "access", "access_refused", "access", "access_refused",
                     "access_refused"]


async def test_a_refusal_holds_the_flags_that_refused_it_and_no_others(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    """A security access is flagged needs_review; after a deletion request it is refused, and only
    access_after_deletion refused it. An access recorded by POST /v1/accesses keeps every flag."""
    filed = await client.post(f"/v1/customers/{customer_id}/deletion-requests",
                              json={"clip_ids": ["clip-77a1"]}, headers=tokens.customer(customer_id))
    assert filed.status_code == 202
    refused = await ask(client, tokens, access_event(customer_id, purpose="security"))
    assert refused.status_code == 403 and refused.json()["flags"] == ["access_after_deletion"]
    event = access_event(customer_id, purpose="security")
    recorded = await client.post("/v1/accesses", json=event, headers=tokens.service())
    assert recorded.status_code == 201
    [attempt, access] = [i for i in await fetch_chain(client, customer_id, tokens.regulator())
                         if i["kind"].startswith("access")]
    assert (attempt["kind"], attempt["flags"]) == ("access_refused", ["access_after_deletion"])
    assert attempt["entry_hash"] == refused.json()["entry_hash"]
    assert (access["kind"], sorted(access["flags"])) == ("access", ["access_after_deletion", "needs_review"])
    # A ticket for that recorded access: refused, naming the flag that refuses it; nothing written.
    again = await ask(client, tokens, event)
    assert again.status_code == 403 and again.json()["flags"] == ["access_after_deletion"]
    assert again.json()["entry_hash"] == access["entry_hash"]


async def test_needs_review_gets_its_ticket_with_the_flag(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    response = await ask(client, tokens, access_event(customer_id, purpose="security"))
    assert response.status_code == 201
    assert (await verified_claims(client, response.json()["ticket"]))["flags"] == ["needs_review"]


async def test_monitor_only_mode_issues_tickets_with_their_flags(tmp_path: Path, customer_id: str) -> None:
    # A database of its own: a second app on the session's would run a second integrator on its log.
    settings = base_settings(tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/monitor.db",
                             tickets_enforce=False)
    await asyncio.to_thread(upgrade, settings)  # Alembic runs its own event loop
    app = create_app(settings)
    async for client in serve(app):
        tokens = Tokens(app)
        response = await ask(client, tokens, human_view(customer_id))
        assert response.status_code == 201, response.text
        assert (await verified_claims(client, response.json()["ticket"]))["flags"] == ["unconsented"]
        [item] = await fetch_chain(client, customer_id, tokens.regulator())
        assert (item["kind"], item["flags"]) == ("access", ["unconsented"])


@pytest.mark.parametrize("body", [
    {"event": None},
    {"audience": "", "event": None},
    {"audience": "   ", "event": None},
    {"audience": STORE, "event": None, "note": "extra"},
    {"audience": STORE, "event": {"bad": True}},
    {"audience": STORE},
], ids=["no-audience", "empty-audience", "blank-audience", "unknown-field", "bad-event", "no-event"])
async def test_bad_requests_are_422_and_record_nothing(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str, body: dict[str, Any]
) -> None:
    if "event" in body and body["event"] is None:
        body = {**body, "event": access_event(customer_id)}
    response = await client.post("/v1/access-tickets", json=body, headers=tokens.service())
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert await fetch_chain(client, customer_id, tokens.regulator()) == []


async def test_only_services_ask_and_tickets_are_not_api_tokens(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    body = ticket_request(access_event(customer_id, actor=algorithm_actor(), purpose="other"))
    for headers in (tokens.customer(customer_id), tokens.regulator(), tokens.admin()):
        response = await client.post("/v1/access-tickets", json=body, headers=headers)
        assert response.status_code == 403 and response.json()["type"].endswith("/forbidden")
    assert (await client.post("/v1/access-tickets", json=body)).status_code == 401
    issued = await client.post("/v1/access-tickets", json=body, headers=tokens.service())
    assert issued.status_code == 201
    as_bearer = {"Authorization": f"Bearer {issued.json()['ticket']}"}
    for url in (f"/v1/customers/{customer_id}/accesses", "/v1/me/accesses"):
        assert (await client.get(url, headers=as_bearer)).status_code == 401


async def test_the_jwks_lists_the_ticket_key_and_never_the_log_key(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    from service import jws

    keys = (await jwks(client))["keys"]
    assert keys[0] == jws.public_jwk(app.state.keys.ticket_key.public_key())
    assert {key["kty"] for key in keys} == {"OKP"} and all("d" not in key for key in keys)
    log_key = jws.public_jwk(app.state.keys.signing_key.public_key())
    assert log_key["x"] not in {key["x"] for key in keys}


async def test_tickets_under_concurrent_load_each_name_a_readable_entry(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    customers = [f"{customer_id}-{n}" for n in range(4)]

    async def one(customer: str) -> None:
        event = access_event(customer, actor=algorithm_actor(), purpose="other", action="infer",
                             clip_id=f"clip-{uuid.uuid4().hex[:6]}")
        response = await ask(client, tokens, event)
        assert response.status_code == 201, response.text
        entry_hash = response.json()["receipt"]["entry_hash"]
        found = await client.get(f"/v1/customers/{customer}/entries/{entry_hash}",
                                 headers=tokens.customer(customer))
        assert found.status_code == 200, "the ticket came before its entry was readable"

    await asyncio.gather(*(one(customers[n % 4]) for n in range(80)))
    for customer in customers:
        assert_chain_intact(await fetch_chain(client, customer, tokens.regulator()))


async def test_metrics_count_tickets_issued_and_refused(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = (value("seenby_tickets_issued_total"), value("seenby_tickets_refused_total", flag="unconsented"),
              value("seenby_ticket_seconds_count"))
    await ask(client, tokens, access_event(customer_id, actor=algorithm_actor(), purpose="other"))
    await ask(client, tokens, human_view(customer_id))
    after = (value("seenby_tickets_issued_total"), value("seenby_tickets_refused_total", flag="unconsented"),
             value("seenby_ticket_seconds_count"))
    assert [b - a for a, b in zip(before, after, strict=True)] == [1, 1, 2]
    text = (await client.get("/metrics")).text
    assert "seenby_ticket_seconds_bucket" in text


async def test_refused_attempts_are_exported_and_reported(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str, tmp_path: Path
) -> None:
    from service.verify import export as verify_export
    from tests.exports.support import export, manifest, settled

    refused = await ask(client, tokens, human_view(customer_id))
    allowed = await ask(client, tokens, access_event(customer_id, actor=algorithm_actor(), purpose="other"))
    assert (refused.status_code, allowed.status_code) == (403, 201)
    await settled(client, tokens, customer_id, 2)
    response = await export(client, tokens.regulator(), customer_id=customer_id, kind="all")
    everything = [json.loads(line) for line in response.content.splitlines()]
    assert [line["kind"] for line in everything] == ["access_refused", "access"]
    assert everything[0]["entry_hash"] == refused.json()["entry_hash"]
    only = await export(client, tokens.regulator(), customer_id=customer_id, kind="access_refused")
    [line] = only.content.splitlines()
    assert json.loads(line)["flags"] == ["unconsented"]
    # The export of every kind verifies offline, refused attempts and all, whole chain included.
    data, described = tmp_path / "all.jsonl", tmp_path / "all.jsonl.manifest.json"
    data.write_bytes(response.content)
    pinned = response.headers["seenby-tree-size"]
    described.write_text(json.dumps(await manifest(client, tokens.regulator(), customer_id=customer_id,
                                                   kind="all", tree_size=pinned)))
    key = (await client.get("/v1/log/key")).text.strip()
    from service.ledger.checkpoint import parse_verifier_key

    verify_export(data, described, parse_verifier_key(key))
    report = await client.get("/v1/reports/transparency", headers=tokens.regulator())
    assert report.status_code == 200 and report.json()["accesses"]["refused"] >= 1
