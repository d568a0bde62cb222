"""Notices when things go wrong: a receiver that fails, one that is down for a minute under load,
seenby killed mid-delivery, notices that fail past their retry period (dead letters), a receiver
that redirects, one whose answer never ends."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from service.main import create_app
from service.notices import deliverer
from service.notices.deliverer import MAX_ANSWER_BYTES
from service.notices.types import DELIVERED, PENDING
from service.notices.webhook import Notice
from service.paging import encode_cursor
from service.settings import Settings
from tests.chains import fetch_chain
from tests.conftest import Backend, Tokens, serve
from tests.factories import access_event
from tests.notices.harness import (
    Receiver,
    customer_order_holds,
    receiver,
    webhook_env,
    webhook_settings,
)
from tests.pg import free_port
from tests.servers import Replicas, settings_env

REPLAY = "/v1/notices/dead-letters/replay"


def _human_access_hashes(chain: list[dict]) -> set[str]:
    return {item["entry_hash"] for item in chain if item["kind"] == "access"}


async def test_a_failing_receiver_gets_the_same_notice_until_it_takes_it(
    settings: Settings, tmp_path: Path
) -> None:
    with receiver(tmp_path / "receiver", fail_first=3) as hooks:
        app = create_app(webhook_settings(settings, hooks, webhook_types=["access.human"]))
        tokens = Tokens(app)
        async for client in serve(app):
            recorded = (await client.post("/v1/accesses", json=access_event("cust-retried"),
                                          headers=tokens.service())).json()
            [accepted] = await hooks.wait_for(1)
            metrics = (await client.get("/metrics")).text
    attempts = hooks.deliveries()
    assert [a.status for a in attempts] == [500, 500, 500, 200]
    assert {a.webhook_id for a in attempts} == {f"access.human:{recorded['entry_hash']}"}
    assert len({a.headers["webhook-signature"] for a in attempts}) >= 1  # each attempt signed afresh
    assert accepted.body["data"]["entry_hash"] == recorded["entry_hash"]
    assert 'seenby_notice_deliveries_total{outcome="failed",type="access.human"}' in metrics


async def test_a_receiver_down_for_a_minute_under_load_gets_everything_in_order(
    fresh_pg: Backend, tmp_path: Path
) -> None:
    hooks = Receiver(tmp_path / "receiver")
    hooks.start()
    app = create_app(webhook_settings(fresh_pg.settings, hooks))
    tokens = Tokens(app)
    customers = [f"cust-load-{n}" for n in range(20)]
    try:
        async for client in serve(app):
            async def load(seconds: float, client: httpx.AsyncClient = client) -> int:
                """Batches of 50 human accesses (each gives access.human and access.flagged)."""
                sent, ends = 0, time.monotonic() + seconds
                while time.monotonic() < ends:
                    events = [access_event(customers[(sent + n) % len(customers)]) for n in range(50)]
                    response = await client.post("/v1/accesses:batch", json={"events": events},
                                                 headers=tokens.service())
                    assert response.status_code == 201, response.text
                    sent += len(events)
                    await asyncio.sleep(0.25)
                return sent

            before = await load(2.0)
            hooks.stop()
            during = await load(60.0)
            hooks.start()
            after = await load(2.0)
            total = before + during + after
            delivered = await hooks.wait_for(2 * total, within=180)
            chains = [await fetch_chain(client, c, tokens.regulator()) for c in customers]
    finally:
        hooks.stop()
    expected = {(kind, entry_hash) for chain in chains for entry_hash in _human_access_hashes(chain)
                for kind in ("access.human", "access.flagged")}
    assert len(expected) == 2 * total
    assert {(d.body["type"], d.body["data"]["entry_hash"]) for d in delivered} == expected
    assert customer_order_holds(delivered)


async def test_sigkill_mid_delivery_still_delivers_each_notice_once_after_dedup(
    fresh_pg: Backend, tmp_path: Path
) -> None:
    tokens = Tokens.for_settings(fresh_pg.settings)
    customers = [f"cust-{uuid.uuid4().hex[:8]}" for _ in range(8)]
    with receiver(tmp_path / "receiver", delay=0.1) as hooks:
        replicas = Replicas({**settings_env(fresh_pg.settings), **webhook_env(hooks)}, tmp_path, count=1)
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                await replicas.ready(http)
                events = [access_event(customers[n % len(customers)]) for n in range(160)]
                response = await http.post(f"{replicas.bases[0]}/v1/accesses:batch", json={"events": events},
                                           headers=tokens.service())
                assert response.status_code == 201, response.text
                await hooks.wait_for(40, within=60)  # well into delivering
                await replicas.kill_in_turn(http, victims=(0,), every=0)
                delivered = await hooks.wait_for(2 * len(events), within=120)
                chains = [await fetch_chain(http, c, tokens.regulator(), base=replicas.bases[0])
                          for c in customers]
        finally:
            replicas.stop()
    expected = {(kind, entry_hash) for chain in chains for entry_hash in _human_access_hashes(chain)
                for kind in ("access.human", "access.flagged")}
    assert {(d.body["type"], d.body["data"]["entry_hash"]) for d in delivered} == expected
    assert customer_order_holds(delivered)
    # At least once: whatever was in flight at the kill may have come twice, under the same id.
    assert len(hooks.deliveries()) >= len(delivered)


async def test_notices_failing_past_their_retry_period_are_dead_letters_an_admin_replays(
    settings: Settings, tmp_path: Path
) -> None:
    hooks = Receiver(tmp_path / "receiver")
    hooks.start(fail_first=10**9)
    app = create_app(webhook_settings(settings, hooks, webhook_retry_seconds=1))
    tokens = Tokens(app)
    try:
        async for client in serve(app):
            first = (await client.post("/v1/accesses", json=access_event("cust-dead"),
                                       headers=tokens.service())).json()
            second = (await client.post("/v1/accesses", json=access_event("cust-dead"),
                                        headers=tokens.service())).json()
            deadline = time.monotonic() + 30
            while True:
                listed = await client.get("/v1/notices/dead-letters", headers=tokens.admin())
                assert listed.status_code == 200, listed.text
                if len(listed.json()["items"]) == 4:
                    break
                assert time.monotonic() < deadline, listed.text
                await asyncio.sleep(0.2)
            dead = listed.json()["items"]
            assert [(d["type"], d["entry_hash"]) for d in dead] == [
                ("access.human", first["entry_hash"]), ("access.flagged", first["entry_hash"]),
                ("access.human", second["entry_hash"]), ("access.flagged", second["entry_hash"])]
            assert all(d["attempts"] >= 1 and d["last_error"].startswith("HTTP 500") for d in dead)
            assert all(d["customer_id"] == "cust-dead" for d in dead)
            paged = (await client.get("/v1/notices/dead-letters", params={"limit": 3},
                                      headers=tokens.admin())).json()
            rest = (await client.get("/v1/notices/dead-letters",
                                     params={"limit": 3, "cursor": paged["next_cursor"]},
                                     headers=tokens.admin())).json()
            assert paged["items"] + rest["items"] == dead and rest["next_cursor"] is None
            for forged in ("\u00b2.1", "1.\u00b2", "1", "x.y"):  # not cursors this service issued
                refused = await client.get("/v1/notices/dead-letters", headers=tokens.admin(),
                                           params={"cursor": encode_cursor(forged)})
                assert refused.status_code == 422, (forged, refused.text)

            for role in (tokens.service(), tokens.customer("cust-dead"), tokens.regulator()):
                assert (await client.get("/v1/notices/dead-letters", headers=role)).status_code == 403
                replay = await client.post(REPLAY, json={"all": True}, headers=role)
                assert replay.status_code == 403
            for bad in ({}, {"all": True, "webhook_ids": [dead[0]["webhook_id"]]}, {"webhook_ids": []},
                        {"webhook_ids": ["not-an-id"]}, {"all": True, "extra": 1}, {"all": False},
                        {"all": 1}, {"all": "true"}):
                refused = await client.post(REPLAY, json=bad, headers=tokens.admin())
                assert refused.status_code == 422, (bad, refused.text)
                assert refused.headers["content-type"] == "application/problem+json"

            hooks.stop()
            hooks.start()  # the receiver is fixed
            one = await client.post(REPLAY, headers=tokens.admin(),
                                    json={"webhook_ids": [dead[0]["webhook_id"]]})
            assert one.json() == {"replayed": 1}
            [replayed] = await hooks.wait_for(1)
            assert replayed.webhook_id == dead[0]["webhook_id"]
            everything = await client.post(REPLAY, json={"all": True}, headers=tokens.admin())
            assert everything.json() == {"replayed": 3}
            await hooks.wait_for(4)
            left = (await client.get("/v1/notices/dead-letters", headers=tokens.admin())).json()
    finally:
        hooks.stop()
    assert left["items"] == []
    assert sorted(d.webhook_id for d in hooks.accepted()) == sorted(d["webhook_id"] for d in dead)


@pytest.mark.parametrize("status", [302, 307])
async def test_a_redirect_is_a_failed_delivery_retried_and_its_target_gets_nothing(
    settings: Settings, tmp_path: Path, status: int
) -> None:
    with receiver(tmp_path / "target") as target:
        hooks = Receiver(tmp_path / "redirecting")
        hooks.start(redirect=(status, target.url))
        app = create_app(webhook_settings(settings, hooks, webhook_types=["access.human"]))
        tokens = Tokens(app)
        try:
            async for client in serve(app):
                recorded = (await client.post("/v1/accesses", json=access_event("cust-redirected"),
                                              headers=tokens.service())).json()
                deadline = time.monotonic() + 30
                while len(hooks.deliveries()) < 3:
                    assert time.monotonic() < deadline, hooks.deliveries()
                    await asyncio.sleep(0.05)
                hooks.stop()
                hooks.start()  # it answers 200 itself now
                [accepted] = await hooks.wait_for(1)
        finally:
            hooks.stop()
        taken_by_target = target.deliveries()
    webhook_id = f"access.human:{recorded['entry_hash']}"
    redirected = [d for d in hooks.deliveries() if d.status == status]
    assert len(redirected) >= 3  # each a failure, retried
    assert {d.webhook_id for d in hooks.deliveries()} == {webhook_id} == {accepted.webhook_id}
    assert all(d.verified for d in hooks.deliveries())
    assert taken_by_target == []


@pytest.mark.parametrize("answer", ["huge", "endless"])
async def test_an_answer_is_read_no_further_than_64_kib(settings: Settings, tmp_path: Path,
                                                        answer: str) -> None:
    with receiver(tmp_path / "receiver", answer=answer) as hooks:
        # A timeout far beyond the test's wait: reading such an answer to its end would show.
        app = create_app(webhook_settings(settings, hooks, webhook_types=["access.human"],
                                          webhook_timeout_seconds=60))
        tokens = Tokens(app)
        async for client in serve(app):
            started = time.monotonic()
            recorded = [(await client.post("/v1/accesses", json=access_event("cust-flooded"),
                                           headers=tokens.service())).json() for _ in range(3)]
            delivered = await hooks.wait_for(3, within=15)
            elapsed = time.monotonic() - started
    attempts = hooks.deliveries()
    # Each taken at its first attempt, in order: seenby hung up after reading a little of each
    # answer and counted it delivered (a 200); none waited for its timeout or was sent again.
    assert [a.status for a in attempts] == [200, 200, 200]
    assert [d.body["data"]["entry_hash"] for d in delivered] == [r["entry_hash"] for r in recorded]
    assert elapsed < 15
    # What the receiver got out before seenby hung up: the cap, plus what the sockets' buffers held.
    assert all(MAX_ANSWER_BYTES <= a.answer_bytes < 64 * 2**20 for a in attempts), attempts


async def test_the_backlog_gauges_under_a_dead_receiver_and_the_backlog_stays_packed(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deliverer, "PERIODIC_SECONDS", 0.2)
    monkeypatch.setattr(deliverer, "UNPACK_AHEAD", 100)  # each unpack takes one batch of 1,200
    hooks = Receiver(tmp_path / "receiver")  # never started: nobody listens on its port
    app = create_app(webhook_settings(settings, hooks, webhook_url=f"http://127.0.0.1:{free_port()}/hooks"))
    tokens = Tokens(app)
    async for client in serve(app):
        for _ in range(3):  # a human access, unconsented: access.human and access.flagged
            response = await client.post("/v1/accesses", json=access_event("cust-backlog"),
                                         headers=tokens.service())
            assert response.status_code == 201, response.text
        for batch in range(6):  # 1,200 notices a transaction
            events = [access_event(f"cust-backlog-{batch}-{n % 7}") for n in range(600)]
            response = await client.post("/v1/accesses:batch", json={"events": events},
                                         headers=tokens.service())
            assert response.status_code == 201, response.text
        # Long enough for every customer's first notice to fail and back off (a sweep then attempts
        # nothing), so that it shows whether more is unpacked for a receiver that is down.
        await asyncio.sleep(4)
        metrics = (await client.get("/metrics")).text
        async with app.state.database.read_sessions() as session:
            rows = await session.scalar(text("SELECT count(*) FROM notices"))
            packed = await session.scalar(text("SELECT sum(notices) FROM notice_batches"))
    gauges = {line.split()[0]: float(line.split()[1]) for line in metrics.splitlines()
              if line.startswith(("seenby_notices_pending ", "seenby_notice_oldest_pending_age_seconds ",
                                  "seenby_notices_dead_letters "))}
    assert gauges["seenby_notices_pending"] == 6 + 6 * 1200
    assert 1.0 <= gauges["seenby_notice_oldest_pending_age_seconds"] < 10
    assert gauges["seenby_notices_dead_letters"] == 0
    # For a receiver that takes nothing: the first batches, and one more once every customer waits
    # on a backoff; not one more each time they all wait again.
    assert rows + packed == 6 + 6 * 1200
    assert rows <= 6 + 2 * 1200


@pytest.mark.parametrize("refusal", [422, 503])
async def test_a_customer_whose_notices_keep_failing_holds_back_nobody_else(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refusal: int
) -> None:
    """Its notices wait behind its first one, pending as rows, more of them than the deliverer
    unpacks ahead: the other customers' notices, packed after them, still go out, whether the
    receiver refuses its notices (422) or fails on them (503)."""
    monkeypatch.setattr(deliverer, "UNPACK_AHEAD", 10)
    with receiver(tmp_path / "receiver", refuse_customer="cust-refused", refuse_status=refusal) as hooks:
        app = create_app(webhook_settings(settings, hooks, webhook_types=["access.human"],
                                          webhook_backoff_seconds=5, webhook_backoff_max_seconds=5))
        tokens = Tokens(app)
        async for client in serve(app):
            refused = [access_event("cust-refused") for _ in range(30)]
            response = await client.post("/v1/accesses:batch", json={"events": refused},
                                         headers=tokens.service())
            assert response.status_code == 201, response.text
            await asyncio.sleep(0.5)  # its batch unpacked, its first notice refused
            others = [access_event(f"cust-other-{n}") for n in range(20)]
            for start in range(0, len(others), 5):  # later transactions: later batches
                response = await client.post("/v1/accesses:batch", json={"events": others[start:start + 5]},
                                             headers=tokens.service())
                assert response.status_code == 201, response.text
            accepted = await hooks.wait_for(len(others), within=20)
    assert {d.body["data"]["customer_id"] for d in accepted} == {e["customer_id"] for e in others}
    refusals = [a for a in hooks.deliveries() if a.status == refusal]
    assert refusals and {a.body["data"]["customer_id"] for a in refusals} == {"cust-refused"}


async def test_a_receiver_that_takes_nothing_gets_one_page_unpacked_ahead_until_a_delivery_goes_through(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deliverer's steps driven one by one (the app's own deliverer idle): with every pending
    notice failing, one page more is unpacked, not a page each time; once a delivery goes through,
    the next page is."""
    async def idle(self: deliverer.Deliverer, leading: object) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(deliverer.Deliverer, "run", idle)
    monkeypatch.setattr(deliverer, "UNPACK_AHEAD", 100)  # each unpack takes one batch of 1,200
    hooks = Receiver(tmp_path / "receiver")  # started only at the end
    app_settings = webhook_settings(settings, hooks)
    app = create_app(app_settings)
    tokens = Tokens(app)
    async for client in serve(app):
        for batch in range(4):
            events = [access_event(f"cust-ahead-{batch}-{n % 7}") for n in range(600)]
            response = await client.post("/v1/accesses:batch", json={"events": events},
                                         headers=tokens.service())
            assert response.status_code == 201, response.text
        steps = deliverer.Deliverer(app.state.database, app_settings, app.state.keys.webhook_secrets)
        try:
            assert await steps.unpack() == 1200
            assert await steps.sweep()  # every attempt fails: nobody listens
            assert await steps.unpack(ahead_of_waiting=True) == 1200
            assert await steps.unpack(ahead_of_waiting=True) == 0
            assert await steps.unpack(ahead_of_waiting=True) == 0
            hooks.start()
            try:
                await asyncio.sleep(1.0)  # past the customers' backoff and the receiver's pause
                assert await steps.sweep()
                assert hooks.deliveries(), "a delivery went through"
                assert await steps.unpack(ahead_of_waiting=True) == 1200
            finally:
                hooks.stop()
        finally:
            await steps.close()


async def test_a_customer_whose_turn_the_receivers_pause_cut_short_waits_on_the_next_page(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page of two: the receiver fails the first customer's notice and the deliverer pauses
    before it tries the second customer's first notice. The pause is over when the next page is
    read, and that page holds the second customer's second notice: it waits for the first."""
    async def idle(self: deliverer.Deliverer, leading: object) -> None:
        await asyncio.Event().wait()

    record = deliverer.Deliverer._record

    async def record_and_outlast_the_pause(self: deliverer.Deliverer,
                                           outcomes: list[deliverer.Outcome]) -> None:
        await record(self, outcomes)
        await asyncio.sleep(max(0.0, self._paused_until - time.monotonic()))

    monkeypatch.setattr(deliverer.Deliverer, "run", idle)
    monkeypatch.setattr(deliverer.Deliverer, "_record", record_and_outlast_the_pause)
    monkeypatch.setattr(deliverer, "PAGE_SIZE", 2)
    monkeypatch.setattr(deliverer, "FAILURES_BEFORE_PAUSE", 1)
    with receiver(tmp_path / "receiver", fail_first=1) as hooks:
        app_settings = webhook_settings(settings, hooks, webhook_types=["access.human"],
                                        webhook_concurrency=1)
        app = create_app(app_settings)
        tokens = Tokens(app)
        async for client in serve(app):
            for customer in ("cust-failed", "cust-cut-short", "cust-cut-short"):
                response = await client.post("/v1/accesses", json=access_event(customer),
                                             headers=tokens.service())
                assert response.status_code == 201, response.text
            steps = deliverer.Deliverer(app.state.database, app_settings, app.state.keys.webhook_secrets)
            try:
                assert await steps.unpack() == 3
                assert await steps.sweep()
                assert [(d.status, d.body["data"]["customer_id"]) for d in hooks.deliveries()] == \
                    [(500, "cust-failed")]
                deadline = time.monotonic() + 20
                while len(hooks.accepted()) < 3:
                    assert time.monotonic() < deadline, hooks.deliveries()
                    await asyncio.sleep(0.05)
                    await steps.sweep()
            finally:
                await steps.close()
    cut_short = [d.body["data"]["customer_seq"] for d in hooks.deliveries()
                 if d.body["data"]["customer_id"] == "cust-cut-short"]
    assert cut_short == sorted(cut_short) and len(cut_short) == 2
    assert customer_order_holds(hooks.accepted())


class _BrokenForOneCustomer(httpx.AsyncBaseTransport):
    """Takes every notice but one customer's, on which it raises an error httpx does not wrap."""

    def __init__(self, broken: str | None) -> None:
        self.broken = broken
        self.taken: list[dict] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body["data"]["customer_id"] == self.broken:
            raise RuntimeError("a fault no httpx error wraps")
        self.taken.append(body)
        return httpx.Response(204, stream=httpx.ByteStream(b""))  # streamed, as a receiver answers


@pytest.mark.parametrize("fault_in", ["rendering", "sending"])
async def test_an_unforeseen_error_in_one_delivery_fails_that_notice_and_its_siblings_are_recorded(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault_in: str
) -> None:
    """The deliverer's steps driven one by one: one customer's delivery raises something other than
    an httpx error, while its body is made or while it is sent. The sweep goes on; that notice is
    pending with its error, and the other customers' notices, delivered beside it, are recorded as
    delivered (not sent again)."""
    async def idle(self: deliverer.Deliverer, leading: object) -> None:
        await asyncio.Event().wait()

    render = Notice.body

    def render_but_one(self: Notice) -> bytes:
        if self.customer_id == "cust-broken":
            raise RuntimeError("a fault no httpx error wraps")
        return render(self)

    monkeypatch.setattr(deliverer.Deliverer, "run", idle)
    if fault_in == "rendering":
        monkeypatch.setattr(Notice, "body", render_but_one)
    app_settings = webhook_settings(settings, Receiver(tmp_path / "receiver"), webhook_types=["access.human"],
                                    webhook_backoff_seconds=30, webhook_backoff_max_seconds=30)
    app = create_app(app_settings)
    tokens = Tokens(app)
    customers = ["cust-broken", "cust-fine-1", "cust-fine-2"]
    transport = _BrokenForOneCustomer("cust-broken" if fault_in == "sending" else None)
    async for client in serve(app):
        recorded = {}
        for customer in customers:
            response = await client.post("/v1/accesses", json=access_event(customer),
                                         headers=tokens.service())
            assert response.status_code == 201, response.text
            recorded[customer] = response.json()["entry_hash"]
        steps = deliverer.Deliverer(app.state.database, app_settings, app.state.keys.webhook_secrets,
                                    transport=transport)
        try:
            assert await steps.unpack() == 3
            assert await steps.sweep()
            assert await steps.sweep() is False  # the fine ones are recorded; the broken one backs off
        finally:
            await steps.close()
        async with app.state.database.sessions() as session:
            rows = (await session.execute(text(
                "SELECT e.customer_id, n.state, n.attempts, n.last_error FROM notices AS n"
                " JOIN ledger_entries AS e ON e.id = n.entry_id WHERE e.customer_id IN ('cust-broken',"
                " 'cust-fine-1', 'cust-fine-2') ORDER BY e.customer_id"))).all()
    assert sorted(body["data"]["entry_hash"] for body in transport.taken) == \
        sorted([recorded["cust-fine-1"], recorded["cust-fine-2"]])
    assert [(customer, state, attempts) for customer, state, attempts, _ in rows] == [
        ("cust-broken", PENDING, 1), ("cust-fine-1", DELIVERED, 1), ("cust-fine-2", DELIVERED, 1)]
    assert "a fault no httpx error wraps" in rows[0][3]
