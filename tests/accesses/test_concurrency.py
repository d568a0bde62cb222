"""Concurrent writers to one customer never fork or gap its chain, in one process or several."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from fastapi import FastAPI

from service.consent import rules
from service.group_commit import SECOND_WRITER_UNITS
from tests.chains import assert_chain_intact, fetch_chain
from tests.conftest import Backend, Served, Tokens
from tests.factories import access_event
from tests.servers import running_server, settings_env


async def test_concurrent_requests_in_one_process(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    neighbour = f"{customer_id}-n"

    async def batch(i: int) -> list[dict]:
        events = [access_event(customer_id if j % 3 else neighbour, clip_id=f"c{i}-{j}") for j in range(15)]
        response = await client.post("/v1/accesses:batch", json={"events": events},
                                     headers=tokens.service())
        assert response.status_code == 201, response.text
        return response.json()["receipts"]

    async def single() -> list[dict]:
        response = await client.post("/v1/accesses", json=access_event(customer_id),
                                     headers=tokens.service())
        assert response.status_code == 201, response.text
        return [response.json()]

    results = await asyncio.gather(*(batch(i) for i in range(12)), *(single() for _ in range(20)))
    receipts = [r for result in results for r in result]
    chain = await fetch_chain(client, customer_id, tokens.regulator())
    assert len(chain) == 12 * 10 + 20
    assert_chain_intact(chain)
    mine = {r["entry_hash"] for r in receipts} & {i["entry_hash"] for i in chain}
    assert len(mine) == len(chain)
    assert_chain_intact(await fetch_chain(client, neighbour, tokens.regulator()))


async def test_big_batches_at_once_share_the_writers_and_keep_the_chain(
    app: FastAPI, client: httpx.AsyncClient, tokens: Tokens, customer_id: str, backend: Backend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Single events wait for the writer's next group; batches over SECOND_WRITER_UNITS waiting
    while a group is written are taken by a second writer (on PostgreSQL); the chains stay whole."""
    recorder = app.state.recorder.group_commit
    writing, most = 0, 0
    record_group = recorder._record_group

    async def counting(group: list) -> None:
        nonlocal writing, most
        writing += 1
        most = max(most, writing)
        try:
            await record_group(group)
        finally:
            writing -= 1

    monkeypatch.setattr(recorder, "_record_group", counting)
    singles = []
    for _ in range(30):  # arriving one by one while earlier ones are being written
        singles.append(asyncio.create_task(
            client.post("/v1/accesses", json=access_event(customer_id), headers=tokens.service())))
        await asyncio.sleep(0.002)
    singles = await asyncio.gather(*singles)
    assert [r.status_code for r in singles] == [201] * 30
    assert most == 1

    neighbour = f"{customer_id}-n"
    size = SECOND_WRITER_UNITS + 100

    async def batch(i: int) -> int:
        events = [access_event(customer_id if j % 2 else neighbour, clip_id=f"c{i}-{j}") for j in range(size)]
        response = await client.post("/v1/accesses:batch", json={"events": events}, headers=tokens.service())
        assert response.status_code == 201, response.text
        return len(response.json()["receipts"])

    # More than one group holds (4,000 events), so some wait while the first group is written.
    assert await asyncio.gather(*(batch(i) for i in range(8))) == [size] * 8
    assert most == (1 if backend.name == "sqlite" else 2)
    for customer, expected in ((customer_id, 30 + 4 * size), (neighbour, 4 * size)):
        chain = await fetch_chain(client, customer, tokens.regulator())
        assert len(chain) == expected
        assert_chain_intact(chain)


async def test_requests_do_not_wait_behind_a_writer_stuck_on_a_lock(
    pg: Served, customer_id: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first writer's group stalls (as on a customer's lock that another process holds): after
    SECOND_WRITER_AFTER_SECONDS the second writer takes the single events queued behind it."""
    recorder = pg.app.state.recorder.group_commit
    record_group = recorder._record_group
    stalled, release = asyncio.Event(), asyncio.Event()

    async def stalling_the_first(group: list) -> None:
        if not stalled.is_set():
            stalled.set()
            await release.wait()
        await record_group(group)

    monkeypatch.setattr(recorder, "_record_group", stalling_the_first)
    held = asyncio.create_task(pg.client.post(
        "/v1/accesses", json=access_event(f"{customer_id}-held"), headers=pg.tokens.service()))
    await asyncio.wait_for(stalled.wait(), 10)
    try:
        behind = await asyncio.wait_for(pg.client.post(
            "/v1/accesses", json=access_event(customer_id), headers=pg.tokens.service()), 10)
        assert behind.status_code == 201
        assert not held.done()
    finally:
        release.set()
    assert (await held).status_code == 201


async def test_a_request_that_fails_its_group_fails_alone(
    app: FastAPI, client: httpx.AsyncClient, tokens: Tokens, customer_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected error while writing a group (here injected for one customer): the group is
    retried request by request, so only the request that carries the fault fails."""
    doomed = f"{customer_id}-doomed"
    flags = rules.flags

    def failing_for_doomed(access: rules.Access, facts: rules.Facts) -> list[str]:
        if access.customer_id == doomed:
            raise RuntimeError("injected fault")
        return flags(access, facts)

    recorder = app.state.recorder.group_commit
    record_group = recorder._record_group
    group_sizes: list[int] = []

    async def noting_sizes(group: list) -> None:
        group_sizes.append(len(group))
        await record_group(group)

    monkeypatch.setattr(rules, "flags", failing_for_doomed)
    monkeypatch.setattr(recorder, "_record_group", noting_sizes)
    events = [access_event(doomed if n == 5 else customer_id) for n in range(10)]
    # A client that gets the 500 as a server's client would, rather than the exception re-raised.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=str(client.base_url)) as plain:
        responses = await asyncio.gather(*(
            plain.post("/v1/accesses", json=event, headers=tokens.service()) for event in events))
    assert [r.status_code for r in responses] == [201] * 5 + [500] + [201] * 4
    assert responses[5].headers["content-type"] == "application/problem+json"
    assert max(group_sizes) > 1, "the faulty request was written in a group with others"
    assert len(await fetch_chain(client, customer_id, tokens.regulator())) == 9
    assert await fetch_chain(client, doomed, tokens.regulator()) == []


async def test_one_new_event_sent_twice_at_once_is_recorded_once(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    event = access_event(customer_id)
    responses = await asyncio.gather(*(
        client.post("/v1/accesses", json=event, headers=tokens.service()) for _ in range(8)
    ))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 7 + [201]
    assert len({r.json()["entry_hash"] for r in responses}) == 1
    assert len(await fetch_chain(client, customer_id, tokens.regulator())) == 1


async def test_requests_cancelled_while_waiting_leave_the_writer_working(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    """Clients that go away while their events wait for the writer: nobody is answered twice,
    the writer goes on, and what it recorded for them is a replay when they send again."""
    events = [access_event(customer_id) for _ in range(40)]
    requests = [asyncio.create_task(client.post("/v1/accesses", json=e, headers=tokens.service()))
                for e in events]
    for _ in range(20):  # let them reach the writer's queue, then walk away from every other one
        await asyncio.sleep(0)
    for request in requests[::2]:
        request.cancel()
    outcomes = await asyncio.gather(*requests, return_exceptions=True)
    for outcome in outcomes[1::2]:
        assert isinstance(outcome, httpx.Response) and outcome.status_code == 201, outcome

    async def send_all_again() -> list[int]:
        return [(await client.post("/v1/accesses", json=e, headers=tokens.service())).status_code
                for e in events]

    statuses = await asyncio.wait_for(send_all_again(), timeout=30)
    assert set(statuses) <= {200, 201} and statuses[1::2] == [200] * 20
    chain = await fetch_chain(client, customer_id, tokens.regulator())
    assert len(chain) == len(events)
    assert_chain_intact(chain)


async def test_two_server_processes_share_one_chain(
    pg_backend: Backend, pg: Served, tmp_path
) -> None:
    customer_id = f"cust-{uuid.uuid4().hex[:12]}"
    env = settings_env(pg_backend.settings)
    with running_server(env, tmp_path) as first, running_server(env, tmp_path) as second:
        async with httpx.AsyncClient(timeout=30) as http:
            async def batch(base: str, i: int) -> httpx.Response:
                events = [access_event(customer_id, clip_id=f"clip-{i}-{j}") for j in range(25)]
                return await http.post(f"{base}/v1/accesses:batch", json={"events": events},
                                       headers=pg.tokens.service())

            shared = access_event(customer_id)
            responses = await asyncio.gather(
                *(batch(first if i % 2 else second, i) for i in range(16)),
                *(http.post(f"{base}/v1/accesses", json=shared, headers=pg.tokens.service())
                  for base in (first, second, first, second)),
            )
            assert all(r.status_code in (200, 201) for r in responses), [r.text for r in responses]
            assert sorted(r.status_code for r in responses[16:]) == [200, 200, 200, 201]
            async with httpx.AsyncClient(base_url=first, timeout=30) as reader:
                chain = await fetch_chain(reader, customer_id, pg.tokens.regulator())
    assert len(chain) == 16 * 25 + 1
    assert_chain_intact(chain)
