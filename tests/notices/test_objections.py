"""Objections over HTTP on both backends: a customer objects to one of its accesses, the objection is
an entry in its chain, regulators list them within their jurisdiction, the report counts them, and
a customer objecting too fast is told to wait."""

from __future__ import annotations

import uuid

import httpx

from service.main import create_app
from service.settings import Settings
from tests.chains import assert_chain_intact, fetch_chain
from tests.conftest import Tokens, serve
from tests.exports.support import lines, set_countries, settled
from tests.factories import access_event, human_actor

REPORT = "/v1/reports/transparency"
LIST = "/v1/objections"


async def _access(client: httpx.AsyncClient, tokens: Tokens, customer: str, **event: object) -> str:
    response = await client.post("/v1/accesses", json=access_event(customer, **event),
                                 headers=tokens.service())
    assert response.status_code == 201, response.text
    return str(response.json()["entry_hash"])


def _objections(customer: str) -> str:
    return f"/v1/customers/{customer}/objections"


async def test_an_objection_is_an_entry_citing_the_access(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    watched = await _access(client, tokens, customer_id)
    filed = await client.post(_objections(customer_id), headers=tokens.customer(customer_id),
                              json={"entry_hash": watched, "reason": "Nobody asked me."})
    assert filed.status_code == 201, filed.text
    objection = filed.json()
    assert objection["objected_entry_hash"] == watched and objection["reason"] == "Nobody asked me."
    assert objection["purpose"] == "quality_review" and objection["organization"] == "Annotation vendor B"
    chain = await fetch_chain(client, customer_id, tokens.customer(customer_id))
    assert_chain_intact(chain)
    entry = chain[-1]
    assert entry["kind"] == "objection" and entry["entry_hash"] == objection["entry_hash"]
    assert entry["customer_seq"] == objection["customer_seq"] == 1
    assert entry["objected_entry_hash"] == watched and entry["reason"] == "Nobody asked me."
    mine = (await client.get("/v1/me/objections", headers=tokens.customer(customer_id))).json()
    theirs = (await client.get(_objections(customer_id), headers=tokens.regulator())).json()
    view = {k: v for k, v in objection.items() if k != "customer_seq"}
    assert mine["items"] == theirs["items"] == [view]

    again = await client.post(_objections(customer_id), headers=tokens.customer(customer_id),
                              json={"entry_hash": watched})
    assert again.status_code == 409 and again.headers["content-type"] == "application/problem+json"
    # Without a reason, through /v1/me, for a refused attempt too.
    other = await _access(client, tokens, customer_id)
    bare = await client.post("/v1/me/objections", headers=tokens.customer(customer_id),
                             json={"entry_hash": other})
    assert bare.status_code == 201 and bare.json()["reason"] is None
    assert len(await fetch_chain(client, customer_id, tokens.regulator())) == 4
    await settled(client, tokens, customer_id, 4)
    exported = lines(await client.get("/v1/exports/accesses", headers=tokens.regulator(),
                                      params={"customer_id": customer_id, "kind": "objection"}))
    assert [line["entry_hash"] for line in exported] == [objection["entry_hash"], bare.json()["entry_hash"]]
    assert exported[0]["objected_entry_hash"] == watched


async def test_objections_to_what_is_not_the_customers_access_are_refused(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    victim = f"{customer_id}-victim"
    theirs = await _access(client, tokens, victim)
    mine = await _access(client, tokens, customer_id)
    consent = await client.put(f"/v1/customers/{customer_id}/consent", json={"human_review": True},
                               headers=tokens.customer(customer_id))
    assert consent.status_code == 200
    consent_entry = (await fetch_chain(client, customer_id, tokens.customer(customer_id)))[-1]["entry_hash"]
    cases = [
        (tokens.customer(customer_id), _objections(customer_id), {"entry_hash": theirs}, 404),
        (tokens.customer(customer_id), _objections(customer_id), {"entry_hash": "ab" * 32}, 404),
        (tokens.customer(customer_id), _objections(victim), {"entry_hash": theirs}, 404),
        (tokens.customer(customer_id), _objections(customer_id), {"entry_hash": consent_entry}, 409),
        (tokens.customer(customer_id), _objections(customer_id), {"entry_hash": "nope"}, 422),
        (tokens.customer(customer_id), _objections(customer_id), {}, 422),
        (tokens.customer(customer_id), _objections(customer_id), {"entry_hash": mine, "extra": 1}, 422),
        (tokens.customer(customer_id), _objections(customer_id), {"entry_hash": mine, "reason": ""}, 422),
        (tokens.customer(customer_id), _objections(customer_id), {"entry_hash": mine, "reason": "x" * 1001},
         422),
        (tokens.regulator(), _objections(customer_id), {"entry_hash": mine}, 403),
        (tokens.service(), _objections(customer_id), {"entry_hash": mine}, 403),
        ({}, _objections(customer_id), {"entry_hash": mine}, 401),
    ]
    for headers, url, body, status in cases:
        response = await client.post(url, json=body, headers=headers)
        assert response.status_code == status, (url, body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    # Nothing was written by any of them.
    assert len(await fetch_chain(client, customer_id, tokens.regulator())) == 2
    assert len(await fetch_chain(client, victim, tokens.regulator())) == 1
    assert (await client.get(_objections(victim), headers=tokens.customer(customer_id))).status_code == 404


async def test_regulators_list_objections_in_their_jurisdiction_and_the_report_counts_them(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    run = uuid.uuid4().hex[:8]
    german, french = f"cust-de-{run}", f"cust-fr-{run}"
    await set_countries(client, tokens, {german: "DE", french: "FR"})
    before = (await client.get(REPORT, headers=tokens.regulator("DE"))).json()["objections"]
    vendor = f"Vendor {run}"
    for customer in (german, french):
        watched = await _access(client, tokens, customer, actor=human_actor(organization=vendor))
        response = await client.post(_objections(customer), json={"entry_hash": watched},
                                     headers=tokens.customer(customer))
        assert response.status_code == 201
    support = await _access(client, tokens, german, purpose="customer_support")
    await client.post(_objections(german), json={"entry_hash": support}, headers=tokens.customer(german))

    listed = (await client.get(LIST, params={"limit": 500}, headers=tokens.regulator("DE"))).json()
    assert {o["customer_id"] for o in listed["items"]} >= {german}
    assert french not in {o["customer_id"] for o in listed["items"]}
    everyone = (await client.get("/v1/objections", params={"limit": 500}, headers=tokens.regulator())).json()
    assert {german, french} <= {o["customer_id"] for o in everyone["items"]}
    first = (await client.get("/v1/objections", params={"limit": 1}, headers=tokens.regulator())).json()
    rest = (await client.get("/v1/objections", params={"limit": 500, "cursor": first["next_cursor"]},
                             headers=tokens.regulator())).json()
    assert first["items"] + rest["items"] == everyone["items"]
    for role in (tokens.customer(german), tokens.service()):
        assert (await client.get("/v1/objections", headers=role)).status_code == 403
    assert (await client.get(_objections(french), headers=tokens.regulator("DE"))).status_code == 404

    after = (await client.get(REPORT, headers=tokens.regulator("DE"))).json()["objections"]
    assert after["total"] - before["total"] == 2
    assert after["by_organization"].get(vendor) == 1
    support_before = before["by_purpose"].get("customer_support", 0)
    assert after["by_purpose"].get("customer_support", 0) - support_before == 1
    csv = (await client.get(REPORT, params={"format": "csv"},
                            headers=tokens.regulator("DE"))).text
    assert f"objections,by_organization,{vendor},1" in csv


async def test_a_customer_objecting_faster_than_its_rate_gets_429_with_retry_after(
    settings: Settings,
) -> None:
    app = create_app(settings.model_copy(update={"objections_per_minute": 3}))
    tokens = Tokens(app)
    customer, neighbour = f"cust-{uuid.uuid4().hex[:8]}", f"cust-{uuid.uuid4().hex[:8]}"
    async for client in serve(app):
        watched = [await _access(client, tokens, customer) for _ in range(5)]
        theirs = await _access(client, tokens, neighbour)
        statuses = []
        for n, entry_hash in enumerate(watched[:4]):  # both routes share the customer's rate
            url = _objections(customer) if n % 2 else "/v1/me/objections"
            response = await client.post(url, headers=tokens.customer(customer),
                                         json={"entry_hash": entry_hash, "reason": "No."})
            statuses.append(response.status_code)
        assert statuses == [201, 201, 201, 429], statuses
        assert response.headers["content-type"] == "application/problem+json"
        assert 1 <= int(response.headers["retry-after"]) <= 20  # a token every 20 s at 3 a minute
        assert "more than 3 objections a minute" in response.json()["detail"]
        again = await client.post(_objections(customer), headers=tokens.customer(customer),
                                  json={"entry_hash": watched[4]})
        assert again.status_code == 429
        # The refusals wrote nothing; another customer, and reading, are not held back.
        chain = await fetch_chain(client, customer, tokens.customer(customer))
        assert [e["kind"] for e in chain].count("objection") == 3
        other = await client.post("/v1/me/objections", headers=tokens.customer(neighbour),
                                  json={"entry_hash": theirs})
        assert other.status_code == 201, other.text
        listed = await client.get("/v1/me/objections", headers=tokens.customer(customer))
        assert listed.status_code == 200 and len(listed.json()["items"]) == 3
