"""Recording accesses over HTTP: receipts, idempotency, conflicts, batches, validation."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import Tokens
from tests.factories import access_event, algorithm_actor

HEX64 = set("0123456789abcdef")


def without_log_index(receipt: dict) -> dict:
    """A receipt as first sent; a replay may also know the log_index assigned since."""
    return {k: v for k, v in receipt.items() if k != "log_index"}


async def test_record_returns_a_receipt_and_chains_entries(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    receipts = []
    for _ in range(3):
        response = await client.post("/v1/accesses", json=access_event(customer_id),
                                     headers=tokens.service())
        assert response.status_code == 201, response.text
        receipts.append(response.json())
    assert [r["customer_seq"] for r in receipts] == [0, 1, 2]
    for receipt in receipts:
        assert len(receipt["entry_hash"]) == 64 and set(receipt["entry_hash"]) <= HEX64
        assert receipt["recorded_at"].endswith("Z")
        assert "log_index" in receipt

    chain = (await client.get(f"/v1/customers/{customer_id}/entries",
                              headers=tokens.customer(customer_id))).json()["items"]
    assert [item["prev_hash"] for item in chain] == ["0" * 64] + [r["entry_hash"] for r in receipts[:2]]
    for item, receipt in zip(chain, receipts, strict=True):
        canonical = base64.b64decode(item["canonical"])
        assert hashlib.sha256(canonical).hexdigest() == item["entry_hash"] == receipt["entry_hash"]


async def test_replay_returns_the_original_receipt(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    event = access_event(customer_id)
    first = await client.post("/v1/accesses", json=event, headers=tokens.service())
    # Same body in another key order, with an explicit null dropped: the same after RFC 8785.
    replay_body = dict(reversed(list(event.items())))
    del replay_body["authorization_id"]
    again = await client.post("/v1/accesses", json=replay_body, headers=tokens.service())
    assert first.status_code == 201 and again.status_code == 200
    assert without_log_index(again.json()) == without_log_index(first.json())
    history = await client.get(f"/v1/customers/{customer_id}/accesses",
                               headers=tokens.customer(customer_id))
    assert len(history.json()["items"]) == 1


async def test_same_event_id_with_another_body_is_409(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    event = access_event(customer_id)
    assert (await client.post("/v1/accesses", json=event, headers=tokens.service())).status_code == 201
    changed = {**event, "action": "download"}
    response = await client.post("/v1/accesses", json=changed, headers=tokens.service())
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 409 and body["type"] and body["title"] and event["event_id"] in body["detail"]


async def test_batch_records_all_in_request_order(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    other = f"{customer_id}-b"
    events = [access_event(customer_id if i % 2 else other, clip_id=f"clip-{i}") for i in range(10)]
    response = await client.post("/v1/accesses:batch", json={"events": events},
                                 headers=tokens.service())
    assert response.status_code == 201, response.text
    receipts = response.json()["receipts"]
    assert [r["event_id"] for r in receipts] == [e["event_id"] for e in events]
    assert [r["customer_seq"] for r in receipts if True][1::2] == [0, 1, 2, 3, 4]
    replay = await client.post("/v1/accesses:batch", json={"events": events},
                               headers=tokens.service())
    assert replay.status_code == 200
    replayed = replay.json()["receipts"]
    assert [without_log_index(r) for r in replayed] == [without_log_index(r) for r in receipts]


async def test_batch_with_a_conflict_records_nothing(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    recorded = access_event(customer_id)
    await client.post("/v1/accesses", json=recorded, headers=tokens.service())
    fresh = [access_event(customer_id) for _ in range(3)]
    conflicting = {**recorded, "purpose": "security"}
    response = await client.post("/v1/accesses:batch", json={"events": [*fresh, conflicting]},
                                 headers=tokens.service())
    assert response.status_code == 409
    items = (await client.get(f"/v1/customers/{customer_id}/accesses",
                              headers=tokens.customer(customer_id))).json()["items"]
    assert [i["event_id"] for i in items] == [recorded["event_id"]]


async def test_one_event_id_twice_in_a_batch(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    event = access_event(customer_id)
    same = await client.post("/v1/accesses:batch", json={"events": [event, dict(event)]},
                             headers=tokens.service())
    assert same.status_code == 201
    first, second = same.json()["receipts"]
    assert first == second
    other = access_event(customer_id)
    differing = await client.post(
        "/v1/accesses:batch", json={"events": [other, {**other, "clip_id": "clip-x"}]},
        headers=tokens.service(),
    )
    assert differing.status_code == 409
    items = (await client.get(f"/v1/customers/{customer_id}/accesses",
                              headers=tokens.customer(customer_id))).json()["items"]
    assert len(items) == 1


async def test_invalid_event_in_a_batch_leaves_nothing(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    events = [access_event(customer_id) for _ in range(4)]
    events[2]["action"] = "teleport"
    response = await client.post("/v1/accesses:batch", json={"events": events},
                                 headers=tokens.service())
    assert response.status_code == 422
    body = response.json()
    assert any("events.2.action" in e["field"] for e in body["errors"])
    items = (await client.get(f"/v1/customers/{customer_id}/accesses",
                              headers=tokens.customer(customer_id))).json()["items"]
    assert items == []


async def test_batch_over_the_limit_is_422(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str, app
) -> None:
    limit = app.state.settings.max_batch
    events = [access_event(customer_id, justification=None) for _ in range(limit + 1)]
    for e in events:
        del e["justification"], e["authorization_id"]
    response = await client.post("/v1/accesses:batch", json={"events": events},
                                 headers=tokens.service())
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "body.events"


async def test_empty_batch_is_422(client: httpx.AsyncClient, tokens: Tokens) -> None:
    response = await client.post("/v1/accesses:batch", json={"events": []}, headers=tokens.service())
    assert response.status_code == 422


BAD_EVENTS = {
    "unknown top-level field": {"entry_hash": "0" * 64},
    "unknown actor field": {"actor": {"type": "algorithm", "id": "m", "role": "r", "admin": True}},
    "human without organization": {"actor": {"type": "human", "id": "e", "role": "r", "country": "DE"}},
    "human without country": {"actor": {"type": "human", "id": "e", "role": "r", "organization": "o"}},
    "lower-case country": {"actor": {"type": "human", "id": "e", "role": "r", "organization": "o",
                                     "country": "de"}},
    "unassigned country": {"actor": {"type": "human", "id": "e", "role": "r", "organization": "o",
                                     "country": "XX"}},
    "bad action": {"action": "teleport"},
    "bad purpose": {"purpose": "curiosity"},
    "bad medium": {"media": ["smell"]},
    "no media": {"media": []},
    "not a uuid": {"event_id": "not-a-uuid"},
    "naive timestamp": {"occurred_at": "2026-11-24T09:15:02"},
    "garbage timestamp": {"occurred_at": "yesterday"},
    "ISO 8601 week date": {"occurred_at": "2026-W48-1T09:15:02Z"},
    "ISO 8601 basic format": {"occurred_at": "20261124T091502Z"},
    "date only, with a zone": {"occurred_at": "2026-11-24Z"},
    "id too long": {"clip_id": "c" * 129},
    "justification too long": {"justification": "j" * 1001},
    "empty customer": {"customer_id": ""},
    # A customer is read back at /v1/customers/{customer_id}: one path segment, that clients keep.
    "customer id with a slash": {"customer_id": "cust/1042"},
    "customer id '.'": {"customer_id": "."},
    "customer id '..'": {"customer_id": ".."},
    "integer clip": {"clip_id": 77},
    "lone surrogate": {"clip_id": "\ud800"},
    "prev_hash set by client": {"prev_hash": "0" * 64},
}


async def test_bad_events_are_422_problems(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    for name, change in BAD_EVENTS.items():
        event = {**access_event(customer_id), **change}
        # json.dumps escapes non-ASCII, so a lone surrogate travels as the "\ud800" escape.
        response = await client.post("/v1/accesses", content=json.dumps(event),
                                     headers={**tokens.service(), "content-type": "application/json"})
        assert response.status_code == 422, (name, response.text)
        assert response.headers["content-type"] == "application/problem+json", name
        assert response.json()["errors"], name
    missing = access_event(customer_id)
    del missing["purpose"]
    assert (await client.post("/v1/accesses", json=missing, headers=tokens.service())).status_code == 422
    history = await client.get(f"/v1/customers/{customer_id}/accesses",
                               headers=tokens.customer(customer_id))
    assert history.json()["items"] == []


@pytest.mark.parametrize("odd", ["...", ".cust", "..cust", "cust.", "a b?c#d%2F"])
async def test_a_customer_id_with_dots_or_url_characters_is_read_back_by_its_path(
    client: httpx.AsyncClient, tokens: Tokens, odd: str
) -> None:
    customer = odd if odd == "..." else f"{odd}-{uuid.uuid4().hex[:8]}"  # "..." is no dot segment
    recorded = await client.post("/v1/accesses", json=access_event(customer), headers=tokens.service())
    assert recorded.status_code in (200, 201), recorded.text
    history = await client.get(f"/v1/customers/{quote(customer, safe='')}/accesses",
                               headers=tokens.regulator())
    assert history.status_code == 200, history.text
    assert recorded.json()["entry_hash"] in [item["entry_hash"] for item in history.json()["items"]]


async def test_malformed_json_is_422(client: httpx.AsyncClient, tokens: Tokens) -> None:
    response = await client.post(
        "/v1/accesses", content=b'{"event_id": ', headers={**tokens.service(),
                                                           "content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_body_over_the_limit_is_413(client: httpx.AsyncClient, tokens: Tokens, app) -> None:
    limit = app.state.settings.max_body_bytes
    big = b'{"events": [' + b" " * (limit + 10) + b"]}"
    response = await client.post("/v1/accesses:batch", content=big,
                                 headers={**tokens.service(), "content-type": "application/json"})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"

    async def streamed():
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    response = await client.post("/v1/accesses:batch", content=streamed(),
                                 headers={**tokens.service(), "content-type": "application/json"})
    assert response.status_code == 413


async def test_algorithm_actor_is_recorded_in_clear(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    event = access_event(customer_id, actor=algorithm_actor(), action="infer", purpose="other")
    assert (await client.post("/v1/accesses", json=event, headers=tokens.service())).status_code == 201
    item = (await client.get(f"/v1/customers/{customer_id}/accesses",
                             headers=tokens.customer(customer_id))).json()["items"][0]
    assert item["actor"] == algorithm_actor()
    assert uuid.UUID(item["event_id"])


async def test_single_bodies_are_validated_from_their_bytes(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    json_headers = {**tokens.service(), "content-type": "application/json"}
    surrogate = json.dumps(access_event(customer_id, clip_id="\ud800"))
    extra = json.dumps({**access_event(customer_id), "extra": 1})
    for body in (b'{"event_id": ', b"", b"[]", b"null", surrogate.encode(), extra.encode()):
        response = await client.post("/v1/accesses", content=body, headers=json_headers)
        assert response.status_code == 422, (body[:40], response.text)
        assert response.headers["content-type"] == "application/problem+json"
        errors = response.json()["errors"]
        assert errors and all(e["field"].startswith("body") for e in errors)
    unauthenticated = await client.post("/v1/accesses", content=b'{"event_id": ',
                                        headers={"content-type": "application/json"})
    assert unauthenticated.status_code == 401, "the token is checked before the body is read"
    history = await client.get(f"/v1/customers/{customer_id}/accesses", headers=tokens.regulator())
    assert history.json()["items"] == []


async def test_batch_bodies_are_validated_from_their_bytes(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    json_headers = {**tokens.service(), "content-type": "application/json"}
    surrogate = json.dumps({"events": [access_event(customer_id, clip_id="\ud800")]})
    for body in (b'{"events": [', b"", b"[]", surrogate.encode(), b'{"events": [], "extra": 1}'):
        response = await client.post("/v1/accesses:batch", content=body, headers=json_headers)
        assert response.status_code == 422, (body[:40], response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert all(e["field"].startswith("body") for e in response.json()["errors"])
    unauthenticated = await client.post("/v1/accesses:batch", content=b'{"events": [',
                                        headers={"content-type": "application/json"})
    assert unauthenticated.status_code == 401, "the token is checked before the body is read"
    history = await client.get(f"/v1/customers/{customer_id}/accesses", headers=tokens.regulator())
    assert history.json()["items"] == []
