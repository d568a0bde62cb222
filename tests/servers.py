"""Real `seenby serve` processes, started the way an operator starts them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from service.settings import Settings
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


async def wait_until_integrated(http: httpx.AsyncClient, base: str, expected: int,
                                within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while True:
        note = (await http.get(f"{base}/v1/log/checkpoint")).text
        if int(note.split("\n")[1]) >= expected:
            return
        assert time.monotonic() < deadline, f"log stuck at {note.split(chr(10))[1]} of {expected}"
        await asyncio.sleep(0.1)
