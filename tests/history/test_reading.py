"""Reading histories over HTTP: filters, summaries, exact paging, identities, tenant isolation."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import httpx
import pytest

from tests.conftest import Tokens
from tests.factories import access_event, algorithm_actor, human_actor


async def record(client: httpx.AsyncClient, tokens: Tokens, events: list[dict[str, Any]]) -> list[dict]:
    response = await client.post("/v1/accesses:batch", json={"events": events}, headers=tokens.service())
    assert response.status_code == 201, response.text
    return response.json()["receipts"]


async def all_pages(client: httpx.AsyncClient, url: str, headers: dict[str, str],
                    **params: Any) -> list[dict]:
    items: list[dict] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(url, params=query, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def mixed_events(customer_id: str) -> list[dict[str, Any]]:
    return [
        access_event(customer_id, clip_id="clip-a", occurred_at="2026-11-01T10:00:00Z"),
        access_event(customer_id, clip_id="clip-a", action="listen", media=["audio"],
                     occurred_at="2026-11-02T10:00:00Z"),
        access_event(customer_id, clip_id="clip-b", actor=algorithm_actor(), action="train",
                     purpose="model_training", occurred_at="2026-11-03T10:00:00+02:00"),
        access_event(customer_id, clip_id="clip-b", actor=human_actor(country="DE"),
                     purpose="customer_support", occurred_at="2026-11-04T10:00:00Z"),
        access_event(customer_id, clip_id="clip-c", actor=algorithm_actor(country="US"),
                     action="infer", purpose="security", occurred_at="2026-11-05T10:00:00Z"),
    ]


async def test_history_is_newest_first_with_every_field(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    events = mixed_events(customer_id)
    receipts = await record(client, tokens, events)
    items = (await client.get(f"/v1/customers/{customer_id}/accesses",
                              headers=tokens.customer(customer_id))).json()["items"]
    assert [i["event_id"] for i in items] == [e["event_id"] for e in reversed(events)]
    newest = items[0]
    assert newest["entry_hash"] == receipts[-1]["entry_hash"]
    for field in ("clip_id", "actor", "action", "media", "purpose", "occurred_at", "customer_id",
                  "entry_hash", "prev_hash", "customer_seq", "log_index", "recorded_at", "flags",
                  "kind", "nonce"):
        assert field in newest, field
    assert newest["flags"] == ["needs_review"] and newest["kind"] == "access"
    assert items[0]["prev_hash"] == items[1]["entry_hash"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"clip_id": "clip-a"}, [1, 0]),
        ({"actor_type": "algorithm"}, [4, 2]),
        ({"purpose": "security"}, [4]),
        ({"action": "view"}, [3, 0]),
        ({"since": "2026-11-02T10:00:00Z"}, [4, 3, 2, 1]),
        ({"until": "2026-11-02T10:00:00Z"}, [0]),
        # +02:00 makes event 2 occur at 08:00Z: inside [08:00Z, 08:00:01Z), outside [08:00:01Z, ...).
        ({"since": "2026-11-03T08:00:00Z", "until": "2026-11-03T08:00:01Z"}, [2]),
        ({"since": "2026-11-03T08:00:01Z", "until": "2026-11-05T10:00:00Z"}, [3]),
        ({"clip_id": "clip-b", "actor_type": "human"}, [3]),
        ({"clip_id": "clip-zzz"}, []),
    ],
)
async def test_history_filters(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str, params: dict, expected: list[int]
) -> None:
    events = mixed_events(customer_id)
    await record(client, tokens, events)
    response = await client.get(f"/v1/customers/{customer_id}/accesses", params=params,
                                headers=tokens.customer(customer_id))
    assert response.status_code == 200, response.text
    assert [i["event_id"] for i in response.json()["items"]] == [events[n]["event_id"] for n in expected]


async def test_summary_counts(client: httpx.AsyncClient, tokens: Tokens, customer_id: str) -> None:
    await record(client, tokens, mixed_events(customer_id))
    summary = (await client.get("/v1/me/accesses/summary", headers=tokens.customer(customer_id))).json()
    assert summary == {
        "total": 5,
        "by_actor_type": {"human": 3, "algorithm": 2},
        "by_purpose": {"quality_review": 2, "model_training": 1, "customer_support": 1, "security": 1},
        "by_action": {"view": 2, "listen": 1, "train": 1, "infer": 1},
        "by_actor_country": {"IN": 2, "DE": 1, "US": 1},
        "by_clip": {"clip-a": 2, "clip-b": 2, "clip-c": 1},
        "refused": 0,
    }
    filtered = (await client.get(f"/v1/customers/{customer_id}/accesses/summary",
                                 params={"clip_id": "clip-b"}, headers=tokens.regulator())).json()
    assert filtered["total"] == 2 and filtered["by_clip"] == {"clip-b": 2}


async def test_paging_is_exact_under_concurrent_writes(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    before = await record(client, tokens, [access_event(customer_id) for _ in range(45)])
    url = f"/v1/customers/{customer_id}/accesses"
    headers = tokens.customer(customer_id)

    async def keep_writing() -> list[dict]:
        written = []
        for _ in range(6):
            written += await record(client, tokens, [access_event(customer_id) for _ in range(5)])
            await asyncio.sleep(0)
        return written

    seen: list[dict] = []
    cursor = None
    writer = asyncio.create_task(keep_writing())
    while True:
        page = (await client.get(url, params={"limit": 7, **({"cursor": cursor} if cursor else {})},
                                 headers=headers)).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        await asyncio.sleep(0)
        if cursor is None:
            break
    during = await writer
    seqs = [i["customer_seq"] for i in seen]
    assert seqs == sorted(seqs, reverse=True), "pages are newest first, with no going back"
    assert len(seqs) == len(set(seqs)), "no entry repeated"
    first_seq = seqs[0]
    # Nothing below the first item seen is skipped: every earlier entry appears exactly once.
    assert seqs == list(range(first_seq, -1, -1))
    assert {r["entry_hash"] for r in before} <= {i["entry_hash"] for i in seen}
    assert len(during) == 30


async def test_limits_and_cursors_are_validated(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    url = f"/v1/customers/{customer_id}/accesses"
    headers = tokens.customer(customer_id)
    for params in ({"limit": 501}, {"limit": 0}, {"limit": "many"}, {"cursor": "!!not-ours!!"},
                   {"cursor": "c2VxOi0x"}, {"actor_type": "robot"}, {"since": "last week"},
                   {"since": "2026-11-03T00:00:00Z", "until": "2026-11-02T00:00:00Z"}):
        response = await client.get(url, params=params, headers=headers)
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get(url, params={"limit": 500}, headers=headers)).status_code == 200


async def test_whole_chain_pages_oldest_first(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    receipts = await record(client, tokens, [access_event(customer_id) for _ in range(12)])
    items = await all_pages(client, f"/v1/customers/{customer_id}/entries",
                            tokens.customer(customer_id), limit=5)
    assert [i["customer_seq"] for i in items] == list(range(12))
    assert [i["entry_hash"] for i in items] == [r["entry_hash"] for r in receipts]
    for item in items:
        assert item["entry"]["customer_seq"] == item["customer_seq"]
        assert "id" not in item["entry"]["actor"]
    one = await client.get(f"/v1/me/entries/{receipts[3]['entry_hash']}",
                           headers=tokens.customer(customer_id))
    assert one.status_code == 200
    assert one.json()["entry_hash"] == receipts[3]["entry_hash"] and "canonical" in one.json()


async def test_customer_sees_pseudonyms_regulator_sees_identities(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    other_customer = f"{customer_id}-other"
    events = [
        access_event(customer_id, actor=human_actor("emp-1")),
        access_event(customer_id, actor=human_actor("emp-1")),
        access_event(customer_id, actor=human_actor("emp-2")),
        access_event(other_customer, actor=human_actor("emp-1")),
    ]
    await record(client, tokens, events)
    mine = (await client.get("/v1/me/accesses", headers=tokens.customer(customer_id))).json()["items"]
    emp2, emp1_again, emp1 = (i["actor"] for i in mine)
    theirs = (await client.get("/v1/me/accesses", headers=tokens.customer(other_customer))).json()
    other_emp1 = theirs["items"][0]["actor"]

    assert emp1["pseudonym"] == emp1_again["pseudonym"], "stable for one customer"
    assert emp1["pseudonym"] != emp2["pseudonym"], "distinct reviewers are distinct"
    assert emp1["pseudonym"] != other_emp1["pseudonym"], "unlinkable across customers"
    assert emp1["id_commitment"] != emp1_again["id_commitment"], "salted per entry"
    for actor in (emp1, emp1_again, emp2, other_emp1):
        assert "id" not in actor and "id_salt" not in actor
        assert "emp-" not in str(actor)

    as_regulator = (await client.get(f"/v1/customers/{customer_id}/accesses",
                                     headers=tokens.regulator())).json()["items"]
    for item, expected in zip(as_regulator, ("emp-2", "emp-1", "emp-1"), strict=True):
        actor = item["actor"]
        assert actor["id"] == expected
        salt = bytes.fromhex(actor["id_salt"])
        assert hashlib.sha256(salt + expected.encode()).hexdigest() == actor["id_commitment"]
    chain = (await client.get(f"/v1/customers/{customer_id}/entries",
                              headers=tokens.regulator())).json()["items"]
    assert chain[0]["actor"]["id"] == "emp-1" and "id" not in chain[0]["entry"]["actor"]


CUSTOMER_ENDPOINTS = (
    "/v1/customers/{c}/accesses",
    "/v1/customers/{c}/accesses/summary",
    "/v1/customers/{c}/entries",
    "/v1/customers/{c}/entries/{h}",
)


async def test_other_customers_data_is_404(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    victim = f"{customer_id}-victim"
    receipt = (await record(client, tokens, [access_event(victim)]))[0]
    attacker = tokens.customer(customer_id)
    for template in CUSTOMER_ENDPOINTS:
        url = template.format(c=victim, h=receipt["entry_hash"])
        response = await client.get(url, headers=attacker)
        assert response.status_code == 404, url
        assert response.headers["content-type"] == "application/problem+json"
        assert victim in response.json()["detail"] or response.json()["detail"]
        assert (await client.get(url, headers=tokens.customer(victim))).status_code == 200, url
        assert (await client.get(url, headers=tokens.regulator())).status_code == 200, url
    # Query parameters never widen what a customer sees.
    widened = await client.get("/v1/me/accesses", params={"customer_id": victim}, headers=attacker)
    assert widened.status_code == 200 and widened.json()["items"] == []
    # An entry hash of another customer is not found under one's own id either.
    own = await client.get(f"/v1/me/entries/{receipt['entry_hash']}", headers=attacker)
    assert own.status_code == 404


async def test_roles_that_may_not_read_histories_get_403(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    for template in CUSTOMER_ENDPOINTS:
        url = template.format(c=customer_id, h="0" * 64)
        for headers in (tokens.service(), tokens.admin()):
            assert (await client.get(url, headers=headers)).status_code == 403, url
    for url in ("/v1/me/accesses", "/v1/me/entries", "/v1/me/accesses/summary"):
        assert (await client.get(url, headers=tokens.regulator())).status_code == 403
    assert (await client.post("/v1/accesses", json=access_event(customer_id),
                              headers=tokens.customer(customer_id))).status_code == 403
    assert (await client.post("/v1/accesses", json=access_event(customer_id),
                              headers=tokens.regulator())).status_code == 403


async def test_regulator_with_jurisdiction_cannot_read_customers_of_unknown_country(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    await record(client, tokens, [access_event(customer_id)])
    response = await client.get(f"/v1/customers/{customer_id}/accesses",
                                headers=tokens.regulator(jurisdiction="DE"))
    assert response.status_code == 404


async def test_ledger_resources_refuse_other_methods(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    receipt = (await record(client, tokens, [access_event(customer_id)]))[0]
    for method in ("PUT", "PATCH", "DELETE"):
        for url in ("/v1/accesses", f"/v1/customers/{customer_id}/entries/{receipt['entry_hash']}",
                    f"/v1/customers/{customer_id}/accesses"):
            response = await client.request(method, url, headers=tokens.regulator())
            assert response.status_code == 405, (method, url)
            assert response.headers["content-type"] == "application/problem+json"
