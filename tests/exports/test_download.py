"""`seenby export`: data and manifest side by side, pinned to one cut, resumed after an interruption."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from rich.console import Console
from rich.progress import Progress

from service import verify
from service.exports.download import (
    DownloadError,
    ExportRequest,
    RichReporter,
    download,
    manifest_path,
    state_path,
)
from service.settings import Settings
from tests.conftest import Tokens
from tests.exports.support import record, settled
from tests.exports.test_exports import mixed_events
from tests.factories import access_event
from tests.servers import abandoned_sessions, running_server, seenby_command, server_logs, settings_env


class _CutShort(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, limit: int) -> None:
        self._inner, self._limit = inner, limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sent = 0
        async for chunk in self._inner:
            if sent + len(chunk) > self._limit:
                yield chunk[: self._limit - sent]
                raise httpx.ReadError("connection reset (simulated)")
            sent += len(chunk)
            yield chunk


class Flaky(httpx.AsyncBaseTransport):
    """The app over ASGI, but the first `failures` data downloads break off after `limit` bytes."""

    def __init__(self, app: FastAPI, *, limit: int, failures: int) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self._limit, self._failures = limit, failures
        self.requests: list[httpx.URL] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request.url)
        response = await self._inner.handle_async_request(request)
        if request.url.path == "/v1/exports/accesses" and self._failures:
            self._failures -= 1
            return httpx.Response(response.status_code, headers=response.headers, request=request,
                                  stream=_CutShort(response.stream, self._limit))  # type: ignore[arg-type]
        return response


class _Pieces(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, size: int) -> None:
        self._inner, self._size = inner, size

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            for start in range(0, len(chunk), self._size):
                yield chunk[start:start + self._size]


class Rechunked(httpx.AsyncBaseTransport):
    """The app over ASGI, every response body sent in pieces of `size` bytes."""

    def __init__(self, app: FastAPI, size: int) -> None:
        self._inner, self._size = httpx.ASGITransport(app=app), size

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        return httpx.Response(response.status_code, headers=response.headers, request=request,
                              stream=_Pieces(response.stream, self._size))  # type: ignore[arg-type]


def flaky_client(app: FastAPI, tokens: Tokens, **options: int) -> tuple[httpx.AsyncClient, Flaky]:
    transport = Flaky(app, **options)
    return httpx.AsyncClient(transport=transport, base_url="http://seenby.test",
                             headers=tokens.regulator()), transport


@pytest.fixture
async def recorded(client: httpx.AsyncClient, tokens: Tokens, customer_id: str) -> str:
    await record(client, tokens, mixed_events(customer_id, 12))
    await settled(client, tokens, customer_id, 12)
    return customer_id


@pytest.mark.parametrize("export_format", ["jsonl", "csv"])
async def test_an_interrupted_download_resumes_where_it_stopped(
    app: FastAPI, client: httpx.AsyncClient, tokens: Tokens, recorded: str, tmp_path: Path,
    export_format: str,
) -> None:
    key = verify.load_verifier((await client.get("/v1/log/key")).text)
    request = ExportRequest(customer_id=recorded, kind="all", format=export_format)
    data = tmp_path / f"export.{export_format}"

    first, _ = flaky_client(app, tokens, limit=2500, failures=1)
    async with first:
        with pytest.raises(DownloadError, match="run the same command again to resume"):
            await download(first, request, data, retries=0)
    assert state_path(data).exists() and manifest_path(data).exists()
    assert 0 < data.stat().st_size <= 2500

    await record(client, tokens, [access_event(recorded)])  # the log moves on; the cut does not
    await settled(client, tokens, recorded, 13)
    second, transport = flaky_client(app, tokens, limit=10**9, failures=0)
    async with second:
        result = await download(second, request, data)
    assert result.resumed and result.count == 12
    assert "after_log_index" in transport.requests[-1].params
    assert transport.requests[-1].params["tree_size"] == str(result.tree_size)
    assert not state_path(data).exists()
    outcome = verify.export(data, manifest_path(data), key)
    assert outcome.startswith("12 entries")
    assert "chain is complete from customer_seq 0 to 11" in outcome


class _Stalled(httpx.AsyncByteStream):
    """A body's first bytes, then nothing until the download is cancelled."""

    def __init__(self, inner: httpx.AsyncByteStream, began: asyncio.Event) -> None:
        self._inner, self._began = inner, began

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk[:300]
            self._began.set()
            await asyncio.Event().wait()


class _BrokenOnceTheDataBegan(httpx.AsyncByteStream):
    """A body's first bytes, then a reset, but only once the data's body has begun: a download that
    asked for the data only after the manifest would wait here until the test times out."""

    def __init__(self, inner: httpx.AsyncByteStream, began: asyncio.Event) -> None:
        self._inner, self._began = inner, began

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk[:100]
            await asyncio.wait_for(self._began.wait(), timeout=10)
            raise httpx.ReadError("connection reset (simulated)")


class SideBySide(httpx.AsyncBaseTransport):
    """The app over ASGI; the data stalls after its first bytes, the manifest breaks off once the
    data has begun."""

    def __init__(self, app: FastAPI) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self.data_began = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        stream = (_Stalled if request.url.path == "/v1/exports/accesses" else _BrokenOnceTheDataBegan)(
            response.stream, self.data_began)  # type: ignore[arg-type]
        return httpx.Response(response.status_code, headers=response.headers, request=request, stream=stream)


async def test_the_data_streams_beside_the_manifest_and_stops_when_the_manifest_fails(
    app: FastAPI, client: httpx.AsyncClient, tokens: Tokens, recorded: str, tmp_path: Path
) -> None:
    """The data is asked for as soon as the manifest's headers pin the cut, and both stream at once;
    a manifest that fails stops the data where it is, and the rerun fetches the manifest again at
    the same cut and resumes the data."""
    key = verify.load_verifier((await client.get("/v1/log/key")).text)
    request = ExportRequest(customer_id=recorded, kind="all")
    data = tmp_path / "export.jsonl"
    transport = SideBySide(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://seenby.test",
                                 headers=tokens.regulator()) as first:
        with pytest.raises(DownloadError, match="run the same command again to resume"):
            await download(first, request, data, retries=0)
    assert transport.data_began.is_set()
    assert data.stat().st_size == 300  # the data's first bytes, and no more once the manifest failed
    assert state_path(data).exists() and not manifest_path(data).exists()
    cut = json.loads(state_path(data).read_text())["tree_size"]

    await record(client, tokens, [access_event(recorded)])  # the log moves on; the cut does not
    await settled(client, tokens, recorded, 13)
    second, requests = flaky_client(app, tokens, limit=10**9, failures=0)
    async with second:
        result = await download(second, request, data)
    assert result.resumed and result.count == 12 and result.tree_size == cut
    assert {url.params["tree_size"] for url in requests.requests} == {str(cut)}
    assert not state_path(data).exists()
    assert verify.export(data, manifest_path(data), key).startswith("12 entries")


@pytest.mark.parametrize("export_format", ["jsonl", "csv"])
async def test_the_progress_counts_entries_not_bytes(
    app: FastAPI, tokens: Tokens, recorded: str, tmp_path: Path, export_format: str
) -> None:
    console = Console(record=True, width=120, force_terminal=False)
    # In pieces of 5 bytes, so that some of CSV's CRLF record ends are split across two chunks.
    regulator = httpx.AsyncClient(transport=Rechunked(app, 5), base_url="http://seenby.test",
                                  headers=tokens.regulator())
    async with regulator:
        with Progress(*RichReporter.columns(), console=console) as progress:
            await download(regulator, ExportRequest(customer_id=recorded, format=export_format),
                           tmp_path / f"x.{export_format}", reporter=RichReporter(progress))
    shown = console.export_text()
    assert "12/12 entries" in shown, shown
    assert "/12 bytes" not in shown and "manifest (tree size" in shown


async def test_network_errors_are_retried_within_one_run(
    app: FastAPI, client: httpx.AsyncClient, tokens: Tokens, recorded: str, tmp_path: Path
) -> None:
    key = verify.load_verifier((await client.get("/v1/log/key")).text)
    data = tmp_path / "export.jsonl"
    flaky, transport = flaky_client(app, tokens, limit=700, failures=3)
    async with flaky:
        result = await download(flaky, ExportRequest(customer_id=recorded), data, retries=5)
    assert not result.resumed and result.count == 12
    assert sum(url.path == "/v1/exports/accesses" for url in transport.requests) == 4
    assert "12 entries" in verify.export(data, manifest_path(data), key)


async def test_an_empty_export_downloads_and_verifies(
    app: FastAPI, client: httpx.AsyncClient, tokens: Tokens, customer_id: str, tmp_path: Path
) -> None:
    key = verify.load_verifier((await client.get("/v1/log/key")).text)
    regulator, _ = flaky_client(app, tokens, limit=10**9, failures=0)
    async with regulator:
        for export_format in ("jsonl", "csv"):
            data = tmp_path / f"empty.{export_format}"
            result = await download(regulator, ExportRequest(customer_id=customer_id, kind="all",
                                                             format=export_format), data)
            assert result.count == 0
            outcome = verify.export(data, manifest_path(data), key)
            assert outcome.startswith("0 entries") and "has no entries in this cut" in outcome


async def test_finished_or_foreign_downloads_are_never_overwritten(
    app: FastAPI, tokens: Tokens, recorded: str, tmp_path: Path
) -> None:
    data = tmp_path / "export.jsonl"
    regulator, _ = flaky_client(app, tokens, limit=10**9, failures=0)
    async with regulator:
        await download(regulator, ExportRequest(customer_id=recorded), data)
        with pytest.raises(DownloadError, match="already exists"):
            await download(regulator, ExportRequest(customer_id=recorded), data)
        other = tmp_path / "other.jsonl"
        state_path(other).write_text(
            '{"request": {"customer_id": "x", "since": null, "until": null, "kind": "access", '
            '"format": "jsonl"}, "tree_size": 1, "manifest_done": true}')
        with pytest.raises(DownloadError, match="partial download of another export"):
            await download(regulator, ExportRequest(customer_id=recorded), other)
        with pytest.raises(DownloadError, match=r"\(422\).*tree_size"):
            await download(regulator, ExportRequest(customer_id=recorded), tmp_path / "beyond.jsonl",
                           tree_size=10**12)
    customer, _ = flaky_client(app, tokens, limit=10**9, failures=0)
    customer.headers.update(tokens.customer(recorded))
    async with customer:
        with pytest.raises(DownloadError, match=r"\(403\)"):
            await download(customer, ExportRequest(customer_id=recorded), tmp_path / "mine.jsonl")


def test_the_export_command_against_a_running_server(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SEENBY_")}

    def seenby(*args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([*seenby_command(), *args], cwd=tmp_path, env={**clean, **env},
                              capture_output=True, text=True, timeout=120)

    with running_server({}, tmp_path) as url:
        service = seenby("token", "--role", "service", "--sub", "clip-viewer").stdout.strip()
        regulator = seenby("token", "--role", "regulator", "--sub", "dpa").stdout.strip()
        events = [access_event("cust-cli") for _ in range(30)]
        response = httpx.post(f"{url}/v1/accesses:batch", json={"events": events},
                              headers={"Authorization": f"Bearer {service}"})
        assert response.status_code == 201
        (tmp_path / "key.txt").write_text(httpx.get(f"{url}/v1/log/key").text)
        deadline = time.monotonic() + 30
        while int(httpx.get(f"{url}/v1/log/checkpoint").text.split("\n")[1]) < 30:
            assert time.monotonic() < deadline, "the server did not integrate the entries in time"
            time.sleep(0.1)
        done = seenby("export", "--url", url, "--customer-id", "cust-cli", "--kind", "all", "--format",
                      "csv", "--out", "cust.csv", SEENBY_TOKEN=regulator)
        assert done.returncode == 0, done.stderr
        assert "wrote cust.csv (30 entries" in done.stdout
        denied = seenby("export", "--url", url, "--out", "no.jsonl", SEENBY_TOKEN=service)
        assert denied.returncode == 2 and "403" in denied.stderr and "roles: regulator" in denied.stderr
    checked = seenby("verify", "export", "cust.csv", "--manifest", "cust.csv.manifest.json", "--key",
                     "key.txt")
    assert checked.returncode == 0, checked.stderr
    assert "30 entries" in checked.stdout and "chain is complete from customer_seq 0 to 29" in checked.stdout


HUNG_UP_CUSTOMERS = [f"cust-hangs-up-{n}" for n in range(8)]


async def _four_thousand_entries_in_the_log(http: httpx.AsyncClient, tokens: Tokens) -> None:
    for customer in HUNG_UP_CUSTOMERS:
        await record(http, tokens, [access_event(customer) for _ in range(500)])
    for customer in HUNG_UP_CUSTOMERS:
        await settled(http, tokens, customer, 500, within=30)


async def test_regulators_that_hang_up_mid_export_cost_no_database_connection(
    settings: Settings, tmp_path: Path
) -> None:
    """Exports and manifests dropped at different points: each read in progress finishes and gives
    its connection back. (Cancelled mid-read, SQLAlchemy would close the connection abruptly: on
    PostgreSQL 22 of 30 such hang-ups did.)"""
    tokens = Tokens.for_settings(settings)
    with running_server(settings_env(settings), tmp_path) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            await _four_thousand_entries_in_the_log(http, tokens)
            abandoned = await abandoned_sessions(settings)
            for n in range(30):
                path = "/v1/exports/accesses" + ("/manifest" if n % 2 else "")
                received = 0
                async with http.stream("GET", path, headers=tokens.regulator()) as response:
                    assert response.status_code == 200
                    async for chunk in response.aiter_bytes():  # then hang up, somewhere else each time
                        received += len(chunk)
                        if received > 25_000 * (n + 1):
                            break
            await asyncio.sleep(1.5)  # the server notices the last hang-ups
            assert (await http.get("/readyz")).status_code == 200
            assert await abandoned_sessions(settings) == abandoned
    logs = await asyncio.to_thread(server_logs, tmp_path)
    assert "Task was destroyed" not in logs
    assert "Traceback" not in logs


async def _a_log_larger_than_socket_buffers(http: httpx.AsyncClient, tokens: Tokens) -> None:
    """24,000 entries (24 MB of export): a download that reads nothing then stalls the server's
    stream, where a small one would fit whole in the kernel's buffers and end."""
    for _ in range(24):
        await record(http, tokens, [access_event(f"cust-large-{n % 48}") for n in range(1000)])
    deadline = time.monotonic() + 60
    while int((await http.get("/v1/log/checkpoint")).text.split("\n")[1]) < 20_000:
        assert time.monotonic() < deadline, "the entries did not reach the log in time"
        await asyncio.sleep(0.2)


async def _stalled(stack: contextlib.AsyncExitStack, url: str, path: str,
                   headers: dict[str, str]) -> httpx.Response:
    """A download opened on a connection of its own and then never read."""
    client = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=30))
    return await stack.enter_async_context(client.stream("GET", path, headers=headers))


async def test_stalled_downloads_hold_export_slots_not_every_database_connection(
    settings: Settings, tmp_path: Path
) -> None:
    """Twenty-five downloads that read nothing: SEENBY_EXPORT_STREAMS_PER_PROCESS (4 here) of them
    stream, the others are a 429 at once, and customers' reads go on. (Before the slots, on
    PostgreSQL, twenty such exports took every pooled connection: the next requests waited 30 s
    and failed with 500.) Closed, they give their slots back."""
    tokens = Tokens.for_settings(settings)
    env = {**settings_env(settings), "SEENBY_EXPORT_STREAMS_PER_PROCESS": "4"}
    with running_server(env, tmp_path) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            await _a_log_larger_than_socket_buffers(http, tokens)
            async with contextlib.AsyncExitStack() as stalled:
                paths = ["/v1/exports/accesses", "/v1/exports/accesses/manifest"] * 13
                opened = [await _stalled(stalled, url, path, tokens.regulator()) for path in paths[:25]]
                assert [r.status_code for r in opened].count(200) == 4
                for refused in (r for r in opened if r.status_code != 200):
                    assert refused.status_code == 429
                    assert refused.headers["content-type"] == "application/problem+json"
                    assert int(refused.headers["retry-after"]) > 0
                metrics = (await http.get("/metrics")).text
                assert "\nseenby_export_streams 4.0\n" in metrics
                customer = "cust-large-0"
                history = await http.get(f"/v1/customers/{customer}/accesses",
                                         headers=tokens.customer(customer), timeout=5)  # not 30 s for a pool
                assert history.status_code == 200, history.text
            deadline = time.monotonic() + 10
            while (again := await http.get("/v1/exports/accesses", params={"customer_id": customer},
                                           headers=tokens.regulator())).status_code == 429:
                assert time.monotonic() < deadline, "the slots were never given back"
                await asyncio.sleep(0.1)
            assert again.status_code == 200 and again.text.count("\n") > 0
            while "\nseenby_export_streams 0.0\n" not in (await http.get("/metrics")).text:
                assert time.monotonic() < deadline, "the gauge never came back to 0"
                await asyncio.sleep(0.1)


async def test_the_export_command_waits_out_a_busy_server(settings: Settings, tmp_path: Path) -> None:
    """Every export slot held by a download that reads nothing: `seenby export`'s download is told
    429 and waits; the stalled ones are cut off once they have taken nothing for
    SEENBY_EXPORT_SEND_TIMEOUT_SECONDS (their clients still connected), and the download goes on."""
    tokens = Tokens.for_settings(settings)
    env = {**settings_env(settings), "SEENBY_EXPORT_STREAMS_PER_PROCESS": "2",
           "SEENBY_EXPORT_SEND_TIMEOUT_SECONDS": "3"}
    with running_server(env, tmp_path) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            await _a_log_larger_than_socket_buffers(http, tokens)
            async with httpx.AsyncClient(base_url=url, timeout=30, headers=tokens.regulator()) as regulator, \
                    contextlib.AsyncExitStack() as stalled:
                for _ in range(2):
                    assert (await _stalled(stalled, url, "/v1/exports/accesses",
                                           tokens.regulator())).status_code == 200
                downloading = asyncio.create_task(download(
                    regulator, ExportRequest(customer_id="cust-large-1"), tmp_path / "busy.jsonl"))
                await asyncio.sleep(1.0)
                assert not downloading.done()  # told 429, waiting
                downloaded = await asyncio.wait_for(downloading, 60)
            key = verify.load_verifier((await http.get("/v1/log/key")).text)
    assert downloaded.count > 0
    assert verify.export(downloaded.data, manifest_path(downloaded.data), key).startswith(
        f"{downloaded.count} entries")
    assert "an export's client took nothing for 3 s" in await asyncio.to_thread(server_logs, tmp_path)
