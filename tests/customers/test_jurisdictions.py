"""Customers' jurisdictions: set by admins, one or many; they limit regulators with a jurisdiction."""

from __future__ import annotations

import httpx

from tests.conftest import Tokens
from tests.exports.support import record, set_countries
from tests.factories import access_event

ADMIN = "/v1/admin/customers"


async def test_an_admin_sets_a_customers_country(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    created = await client.put(f"{ADMIN}/{customer_id}", json={"country": "DE"}, headers=tokens.admin())
    assert created.status_code == 201 and created.json() == {"customer_id": customer_id, "country": "DE"}
    changed = await client.put(f"{ADMIN}/{customer_id}", json={"country": "AT"}, headers=tokens.admin())
    assert changed.status_code == 200 and changed.json()["country"] == "AT"
    read = await client.get(f"{ADMIN}/{customer_id}", headers=tokens.admin())
    assert read.json() == {"customer_id": customer_id, "country": "AT"}
    assert (await client.get(f"{ADMIN}/{customer_id}-never", headers=tokens.admin())).status_code == 404


async def test_the_bulk_form_is_all_or_nothing(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    await set_countries(client, tokens, {f"{customer_id}-0": "FR"})
    body = {"customers": [{"customer_id": f"{customer_id}-{i}", "country": "DE"} for i in range(3)]
            + [{"customer_id": f"{customer_id}-1", "country": "DE"}]}  # a repeat that agrees is fine
    response = await client.put(ADMIN, json=body, headers=tokens.admin())
    assert response.status_code == 200, response.text
    assert response.json() == {"count": 3, "created": 2, "updated": 1}
    for i in range(3):
        read = await client.get(f"{ADMIN}/{customer_id}-{i}", headers=tokens.admin())
        assert read.json()["country"] == "DE"

    conflicting = {"customers": [{"customer_id": f"{customer_id}-new", "country": "DE"},
                                 {"customer_id": f"{customer_id}-2", "country": "FR"},
                                 {"customer_id": f"{customer_id}-2", "country": "IT"}]}
    response = await client.put(ADMIN, json=conflicting, headers=tokens.admin())
    assert response.status_code == 422 and f"{customer_id}-2" in response.json()["detail"]
    assert (await client.get(f"{ADMIN}/{customer_id}-new", headers=tokens.admin())).status_code == 404
    bad_one = {"customers": [{"customer_id": f"{customer_id}-new", "country": "DE"},
                             {"customer_id": f"{customer_id}-bad", "country": "XX"}]}
    response = await client.put(ADMIN, json=bad_one, headers=tokens.admin())
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.customers.1.country"
    assert (await client.get(f"{ADMIN}/{customer_id}-new", headers=tokens.admin())).status_code == 404


async def test_bad_countries_and_unknown_fields_are_422(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    for body in ({"country": "de"}, {"country": "DEU"}, {"country": "XX"}, {"country": 49},
                 {"country": None}, {}, {"country": "DE", "customer_id": "other"},
                 {"country": "DE", "note": "x"}):
        response = await client.put(f"{ADMIN}/{customer_id}", json=body, headers=tokens.admin())
        assert response.status_code == 422, body
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"], body
    for body in ({"customers": []}, {"customers": [{"customer_id": "c", "country": "DE", "x": 1}]},
                 {"customers": [{"customer_id": "", "country": "DE"}]},
                 {"customers": [{"customer_id": "c" * 129, "country": "DE"}]},
                 {"customers": [{"customer_id": "c", "country": "DE"}] * 10_001},
                 {"customers": [], "extra": True}):
        response = await client.put(ADMIN, json=body, headers=tokens.admin())
        assert response.status_code in (413, 422), str(body)[:80]
    assert (await client.get(f"{ADMIN}/{customer_id}", headers=tokens.admin())).status_code == 404


async def test_only_admins_set_jurisdictions(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    for headers in (tokens.customer(customer_id), tokens.service(), tokens.regulator()):
        response = await client.put(f"{ADMIN}/{customer_id}", json={"country": "DE"}, headers=headers)
        assert response.status_code == 403
        assert (await client.get(f"{ADMIN}/{customer_id}", headers=headers)).status_code == 403
        response = await client.put(ADMIN, json={"customers": [{"customer_id": customer_id,
                                                                "country": "DE"}]}, headers=headers)
        assert response.status_code == 403
    assert (await client.put(f"{ADMIN}/{customer_id}", json={"country": "DE"})).status_code == 401


async def test_admins_see_no_entry_contents(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    receipt = (await record(client, tokens, [access_event(customer_id)]))[0]
    for url in (f"/v1/customers/{customer_id}/accesses", f"/v1/customers/{customer_id}/entries",
                f"/v1/customers/{customer_id}/accesses/summary",
                f"/v1/customers/{customer_id}/entries/{receipt['entry_hash']}",
                "/v1/exports/accesses", "/v1/exports/accesses/manifest", "/v1/reports/transparency"):
        assert (await client.get(url, headers=tokens.admin())).status_code == 403, url


async def test_a_jurisdiction_limits_histories_to_its_customers(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    german, french, unknown = f"{customer_id}-de", f"{customer_id}-fr", f"{customer_id}-xx"
    receipts = {c: (await record(client, tokens, [access_event(c)]))[0] for c in (german, french, unknown)}
    await set_countries(client, tokens, {german: "DE", french: "FR"})

    def urls(customer: str) -> list[str]:
        base = f"/v1/customers/{customer}"
        return [f"{base}/accesses", f"{base}/accesses/summary", f"{base}/entries",
                f"{base}/entries/{receipts[customer]['entry_hash']}"]

    berlin, paris, anyone = (tokens.regulator(jurisdiction="DE"), tokens.regulator(jurisdiction="FR"),
                             tokens.regulator())
    for url in urls(german):
        assert (await client.get(url, headers=berlin)).status_code == 200, url
        assert (await client.get(url, headers=paris)).status_code == 404, url
    for url in urls(french):
        assert (await client.get(url, headers=paris)).status_code == 200, url
        assert (await client.get(url, headers=berlin)).status_code == 404, url
    for url in urls(unknown):
        assert (await client.get(url, headers=berlin)).status_code == 404, url
        assert (await client.get(url, headers=anyone)).status_code == 200, url
    await set_countries(client, tokens, {french: "DE"})  # moved: Berlin sees it now, Paris no longer
    assert (await client.get(urls(french)[0], headers=berlin)).status_code == 200
    assert (await client.get(urls(french)[0], headers=paris)).status_code == 404
