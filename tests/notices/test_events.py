"""GET /v1/me/events against real `seenby serve` processes (an in-process ASGI client buffers whole
responses, so a stream needs a real server): new entries within a second of their commit, resuming
with Last-Event-ID, one customer's entries only, keep-alives, bounds."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from service.settings import Settings
from tests.conftest import Tokens
from tests.factories import access_event
from tests.servers import abandoned_sessions, running_server, server_logs, settings_env

LIMITS = {"SEENBY_EVENT_STREAMS_PER_CUSTOMER": "2", "SEENBY_EVENT_STREAM_KEEPALIVE_SECONDS": "1"}


@contextlib.contextmanager
def server(settings: Settings, tmp_path: Path) -> Iterator[str]:
    with running_server({**settings_env(settings), **LIMITS}, tmp_path) as url:
        yield url


@dataclass
class Stream:
    """What one open stream received: events (with when they arrived) and comment lines."""

    events: list[dict] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    status: int = 0

    def ids(self) -> list[int]:
        return [int(event["id"]) for event in self.events]


@contextlib.asynccontextmanager
async def stream(http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> AsyncIterator[Stream]:
    """Reads /v1/me/events in the background while the block runs; parses the SSE wire format."""
    got = Stream()
    opened = asyncio.Event()

    async def read() -> None:
        async with http.stream("GET", f"{url}/v1/me/events", headers=headers, timeout=None) as response:
            got.status = response.status_code
            opened.set()
            event: dict = {}
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    got.comments.append(line)
                elif line == "":
                    if "data" in event:
                        got.events.append({**event, "data": json.loads(event["data"]),
                                           "arrived": time.monotonic()})
                    event = {}
                else:
                    name, _, value = line.partition(":")
                    event[name] = value.removeprefix(" ")

    reader = asyncio.create_task(read())
    await asyncio.wait_for(opened.wait(), 10)
    try:
        yield got
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


async def until(condition, within: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def _record(http: httpx.AsyncClient, url: str, tokens: Tokens, customer: str) -> tuple[dict, float]:
    response = await http.post(f"{url}/v1/accesses", json=access_event(customer), headers=tokens.service())
    assert response.status_code == 201, response.text
    return response.json(), time.monotonic()


async def test_new_entries_arrive_within_a_second_and_resume_from_last_event_id(
    settings: Settings, tmp_path: Path
) -> None:
    tokens = Tokens.for_settings(settings)
    alice, bob = "cust-stream-alice", "cust-stream-bob"
    with server(settings, tmp_path) as url:
        async with httpx.AsyncClient(timeout=10) as http:
            await _record(http, url, tokens, alice)  # before the stream: not sent
            async with stream(http, url, tokens.customer(alice)) as mine, \
                    stream(http, url, tokens.customer(bob)) as theirs:
                assert mine.status == theirs.status == 200
                lags = []
                for _ in range(5):
                    receipt, committed = await _record(http, url, tokens, alice)
                    await until(lambda r=receipt: any(e["data"]["entry_hash"] == r["entry_hash"]
                                                      for e in mine.events))
                    lags.append(mine.events[-1]["arrived"] - committed)
                    await asyncio.sleep(0.2)
                assert max(lags) < 1.0, lags
                assert mine.ids() == [1, 2, 3, 4, 5]  # customer_seq 0 came before the stream
                assert all(e["data"]["customer_seq"] == int(e["id"]) for e in mine.events)
                assert all(e["data"]["kind"] == "access" and "canonical" in e["data"] for e in mine.events)
                assert "emp-55812" not in json.dumps(mine.events)  # the customer's view
                bobs, _ = await _record(http, url, tokens, bob)
                await until(lambda: len(theirs.events) == 1)
                assert theirs.events[0]["data"]["entry_hash"] == bobs["entry_hash"]
                assert {e["data"]["customer_id"] for e in theirs.events} == {bob}
                # Keep-alive comments while nothing happens (SEENBY_EVENT_STREAM_KEEPALIVE_SECONDS=1).
                await until(lambda: len(mine.comments) >= 2, within=4)
                last_seen = mine.ids()[-1]
            missed = [(await _record(http, url, tokens, alice))[0]["entry_hash"] for _ in range(3)]
            resumed = {**tokens.customer(alice), "Last-Event-ID": str(last_seen)}
            async with stream(http, url, resumed) as again:
                await until(lambda: len(again.events) == 3)
                await asyncio.sleep(0.3)
            assert [e["data"]["entry_hash"] for e in again.events] == missed
            assert again.ids() == [6, 7, 8]


async def test_streams_are_bounded_and_only_for_customers(settings: Settings, tmp_path: Path) -> None:
    tokens = Tokens.for_settings(settings)
    with server(settings, tmp_path) as url:
        async with httpx.AsyncClient(timeout=10) as http:
            async with stream(http, url, tokens.customer("cust-many")), \
                    stream(http, url, tokens.customer("cust-many")):
                third = await http.get(f"{url}/v1/me/events", headers=tokens.customer("cust-many"))
                assert third.status_code == 429
                assert third.headers["content-type"] == "application/problem+json"
                assert int(third.headers["retry-after"]) > 0
                async with stream(http, url, tokens.customer("cust-other")) as other:
                    assert other.status == 200  # another customer has streams of its own
            # Closed streams are given back, once the server has seen the disconnects (it learns
            # of them asynchronously, so a reopen right away may still be counted against them).
            deadline = time.monotonic() + 5
            while True:
                async with stream(http, url, tokens.customer("cust-many")) as reopened:
                    if reopened.status == 200 or time.monotonic() > deadline:
                        break
                await asyncio.sleep(0.1)
            assert reopened.status == 200
            for role in (tokens.service(), tokens.regulator(), tokens.admin()):
                assert (await http.get(f"{url}/v1/me/events", headers=role)).status_code == 403
            assert (await http.get(f"{url}/v1/me/events")).status_code == 401
            for bad in ("x", "-2", "1.5", str(2**63)):  # the last: past any customer_seq (a BIGINT)
                refused = await http.get(f"{url}/v1/me/events",
                                         headers={**tokens.customer("cust-many"), "Last-Event-ID": bad})
                assert refused.status_code == 422, bad
                assert refused.headers["content-type"] == "application/problem+json", bad
                refused = await http.get(f"{url}/v1/me/events", params={"after": bad},
                                         headers=tokens.customer("cust-many"))
                assert refused.status_code == 422, bad


async def test_entries_written_by_another_process_reach_the_stream(fresh_pg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tokens = Tokens.for_settings(fresh_pg.settings)
    with server(fresh_pg.settings, tmp_path) as reading, server(fresh_pg.settings, tmp_path) as writing:
        async with httpx.AsyncClient(timeout=10) as http, \
                stream(http, reading, tokens.customer("cust-elsewhere")) as events:
            receipt, committed = await _record(http, writing, tokens, "cust-elsewhere")
            await until(lambda: len(events.events) == 1, within=3)
    assert events.events[0]["data"]["entry_hash"] == receipt["entry_hash"]
    assert events.events[0]["arrived"] - committed < 1.0


async def test_clients_that_hang_up_mid_catch_up_cost_no_database_connection(
    settings: Settings, tmp_path: Path
) -> None:
    """Streams dropped while they catch up on 2,000 entries: the read each was in finishes and gives
    its pooled connection back. (Cancelled mid-read, SQLAlchemy would close the connection
    abruptly instead, and on SQLite leave a task to be destroyed pending.)"""
    tokens = Tokens.for_settings(settings)
    customer = "cust-hangs-up"
    # The server learns of a hang-up asynchronously: more streams than hang-ups, so none is a 429.
    env = {**settings_env(settings), "SEENBY_EVENT_STREAMS_PER_CUSTOMER": "64"}
    with running_server(env, tmp_path) as url:
        async with httpx.AsyncClient(timeout=30) as http:
            for _ in range(4):
                response = await http.post(f"{url}/v1/accesses:batch", headers=tokens.service(),
                                           json={"events": [access_event(customer) for _ in range(500)]})
                assert response.status_code == 201, response.text
            abandoned = await abandoned_sessions(settings)
            for n in range(40):
                lines = 0
                async with http.stream("GET", f"{url}/v1/me/events", params={"after": -1},
                                       headers=tokens.customer(customer)) as response:
                    assert response.status_code == 200
                    async for _ in response.aiter_lines():  # then hang up, at a different point each time
                        lines += 1
                        if lines > 37 * n:
                            break
            await asyncio.sleep(1.5)  # the server notices the last hang-ups
            assert (await http.get(f"{url}/readyz")).status_code == 200
            assert await abandoned_sessions(settings) == abandoned
    logs = await asyncio.to_thread(server_logs, tmp_path)
    assert "Task was destroyed" not in logs
    assert "Traceback" not in logs
