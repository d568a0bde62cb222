"""The integrator reads its queue past settled ids (PostgreSQL), and never past one still on its way."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from service.accesses.service import Recorder
from service.db import Database
from service.keys import load_keys
from service.ledger import store
from service.ledger.integrator import Integrator
from service.ledger.queue_floor import QueueFloor
from service.main import create_app
from service.metrics import REGISTRY
from service.settings import Settings
from tests.conftest import Backend, Tokens, serve
from tests.factories import access_event


async def log_reaches(client: httpx.AsyncClient, size: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while int((await client.get("/v1/log/checkpoint")).text.split("\n")[1]) < size:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def floor_reaches(floor: QueueFloor, value: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while floor.floor < value:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


# The writers' ids query before this release: nextval() without taking a transaction id first.
OLDER_RELEASE_IDS = "SELECT array_agg(nextval('ledger_entries_id_seq')) FROM generate_series(1, $1)"


@pytest.mark.parametrize("writer", ["this release", "an older release"])
async def test_an_entry_held_between_its_ids_and_its_commit_joins_the_log(
    writer: str, fresh_pg: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One writer takes its entry id, then stalls before writing anything. Meanwhile a batch with
    higher ids commits and the integrator makes many passes: the queue floor must stay below the
    stalled id, so that the entry joins the log as soon as it commits. A writer of an older release
    (during a rolling upgrade) can be passed by the floor: the periodic rescan still finds it."""
    if writer == "an older release":
        monkeypatch.setattr(store, "_PG_NEXT_IDS", OLDER_RELEASE_IDS)
        monkeypatch.setattr(QueueFloor, "RESCAN_SECONDS", 1.0)
    take_ids = store._next_ids
    calls = 0
    stalled, release = asyncio.Event(), asyncio.Event()

    async def stalling_the_second(session, count: int) -> list[int]:  # type: ignore[no-untyped-def]
        nonlocal calls
        ids = await take_ids(session, count)
        calls += 1
        # Not the first: a sequence's first nextval() writes WAL and so gives its transaction an
        # id by itself; the next 31 do not, which is the case the writers' ids query must cover.
        if calls == 2:
            stalled.set()
            await release.wait()
        return ids

    monkeypatch.setattr(store, "_next_ids", stalling_the_second)
    app = create_app(fresh_pg.settings)
    tokens = Tokens(app)
    async for client in serve(app):
        first = await client.post("/v1/accesses", json=access_event("cust-first"), headers=tokens.service())
        assert first.status_code == 201
        assert await log_reaches(client, 1, within=5)  # so the stalled writer's xid is the newest
        held = asyncio.create_task(
            client.post("/v1/accesses", json=access_event("cust-held"), headers=tokens.service()))
        await asyncio.wait_for(stalled.wait(), 10)
        await asyncio.sleep(1.0)  # passes while the stalled writer has the newest transaction id
        # 600 events: over SECOND_WRITER_UNITS, so the recorder's second writer takes them.
        batch = {"events": [access_event(f"cust-{n % 7}") for n in range(600)]}
        response = await client.post("/v1/accesses:batch", json=batch, headers=tokens.service())
        assert response.status_code == 201
        assert await log_reaches(client, 601, within=10)
        await asyncio.sleep(1.0)  # a few more passes while the stalled writer still holds id 2
        release.set()
        assert (await held).status_code == 201

        # Within 5 s: found by the floor's rule (this release) or by a rescan (every second here).
        assert await log_reaches(client, 602, within=5)
        if writer == "this release":
            assert await floor_reaches(app.state.integrator._floor, 602, within=5), "it moves up when settled"


@contextlib.asynccontextmanager
async def _leading(settings: Settings, **sizes: int) -> AsyncIterator[tuple[Recorder, Integrator]]:
    """A recorder, and an integrator holding the leader's lock, on these settings' database."""
    database = Database(settings)
    keys = load_keys(settings)
    recorder = Recorder(database, settings, keys.pseudonym_key)
    integrator = Integrator(database, keys.signing_key, settings.log_origin, **sizes)
    try:
        async with integrator._leadership() as leading:
            assert leading
            yield recorder, integrator
    finally:
        await recorder.close()
        await database.dispose()


async def test_after_a_full_pass_the_waiting_gauge_counts_what_is_still_queued(fresh_pg: Backend) -> None:
    """The leader counts the queue from its floor; whatever the floor, the count is what waits."""
    async with _leading(fresh_pg.settings, batch_size=4, max_batch_size=4) as (recorder, integrator):
        for round_ in range(3):
            await recorder.record([access_event(f"cust-{round_}-{n}") for n in range(10)],
                                  recorded_by="clip-store")
            floor = integrator._floor.floor
            assert (floor > 0) == (round_ > 0), "later rounds read from a floor above zero"
            waiting = []
            while await integrator.integrate_once() == integrator.batch_size:
                waiting.append(REGISTRY.get_sample_value("seenby_log_entries_waiting"))
            assert waiting == [6, 2], f"round {round_}, floor {floor}"


async def test_while_the_queue_stays_full_each_pass_takes_twice_as_many(fresh_pg: Backend) -> None:
    """Passes grow under a backlog (up to the maximum) and go back to the batch size once one
    empties the queue."""
    async with _leading(fresh_pg.settings, batch_size=4, max_batch_size=16) as (recorder, integrator):
        for backlog, expected in ((40, [4, 8, 16, 12]), (3, [3])):
            await recorder.record([access_event(f"cust-{backlog}-{n}") for n in range(backlog)],
                                  recorded_by="clip-store")
            passes = []
            while taken := await integrator.integrate_once():
                passes.append(taken)
            assert passes == expected
