"""Deletion requests over HTTP: the lifecycle with two services, access after deletion, rejection."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from service import clock
from service.main import create_app
from service.migrate import upgrade
from tests.chains import assert_chain_intact, fetch_chain
from tests.conftest import Tokens, base_settings, serve
from tests.factories import access_event, algorithm_actor

SERVICES = ("clip-store", "training-data")  # tests/conftest.py configures these two


async def file(client: httpx.AsyncClient, tokens: Tokens, customer_id: str, body: dict) -> dict:
    response = await client.post(f"/v1/customers/{customer_id}/deletion-requests", json=body,
                                 headers=tokens.customer(customer_id))
    assert response.status_code == 202, response.text
    return response.json()


async def record(client: httpx.AsyncClient, tokens: Tokens, event: dict) -> dict:
    response = await client.post("/v1/accesses", json=event, headers=tokens.service())
    assert response.status_code == 201, response.text
    return response.json()


async def latest_access(client: httpx.AsyncClient, tokens: Tokens, customer_id: str) -> dict:
    return (await client.get("/v1/me/accesses", headers=tokens.customer(customer_id))).json()["items"][0]


async def test_full_lifecycle_with_two_services(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    filed = await file(client, tokens, customer_id, {"clip_ids": ["clip-1", "clip-2"]})
    assert filed["status"] == "pending" and filed["overdue"] is False
    assert filed["clip_ids"] == ["clip-1", "clip-2"] and filed["scope"] == "clips"
    assert sorted(t["service"] for t in filed["tasks"]) == list(SERVICES)
    assert all(t["status"] == "pending" and t["evidence"] is None for t in filed["tasks"])
    days = (_micros(filed["due_at"]) - _micros(filed["filed_at"])) / clock.DAY_US
    assert days == 30

    tasks = {}
    for service in SERVICES:
        page = (await client.get("/v1/deletion-tasks", params={"status": "pending", "limit": 500},
                                 headers=tokens.service(service))).json()
        mine = [t for t in page["items"] if t["request_id"] == filed["id"]]
        assert len(mine) == 1 and all(t["service"] == service for t in page["items"])
        assert mine[0]["customer_id"] == customer_id and mine[0]["clip_ids"] == ["clip-1", "clip-2"]
        assert mine[0]["due_at"] == filed["due_at"]
        tasks[service] = mine[0]["id"]

    stolen = await client.post(f"/v1/deletion-tasks/{tasks['clip-store']}/complete",
                               json={"evidence": "not mine"}, headers=tokens.service("training-data"))
    assert stolen.status_code == 404

    first = await client.post(f"/v1/deletion-tasks/{tasks['clip-store']}/complete",
                              json={"evidence": "deleted 2 objects from bucket clips-eu at 10:02Z"},
                              headers=tokens.service("clip-store"))
    assert first.status_code == 200 and first.json()["status"] == "completed"
    again = await client.post(f"/v1/deletion-tasks/{tasks['clip-store']}/complete",
                              json={"evidence": "something else"}, headers=tokens.service("clip-store"))
    assert again.status_code == 200 and again.json() == first.json()
    middle = (await client.get(f"/v1/customers/{customer_id}/deletion-requests/{filed['id']}",
                               headers=tokens.customer(customer_id))).json()
    assert middle["status"] == "in_progress"

    last = await client.post(f"/v1/deletion-tasks/{tasks['training-data']}/complete",
                             json={"evidence": "purged from training set v12"},
                             headers=tokens.service("training-data"))
    assert last.status_code == 200
    done = (await client.get(f"/v1/customers/{customer_id}/deletion-requests/{filed['id']}",
                             headers=tokens.regulator())).json()
    assert done["status"] == "completed" and done["completed_at"] and done["overdue"] is False
    assert {t["service"]: t["evidence"] for t in done["tasks"]} == {
        "clip-store": "deleted 2 objects from bucket clips-eu at 10:02Z",
        "training-data": "purged from training set v12",
    }
    pending = (await client.get("/v1/deletion-tasks", params={"status": "pending", "limit": 500},
                                headers=tokens.service("clip-store"))).json()["items"]
    assert tasks["clip-store"] not in [t["id"] for t in pending]

    chain = await fetch_chain(client, customer_id, tokens.regulator())
    assert [i["kind"] for i in chain] == ["deletion_requested", "deletion_task_completed",
                                         "deletion_task_completed", "deletion_completed"]
    assert chain[0]["request_id"] == filed["id"] and chain[1]["evidence"].startswith("deleted 2")
    assert_chain_intact(chain)


def _micros(timestamp: str) -> int:
    from service.clock import timestamp_micros

    return timestamp_micros(timestamp)


async def test_access_after_deletion_is_recorded_and_flagged(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    await file(client, tokens, customer_id, {"clip_ids": ["clip-gone"]})
    await record(client, tokens, access_event(customer_id, clip_id="clip-kept"))
    assert "access_after_deletion" not in (await latest_access(client, tokens, customer_id))["flags"]
    before = (await client.get("/metrics")).text
    await record(client, tokens, access_event(customer_id, clip_id="clip-gone"))
    item = await latest_access(client, tokens, customer_id)
    assert item["clip_id"] == "clip-gone" and "access_after_deletion" in item["flags"]
    after = (await client.get("/metrics")).text
    assert _counter(after, "access_after_deletion") == _counter(before, "access_after_deletion") + 1


def _counter(metrics: str, flag: str) -> float:
    prefix = f'seenby_accesses_flagged_total{{flag="{flag}"}} '
    return float(next(line for line in metrics.splitlines() if line.startswith(prefix))[len(prefix):])


async def test_scope_all_flags_every_clip(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    filed = await file(client, tokens, customer_id, {"scope": "all"})
    assert filed["scope"] == "all" and filed["clip_ids"] is None
    task = (await client.get("/v1/deletion-tasks", params={"limit": 500},
                             headers=tokens.service("clip-store"))).json()["items"]
    assert next(t for t in task if t["request_id"] == filed["id"])["scope"] == "all"
    for clip in ("clip-a", "clip-b"):
        await record(client, tokens, access_event(customer_id, clip_id=clip, actor=algorithm_actor(),
                                                  action="infer", purpose="other"))
        assert (await latest_access(client, tokens, customer_id))["flags"] == ["access_after_deletion"]


async def test_rejected_requests_flag_nothing_and_end_there(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    filed = await file(client, tokens, customer_id, {"clip_ids": ["clip-held"]})
    url = f"/v1/deletion-requests/{filed['id']}/reject"
    for not_admin in (tokens.customer(customer_id), tokens.service(), tokens.regulator()):
        assert (await client.post(url, json={"reason": "x"}, headers=not_admin)).status_code == 403
    rejected = await client.post(url, json={"reason": "legal hold 2026-114"}, headers=tokens.admin())
    assert rejected.status_code == 200
    body = rejected.json()
    assert body["status"] == "rejected" and body["reason"] == "legal hold 2026-114" and body["rejected_at"]
    again = await client.post(url, json={"reason": "other"}, headers=tokens.admin())
    assert again.status_code == 200 and again.json() == body
    await record(client, tokens, access_event(customer_id, clip_id="clip-held", actor=algorithm_actor(),
                                              action="infer", purpose="other"))
    assert (await latest_access(client, tokens, customer_id))["flags"] == []
    kinds = [i["kind"] for i in await fetch_chain(client, customer_id, tokens.regulator())]
    assert kinds == ["deletion_requested", "deletion_rejected", "access"]
    missing = await client.post("/v1/deletion-requests/01a21377-0000-7000-8000-000000000000/reject",
                                json={"reason": "x"}, headers=tokens.admin())
    assert missing.status_code == 404


async def test_a_completed_request_cannot_be_rejected(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    filed = await file(client, tokens, customer_id, {"clip_ids": ["clip-1"]})
    for task in filed["tasks"]:
        response = await client.post(f"/v1/deletion-tasks/{task['id']}/complete", json={"evidence": "done"},
                                     headers=tokens.service(task["service"]))
        assert response.status_code == 200
    response = await client.post(f"/v1/deletion-requests/{filed['id']}/reject", json={"reason": "late"},
                                 headers=tokens.admin())
    assert response.status_code == 409


@pytest.mark.parametrize("body", [
    {"clip_ids": ["a"], "scope": "all"},
    {},
    {"clip_ids": []},
    {"clip_ids": ["a", "a"]},
    {"clip_ids": [f"c{i}" for i in range(1001)]},
    {"clip_ids": ["c" * 129]},
    {"scope": "some"},
    {"clip_ids": ["a"], "status": "completed"},
])
async def test_bad_deletion_requests_are_422(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str, body: dict
) -> None:
    response = await client.post(f"/v1/customers/{customer_id}/deletion-requests", json=body,
                                 headers=tokens.customer(customer_id))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    listed = await client.get(f"/v1/customers/{customer_id}/deletion-requests",
                              headers=tokens.customer(customer_id))
    assert listed.json()["items"] == []


async def test_other_customers_requests_are_404(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    victim = f"{customer_id}-v"
    filed = await file(client, tokens, victim, {"scope": "all"})
    attacker = tokens.customer(customer_id)
    for url in (f"/v1/customers/{victim}/deletion-requests",
                f"/v1/customers/{victim}/deletion-requests/{filed['id']}",
                f"/v1/customers/{customer_id}/deletion-requests/{filed['id']}"):
        assert (await client.get(url, headers=attacker)).status_code == 404, url
    assert (await client.post(f"/v1/customers/{victim}/deletion-requests", json={"scope": "all"},
                              headers=attacker)).status_code == 404
    assert (await client.get(f"/v1/customers/{victim}/deletion-requests",
                             headers=tokens.service())).status_code == 403
    assert (await client.post(f"/v1/customers/{victim}/deletion-requests", json={"scope": "all"},
                              headers=tokens.regulator())).status_code == 403
    assert (await client.get("/v1/deletion-tasks", headers=tokens.customer(victim))).status_code == 403
    assert len((await client.get(f"/v1/customers/{victim}/deletion-requests",
                                 headers=tokens.customer(victim))).json()["items"]) == 1


async def test_overdue_requests_show_to_customers_and_in_metrics(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    filed = await file(client, tokens, customer_id, {"clip_ids": ["clip-slow"]})
    real_now = clock.now_us
    monkeypatch.setattr(clock, "now_us", lambda: real_now() + 31 * clock.DAY_US)
    late = (await client.get(f"/v1/customers/{customer_id}/deletion-requests",
                             headers=tokens.customer(customer_id))).json()["items"][0]
    assert late["id"] == filed["id"] and late["overdue"] is True
    metrics = (await client.get("/metrics")).text
    [overdue] = [ln for ln in metrics.splitlines() if ln.startswith("seenby_deletion_requests_overdue ")]
    assert float(overdue.split()[1]) >= 1
    assert 'seenby_deletion_requests{status="pending"}' in metrics


async def test_service_task_list_pages_and_filters(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    filed = [await file(client, tokens, f"{customer_id}-{i}", {"clip_ids": [f"clip-{i}"]}) for i in range(5)]
    wanted = {t["id"] for f in filed for t in f["tasks"] if t["service"] == "clip-store"}
    seen, cursor = [], None
    while True:
        params = {"limit": 2, "status": "pending", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/deletion-tasks", params=params,
                                 headers=tokens.service("clip-store"))).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert wanted <= set(seen) and len(seen) == len(set(seen))
    assert (await client.get("/v1/deletion-tasks", params={"status": "lost"},
                             headers=tokens.service("clip-store"))).status_code == 422
    unknown = await client.get("/v1/deletion-tasks", headers=tokens.service("no-such-service"))
    assert unknown.status_code == 200 and unknown.json()["items"] == []


async def test_a_due_time_of_zero_days_makes_a_request_overdue_as_it_is_filed(tmp_path: Path) -> None:
    """SEENBY_DELETION_DUE_DAYS takes 0 (and fractions): an operator's drill, or a test, sees an
    overdue request without waiting a day or moving the clock."""
    settings = base_settings(tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/due.db",
                             deletion_due_days="0")
    assert base_settings(tmp_path, deletion_due_days="0.5").deletion_due_days == 0.5
    for unusable in ("inf", "nan", "-1", "36501"):  # each would fail every request as it is filed
        with pytest.raises(ValueError, match="deletion_due_days"):
            base_settings(tmp_path, deletion_due_days=unusable)
    await asyncio.to_thread(upgrade, settings)
    tokens = Tokens.for_settings(settings)
    async for client in serve(create_app(settings)):
        filed = await file(client, tokens, "cust-late", {"clip_ids": ["clip-1"]})
        await asyncio.sleep(0.01)
        shown = (await client.get(f"/v1/customers/cust-late/deletion-requests/{filed['id']}",
                                  headers=tokens.customer("cust-late"))).json()
        assert shown["overdue"] is True and shown["status"] == "pending"
        metrics = (await client.get("/metrics")).text
        assert "seenby_deletion_requests_overdue 1.0" in metrics.splitlines()
