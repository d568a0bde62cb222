"""Real `seenby serve` processes, started the way an operator starts them."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from service.settings import Settings
from tests.chains import fetch_chain
from tests.conftest import _asyncpg_dsn
from tests.pg import free_port


def settings_env(settings: Settings) -> dict[str, str]:
    return {
        "SEENBY_DATABASE_URL": settings.resolved_database_url,
        "SEENBY_MIGRATION_DATABASE_URL": settings.resolved_migration_database_url,
        "SEENBY_DATA_DIR": str(settings.data_dir),
        "SEENBY_JWT_SECRET": settings.jwt_secret,
        "SEENBY_PSEUDONYM_SECRET": settings.pseudonym_secret,
        "SEENBY_DELETION_SERVICES": ",".join(settings.deletion_services),
    }


def seenby_command() -> list[str]:
    return [sys.executable, "-m", "service.cli"]


@contextlib.contextmanager
def serving(
    command: list[str], env: dict[str, str], cwd: Path, port: int, *, ready_path: str = "/readyz",
    ready_status: int = 200, timeout: float = 30.0,
) -> Iterator[str]:
    """Runs `command` (which listens on `port`); yields its base URL once `ready_path` answers
    `ready_status`."""
    log_path = cwd / f"serve-{port}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited: {log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + ready_path, timeout=1.0).status_code == ready_status:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server never became ready: {log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def running_server(
    env: dict[str, str], cwd: Path, *, timeout: float = 30.0, args: tuple[str, ...] = ()
) -> Iterator[str]:
    """`seenby serve [args]` in a subprocess, with `env` on top of this environment less any SEENBY_
    variable; its output goes to serve-<port>.log in `cwd`."""
    port = free_port()
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("SEENBY_")}
    with serving([*seenby_command(), "serve", "--port", str(port), *args], {**clean_env, **env}, cwd, port,
                 timeout=timeout) as url:
        yield url


async def abandoned_sessions(settings: Settings) -> int | None:
    """PostgreSQL's count of this database's sessions that ended without a goodbye (a connection a
    client closed abruptly); None on SQLite."""
    if settings.resolved_database_url.startswith("sqlite"):
        return None
    connection = await asyncpg.connect(_asyncpg_dsn(settings.resolved_database_url))
    try:
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        return int(await connection.fetchval(
            "SELECT sessions_abandoned FROM pg_stat_database WHERE datname = current_database()"))
    finally:
        await connection.close()


def server_logs(folder: Path) -> str:
    """What every running_server started in `folder` wrote."""
    return "".join(log.read_text() for log in sorted(folder.glob("serve-*.log")))


def start_seenby(env: dict[str, str], cwd: Path, port: int) -> subprocess.Popen:
    """`seenby serve` in the background, its output appended to crash-<port>.log in `cwd`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SEENBY_")}
    with (cwd / f"crash-{port}.log").open("a") as log:
        return subprocess.Popen([*seenby_command(), "serve", "--port", str(port)],
                                env={**clean, **env}, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)


async def await_ready(http: httpx.AsyncClient, base: str, log: Path) -> None:
    for _ in range(600):
        with contextlib.suppress(httpx.HTTPError):
            if (await http.get(f"{base}/readyz")).status_code == 200:
                return
        await asyncio.sleep(0.1)
    ending = (await asyncio.to_thread(log.read_text))[-3000:]
    raise AssertionError(f"{base} never became ready; its log ends:\n{ending}")


async def wait_until_integrated(http: httpx.AsyncClient, base: str, customers: Iterable[str],
                                headers: dict[str, str], within: float = 20.0) -> None:
    """Until every entry of these customers' chains is in the signed log; call it once the writes
    are acknowledged. (The tree's size says nothing exact: the log holds index leaves too.)"""
    deadline = time.monotonic() + within
    for customer in customers:
        while True:
            chain = await fetch_chain(http, customer, headers, base=base)
            waiting = sum(1 for item in chain if item["log_index"] is None)
            if not waiting:
                break
            assert time.monotonic() < deadline, f"{waiting} entries of {customer} not integrated"
            await asyncio.sleep(0.1)



async def record_integrated(http: httpx.AsyncClient, events: list[dict[str, Any]], writer: dict[str, str],
                            reader: dict[str, str]) -> None:
    """Record these events as one batch (with the writer's headers) and wait until they are all in
    the signed log (read with the reader's)."""
    response = await http.post("/v1/accesses:batch", headers=writer, json={"events": events})
    assert response.status_code == 201, response.text
    await wait_until_integrated(http, "", dict.fromkeys(event["customer_id"] for event in events), reader)

class Replicas:
    """`seenby serve` processes on one database, for fault tests: each can be killed with SIGKILL
    and started again, and clients retry what was ambiguous on either of them."""

    def __init__(self, env: dict[str, str], cwd: Path, count: int = 2) -> None:
        self._env, self._cwd = env, cwd
        self._ports = [free_port() for _ in range(count)]
        self._processes = [start_seenby(env, cwd, port) for port in self._ports]
        self.bases = [f"http://127.0.0.1:{port}" for port in self._ports]

    def _log(self, index: int) -> Path:
        return self._cwd / f"crash-{self._ports[index]}.log"

    async def ready(self, http: httpx.AsyncClient) -> None:
        for index, base in enumerate(self.bases):
            await await_ready(http, base, self._log(index))

    async def kill_in_turn(self, http: httpx.AsyncClient, victims: tuple[int, ...] = (0, 1, 0),
                           every: float = 0.6) -> None:
        """SIGKILL each victim in turn mid-load, and start it again."""
        for victim in victims:
            await asyncio.sleep(every)
            self._processes[victim].send_signal(signal.SIGKILL)
            self._processes[victim].wait()
            self._processes[victim] = start_seenby(self._env, self._cwd, self._ports[victim])
            await await_ready(http, self.bases[victim], self._log(victim))

    async def post_until_acknowledged(self, http: httpx.AsyncClient, path: str, body: Any,
                                      headers: dict[str, str], first: int) -> httpx.Response:
        """POST until a 2xx, retrying a connection error or an error answer on the replicas in turn
        (starting at `first`), the same body every time: an ambiguous failure is retried, never lost."""
        deadline = time.monotonic() + 90
        for attempt in itertools.count():
            assert time.monotonic() < deadline, f"{path} was never acknowledged"
            try:
                response = await http.post(f"{self.bases[(first + attempt) % len(self.bases)]}{path}",
                                           json=body, headers=headers)
            except httpx.HTTPError:
                await asyncio.sleep(0.05)
                continue
            if response.status_code in (200, 201):
                return response
            await asyncio.sleep(0.05)
        raise AssertionError("unreachable")

    def stop(self) -> None:
        for process in self._processes:
            process.kill()
            process.wait()


class RecordingServer:
    """Answers every GET with `document` as JSON (after `delay` seconds) and records each path."""

    def __init__(self, document: Any = None) -> None:
        self.document: Any = document if document is not None else {"keys": []}
        self.body: bytes | None = None  # when set, sent as it is instead of the document
        self.status = 200
        self.headers: dict[str, str] = {}
        self.delay = 0.0  # before the answer
        self.drip = 0.0  # between the bytes of the body
        self.send_length = True
        self.paths: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.paths.append(self.path)
                time.sleep(owner.delay)
                body = owner.body if owner.body is not None else json.dumps(owner.document).encode()
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                if owner.send_length:
                    self.send_header("Content-Length", str(len(body)))
                for name, value in owner.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                with contextlib.suppress(ConnectionError):  # a client that gave up (too slow, too large)
                    chunk = 1 if owner.drip else max(len(body), 1)
                    for start in range(0, len(body), chunk):
                        self.wfile.write(body[start:start + chunk])
                        self.wfile.flush()
                        time.sleep(owner.drip)

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.url = f"{self.base_url}/v1/tickets/jwks.json"

    @property
    def requests(self) -> int:
        return len(self.paths)


@contextlib.contextmanager
def recording_server(document: Any = None) -> Iterator[RecordingServer]:
    server = RecordingServer(document)
    thread = threading.Thread(target=server.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
