"""Consent, troubleshooting grants and access decisions over HTTP: each rule allowing and denying."""

from __future__ import annotations

import time

import httpx
import pytest
from jose import jwt

from service import clock
from tests.chains import assert_chain_intact, fetch_chain
from tests.conftest import Tokens
from tests.factories import access_event, algorithm_actor, human_actor


async def set_consent(client: httpx.AsyncClient, tokens: Tokens, customer_id: str, **consent: bool) -> dict:
    response = await client.put(f"/v1/customers/{customer_id}/consent", json=consent,
                                headers=tokens.customer(customer_id))
    assert response.status_code == 200, response.text
    return response.json()


async def flags_of(client: httpx.AsyncClient, tokens: Tokens, event: dict) -> list[str]:
    response = await client.post("/v1/accesses", json=event, headers=tokens.service())
    assert response.status_code == 201, response.text
    items = (await client.get(f"/v1/customers/{event['customer_id']}/accesses",
                              headers=tokens.regulator())).json()["items"]
    [item] = [i for i in items if i["event_id"] == event["event_id"]]
    return item["flags"]


async def decide(client: httpx.AsyncClient, tokens: Tokens, customer_id: str, **overrides: object) -> dict:
    body = {"customer_id": customer_id, "clip_id": "clip-1", "actor": human_actor(),
            "action": "view", "purpose": "troubleshooting", **overrides}
    response = await client.post("/v1/access-decisions", json=body, headers=tokens.service())
    assert response.status_code == 201, response.text
    return response.json()


async def test_consent_defaults_changes_and_entries(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    url = f"/v1/customers/{customer_id}/consent"
    assert (await client.get(url, headers=tokens.customer(customer_id))).json() == {
        "human_review": False, "model_training": False}
    assert await set_consent(client, tokens, customer_id, human_review=True) == {
        "human_review": True, "model_training": False}
    assert await set_consent(client, tokens, customer_id, human_review=True) == {
        "human_review": True, "model_training": False}
    assert await set_consent(client, tokens, customer_id, human_review=False, model_training=True) == {
        "human_review": False, "model_training": True}
    assert (await client.get(url, headers=tokens.regulator())).json()["model_training"] is True
    chain = await fetch_chain(client, customer_id, tokens.regulator())
    assert [i["kind"] for i in chain] == ["consent_changed", "consent_changed"], "no entry for a no-op"
    assert chain[1]["consent"] == {"human_review": False, "model_training": True}
    assert chain[1]["previous"] == {"human_review": True, "model_training": False}
    assert_chain_intact(chain)


@pytest.mark.parametrize("body", [{}, {"human_review": "yes"}, {"human_review": True, "admin": True},
                                  {"human_review": None, "model_training": None}])
async def test_bad_consent_bodies_are_422(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str, body: dict
) -> None:
    response = await client.put(f"/v1/customers/{customer_id}/consent", json=body,
                                headers=tokens.customer(customer_id))
    assert response.status_code == 422
    assert await fetch_chain(client, customer_id, tokens.regulator()) == []


async def test_other_customers_consent_is_404(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    victim = f"{customer_id}-v"
    url = f"/v1/customers/{victim}/consent"
    attacker = tokens.customer(customer_id)
    assert (await client.get(url, headers=attacker)).status_code == 404
    assert (await client.put(url, json={"model_training": True}, headers=attacker)).status_code == 404
    as_regulator = await client.put(url, json={"model_training": True}, headers=tokens.regulator())
    assert as_regulator.status_code == 403
    assert (await client.get(url, headers=tokens.service())).status_code == 403
    grants = f"/v1/customers/{victim}/troubleshooting-grants"
    assert (await client.post(grants, json={"clip_id": "c"}, headers=attacker)).status_code == 404
    assert (await client.get(grants, headers=attacker)).status_code == 404
    assert (await client.get(url, headers=tokens.customer(victim))).json()["model_training"] is False


TRAINING = {"actor": algorithm_actor(), "action": "train", "purpose": "model_training"}
CASES = [
    # (consent, event overrides, expected flags)
    ({}, {"purpose": "quality_review"}, ["unconsented"]),
    ({"human_review": True}, {"purpose": "quality_review"}, []),
    ({}, TRAINING, ["unconsented"]),
    ({"model_training": True}, TRAINING, []),
    ({"human_review": True}, {"action": "train", "purpose": "quality_review"}, ["unconsented"]),
    ({"human_review": True}, {"action": "annotate", "purpose": "model_training"}, ["unconsented"]),
    ({"model_training": True}, {"action": "annotate", "purpose": "model_training"}, []),
    ({}, {"actor": algorithm_actor(), "action": "infer", "purpose": "other"}, []),
    ({}, {"purpose": "security"}, ["needs_review"]),
    ({}, {"purpose": "legal_request", "action": "download"}, ["needs_review"]),
]


@pytest.mark.parametrize(("consent", "overrides", "expected"), CASES)
async def test_what_covers_an_access(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str, consent: dict, overrides: dict,
    expected: list[str],
) -> None:
    if consent:
        await set_consent(client, tokens, customer_id, **consent)
    assert await flags_of(client, tokens, access_event(customer_id, **overrides)) == expected


async def test_troubleshooting_grants_cover_one_clip_for_a_while(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"/v1/customers/{customer_id}/troubleshooting-grants"
    response = await client.post(url, json={"clip_id": "clip-7", "note": "audio cuts out"},
                                 headers=tokens.customer(customer_id))
    assert response.status_code == 201
    grant = response.json()
    assert grant["clip_id"] == "clip-7" and grant["status"] == "live" and grant["expires_at"]
    support = {"purpose": "troubleshooting", "actor": human_actor("emp-support")}
    assert await flags_of(client, tokens, access_event(customer_id, clip_id="clip-7", **support)) == []
    assert await flags_of(client, tokens, access_event(customer_id, clip_id="clip-8", **support)) == [
        "unconsented"]

    real_now = clock.now_us
    monkeypatch.setattr(clock, "now_us", lambda: real_now() + 31 * clock.DAY_US)
    assert await flags_of(client, tokens, access_event(customer_id, clip_id="clip-7", **support)) == [
        "unconsented"], "an expired grant covers nothing"
    monkeypatch.setattr(clock, "now_us", real_now)

    # Its body, when sent, is an empty object like any body here: unknown fields or no JSON are 422.
    for bad in ('{"unknown_field": 1}', "not json", "[]"):
        refused = await client.post(f"{url}/{grant['id']}/withdraw", content=bad, headers={
            **tokens.customer(customer_id), "content-type": "application/json"})
        assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
    assert (await client.get(url, headers=tokens.regulator())).json()["items"][0]["status"] == "live"
    withdrawn = await client.post(f"{url}/{grant['id']}/withdraw", headers=tokens.customer(customer_id))
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    emptied = await client.post(f"{url}/{grant['id']}/withdraw", json={},
                                headers=tokens.customer(customer_id))
    assert emptied.status_code == 200 and emptied.json() == withdrawn.json()
    again = await client.post(f"{url}/{grant['id']}/withdraw", headers=tokens.customer(customer_id))
    assert again.json() == withdrawn.json()
    assert await flags_of(client, tokens, access_event(customer_id, clip_id="clip-7", **support)) == [
        "unconsented"]
    listed = (await client.get(url, headers=tokens.regulator())).json()["items"]
    assert [g["status"] for g in listed] == ["withdrawn"]
    kinds = [i["kind"] for i in await fetch_chain(client, customer_id, tokens.regulator())]
    assert kinds.count("troubleshooting_granted") == 1 and kinds.count("troubleshooting_withdrawn") == 1
    unknown = await client.post(f"{url}/01a21377-0000-7000-8000-000000000000/withdraw",
                                headers=tokens.customer(customer_id))
    assert unknown.status_code == 404


async def test_access_decisions_follow_the_rules_and_are_entries(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    denied = await decide(client, tokens, customer_id)
    assert denied["decision"] == "deny" and "human_review" in denied["reason"]
    await client.post(f"/v1/customers/{customer_id}/troubleshooting-grants", json={"clip_id": "clip-1"},
                      headers=tokens.customer(customer_id))
    allowed = await decide(client, tokens, customer_id)
    assert allowed["decision"] == "allow" and "grant" in allowed["reason"]
    training = await decide(client, tokens, customer_id, actor=algorithm_actor(), action="train",
                            purpose="model_training")
    assert training["decision"] == "deny"
    security = await decide(client, tokens, customer_id, purpose="security")
    assert security["decision"] == "allow" and "review" in security["reason"]

    chain = await fetch_chain(client, customer_id, tokens.regulator())
    decisions = [i for i in chain if i["kind"] == "access_decision"]
    assert [d["entry_hash"] for d in decisions] == [
        denied["entry_hash"], allowed["entry_hash"], training["entry_hash"], security["entry_hash"]]
    assert decisions[0]["decision_id"] == denied["id"] and decisions[0]["decision"] == "deny"
    assert "id" not in decisions[0]["entry"]["actor"] and decisions[0]["entry"]["actor"]["pseudonym"]
    assert decisions[0]["actor"]["id"] == "emp-55812", "regulators see who asked"
    assert_chain_intact(chain)


async def test_decisions_after_a_deletion_request_deny(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    await set_consent(client, tokens, customer_id, human_review=True, model_training=True)
    assert (await decide(client, tokens, customer_id))["decision"] == "allow"
    await client.post(f"/v1/customers/{customer_id}/deletion-requests", json={"clip_ids": ["clip-1"]},
                      headers=tokens.customer(customer_id))
    after = await decide(client, tokens, customer_id)
    assert after["decision"] == "deny" and "delet" in after["reason"]
    assert (await decide(client, tokens, customer_id, clip_id="clip-2"))["decision"] == "allow"


async def test_a_cited_decision_covers_only_its_own_access(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    other_customer = f"{customer_id}-o"
    await set_consent(client, tokens, other_customer, human_review=True)
    theirs = await decide(client, tokens, other_customer)
    await client.post(f"/v1/customers/{customer_id}/troubleshooting-grants", json={"clip_id": "clip-1"},
                      headers=tokens.customer(customer_id))
    mine = await decide(client, tokens, customer_id)
    assert mine["decision"] == theirs["decision"] == "allow"
    grants = (await client.get(f"/v1/customers/{customer_id}/troubleshooting-grants",
                               headers=tokens.customer(customer_id))).json()["items"]
    await client.post(f"/v1/customers/{customer_id}/troubleshooting-grants/{grants[0]['id']}/withdraw",
                      headers=tokens.customer(customer_id))

    base = {"clip_id": "clip-1", "action": "view", "purpose": "troubleshooting"}
    cited = access_event(customer_id, **base, authorization_id=mine["id"])
    assert await flags_of(client, tokens, cited) == [], "an allow for the same access covers it"
    mismatches = [
        access_event(customer_id, **base, authorization_id=theirs["id"]),
        access_event(customer_id, **{**base, "clip_id": "clip-2"}, authorization_id=mine["id"]),
        access_event(customer_id, **{**base, "action": "download"}, authorization_id=mine["id"]),
        access_event(customer_id, **{**base, "purpose": "quality_review"}, authorization_id=mine["id"]),
        access_event(customer_id, **base, authorization_id="01a21377-0000-7000-8000-000000000000"),
    ]
    for event in mismatches:
        assert await flags_of(client, tokens, event) == ["unconsented", "authorization_invalid"], event


async def test_bad_decision_requests_are_422(client: httpx.AsyncClient, tokens: Tokens) -> None:
    for body in ({"customer_id": "c", "clip_id": "x", "actor": human_actor(), "action": "view"},
                 {"customer_id": "c", "clip_id": "x", "actor": human_actor(), "action": "view",
                  "purpose": "troubleshooting", "decision": "allow"}):
        assert (await client.post("/v1/access-decisions", json=body,
                                  headers=tokens.service())).status_code == 422
    body = {"customer_id": "c", "clip_id": "x", "actor": human_actor(), "action": "view",
            "purpose": "troubleshooting"}
    assert (await client.post("/v1/access-decisions", json=body,
                              headers=tokens.customer("c"))).status_code == 403


async def test_a_token_with_customer_and_regulator_roles_writes_only_for_itself(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    victim = f"{customer_id}-v"
    # mint_token makes one role; this token, signed with the same secret, carries two.
    claims = {"iss": tokens._settings.jwt_issuer, "aud": tokens._settings.jwt_audience, "sub": customer_id,
              "roles": ["customer", "regulator"], "exp": int(time.time()) + 60}
    both = {"Authorization": "Bearer " + jwt.encode(claims, tokens._keys.jwt_secret, algorithm="HS256")}
    assert (await client.get(f"/v1/customers/{victim}/consent", headers=both)).status_code == 200
    for method, url, body in (
        ("PUT", f"/v1/customers/{victim}/consent", {"model_training": True}),
        ("POST", f"/v1/customers/{victim}/deletion-requests", {"scope": "all"}),
        ("POST", f"/v1/customers/{victim}/troubleshooting-grants", {"clip_id": "c"}),
    ):
        assert (await client.request(method, url, json=body, headers=both)).status_code == 404, url
    assert await fetch_chain(client, victim, tokens.regulator()) == []


async def test_security_access_citing_another_decision_is_flagged(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    other = await decide(client, tokens, f"{customer_id}-o", purpose="security")
    event = access_event(customer_id, purpose="security", authorization_id=other["id"])
    assert await flags_of(client, tokens, event) == ["needs_review", "authorization_invalid"]


@pytest.mark.parametrize("actor_change", [{"organization": None}, {"country": None}, {"version": "4.2.0"}])
async def test_a_decision_for_a_human_actor_needs_organization_and_country_and_no_version(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str, actor_change: dict
) -> None:
    actor = {k: v for k, v in {**human_actor(), **actor_change}.items() if v is not None}
    body = {"customer_id": customer_id, "clip_id": "clip-1", "actor": actor,
            "action": "view", "purpose": "troubleshooting"}
    response = await client.post("/v1/access-decisions", json=body, headers=tokens.service())
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert any("actor" in error["field"] for error in response.json()["errors"])
    assert await fetch_chain(client, customer_id, tokens.regulator()) == [], "nothing recorded"
