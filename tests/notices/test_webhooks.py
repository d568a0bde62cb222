"""Notices over HTTP on both backends, to a real receiver process that checks every signature with
the `standardwebhooks` package: each entry a customer would want to hear about gives exactly one
notice per type that applies, in customer_seq order, signed, with no employee id in it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from service import clock
from service.main import create_app
from service.notices import deliverer
from service.settings import Settings
from tests.chains import fetch_chain
from tests.conftest import Tokens, serve
from tests.factories import access_event, algorithm_actor
from tests.notices.harness import Receiver, customer_order_holds, new_secret, receiver, webhook_settings


async def _post(client: httpx.AsyncClient, url: str, body: dict, headers: dict, status: int = 201) -> dict:
    response = await client.post(url, json=body, headers=headers)
    assert response.status_code == status, response.text
    return dict(response.json())


async def _complete_deletion(client: httpx.AsyncClient, tokens: Tokens, customer: str) -> None:
    filed = await _post(client, f"/v1/customers/{customer}/deletion-requests", {"clip_ids": ["clip-9"]},
                        tokens.customer(customer), 202)
    for task in filed["tasks"]:
        await _post(client, f"/v1/deletion-tasks/{task['id']}/complete", {"evidence": "gone"},
                    tokens.service(task["service"]), 200)


async def test_each_entry_worth_telling_gives_one_signed_notice_per_type_in_order(
    settings: Settings, tmp_path: Path
) -> None:
    with receiver(tmp_path / "receiver") as hooks:
        app = create_app(webhook_settings(settings, hooks))
        tokens = Tokens(app)
        consenting, stranger = "cust-consenting", "cust-stranger"
        async for client in serve(app):
            response = await client.put(f"/v1/customers/{consenting}/consent", json={"human_review": True},
                                        headers=tokens.customer(consenting))
            assert response.status_code == 200  # a consent change: no notice
            covered = await _post(client, "/v1/accesses", access_event(consenting), tokens.service())
            await _post(client, "/v1/accesses", access_event(consenting, actor=algorithm_actor(),
                                                             purpose="quality_review"),
                        tokens.service())  # an algorithm, consented purpose, no flag: no notice
            training = await _post(client, "/v1/accesses", access_event(
                consenting, actor=algorithm_actor(), purpose="model_training", action="train"),
                tokens.service())
            unconsented = await _post(client, "/v1/accesses", access_event(stranger), tokens.service())
            await _complete_deletion(client, tokens, stranger)
            objection = await _post(client, f"/v1/customers/{stranger}/objections",
                                    {"entry_hash": unconsented["entry_hash"], "reason": "I never agreed"},
                                    tokens.customer(stranger))
            refused = await client.post("/v1/access-tickets", headers=tokens.service(), json={
                "audience": "clip-store", "event": access_event(consenting, clip_id="clip-x",
                                                                purpose="model_training", action="train")})
            assert refused.status_code == 403, refused.text

            delivered = await hooks.wait_for(7)
            chain = {c: await fetch_chain(client, c, tokens.customer(c)) for c in (consenting, stranger)}
        from_seenby = hooks.deliveries()
        # A body changed in transit fails the receiver's check; the untouched one passes.
        original = delivered[0]
        changed = original.raw.replace(original.body["data"]["customer_id"], "cust-someone-else")
        async with httpx.AsyncClient() as http:
            forged = await http.post(hooks.url, content=changed, headers=original.headers)
            untouched = await http.post(hooks.url, content=original.raw, headers=original.headers)
        assert forged.status_code == 400 and untouched.status_code == 200

    sent = sorted((d.body["type"], d.body["data"]["entry_hash"]) for d in delivered)
    completed = next(e for e in chain[stranger] if e["kind"] == "deletion_completed")
    assert sent == sorted([
        ("access.human", covered["entry_hash"]),
        ("access.flagged", training["entry_hash"]),
        ("access.human", unconsented["entry_hash"]),
        ("access.flagged", unconsented["entry_hash"]),
        ("deletion.completed", completed["entry_hash"]),
        ("objection.filed", objection["entry_hash"]),
        ("access.refused", refused.json()["entry_hash"]),  # a refused attempt: refused, not flagged
    ])
    assert len(delivered) == len({d.webhook_id for d in delivered})
    assert all(d.verified for d in from_seenby)
    assert customer_order_holds(from_seenby)
    for delivery in delivered:
        data = delivery.body["data"]
        seen = {e["entry_hash"]: e for e in chain[data["customer_id"]]}[data["entry_hash"]]
        assert data["customer_seq"] == seen["customer_seq"]
        assert data["entry"]["kind"] == seen["kind"] and data["entry"]["entry_hash"] == seen["entry_hash"]
        assert delivery.webhook_id == f"{delivery.body['type']}:{data['entry_hash']}"
        assert "emp-55812" not in delivery.raw  # the customer's view: a pseudonym, never the employee
        assert delivery.headers["webhook-signature"].startswith("v1,")


async def test_only_the_chosen_types_are_sent(settings: Settings, tmp_path: Path) -> None:
    with receiver(tmp_path / "receiver") as hooks:
        app = create_app(webhook_settings(settings, hooks, webhook_types=["access.flagged"]))
        tokens = Tokens(app)
        async for client in serve(app):
            flagged = await _post(client, "/v1/accesses", access_event("cust-types"), tokens.service())
            await _complete_deletion(client, tokens, "cust-types")
            await _post(client, "/v1/accesses", access_event("cust-types", actor=algorithm_actor(),
                                                             purpose="model_training"), tokens.service())
            delivered = await hooks.wait_for(2)
            # A third would have come by now: the deliverer is idle with nothing pending.
            await asyncio.sleep(1.0)
    assert len(hooks.accepted()) == 2
    assert {d.body["type"] for d in delivered} == {"access.flagged"}
    assert delivered[0].body["data"]["entry_hash"] == flagged["entry_hash"]


async def test_a_request_past_its_due_date_is_noticed_once(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deliverer, "PERIODIC_SECONDS", 0.2)  # the scan's period; 5 s in service
    with receiver(tmp_path / "receiver") as hooks:
        app = create_app(webhook_settings(settings, hooks, webhook_types=["deletion.overdue"]))
        tokens = Tokens(app)
        async for client in serve(app):
            late = await _post(client, "/v1/customers/cust-late/deletion-requests", {"clip_ids": ["c-1"]},
                               tokens.customer("cust-late"), 202)
            await _complete_deletion(client, tokens, "cust-done")  # completed in time
            rejected = await _post(client, "/v1/customers/cust-held/deletion-requests",
                                   {"scope": "all"}, tokens.customer("cust-held"), 202)
            await _post(client, f"/v1/deletion-requests/{rejected['id']}/reject", {"reason": "legal hold"},
                        tokens.admin(), 200)
            await asyncio.sleep(0.5)
            assert hooks.accepted() == []  # nothing is overdue yet
            monkeypatch.setattr(clock, "now_us", lambda real_now=clock.now_us: real_now() + 31 * clock.DAY_US)
            [overdue] = await hooks.wait_for(1)
            await asyncio.sleep(1.0)  # several scans later: still once
            chain = await fetch_chain(client, "cust-late", tokens.customer("cust-late"))
    assert len(hooks.accepted()) == 1
    requested = next(e for e in chain if e["kind"] == "deletion_requested")
    assert overdue.body["type"] == "deletion.overdue"
    assert overdue.body["data"]["entry_hash"] == requested["entry_hash"]
    assert overdue.body["data"]["entry"]["request_id"] == late["id"]


async def test_while_the_secret_is_rotated_a_receiver_with_either_the_old_or_the_new_verifies(
    settings: Settings, tmp_path: Path
) -> None:
    old, new = new_secret(), new_secret()
    hooks = Receiver(tmp_path / "receiver", secret=old)
    hooks.start()
    app = create_app(webhook_settings(settings, hooks, webhook_secret=f"{new} {old}",
                                      webhook_types=["access.human"]))
    tokens = Tokens(app)
    try:
        async for client in serve(app):
            before = await _post(client, "/v1/accesses", access_event("cust-rotation"), tokens.service())
            await hooks.wait_for(1)
            hooks.stop()
            hooks.use_secret(new)  # the receiver moves to the new secret
            hooks.start()
            after = await _post(client, "/v1/accesses", access_event("cust-rotation"), tokens.service())
            delivered = await hooks.wait_for(2)
    finally:
        hooks.stop()
    # The receiver process verified the first notice with the old secret only, the second with
    # the new one only; nothing it got failed.
    assert all(d.verified and d.status == 200 for d in hooks.deliveries())
    assert [d.body["data"]["entry_hash"] for d in delivered] == [before["entry_hash"], after["entry_hash"]]
    for delivery in delivered:
        signatures = delivery.headers["webhook-signature"].split(" ")
        assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
        for secret in (old, new):  # either receiver would take either notice
            assert Webhook(secret).verify(delivery.raw, delivery.headers) == delivery.body
        with pytest.raises(WebhookVerificationError):
            Webhook(new_secret()).verify(delivery.raw, delivery.headers)
