"""A production-like deployment for the benchmark: throwaway PostgreSQL, real keys and tokens."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

from service.auth import mint_token
from service.keys import load_keys, new_key_pem
from service.migrate import upgrade
from service.settings import Settings
from tests.pg import ThrowawayPostgres, free_port


@dataclass
class Deployment:
    settings: Settings
    env: dict[str, str]
    admin_dsn: str  # the tables' owner
    superuser_dsn: str
    workdir: Path
    postgres: ThrowawayPostgres

    def token(self, role: str, subject: str) -> str:
        return mint_token(self.settings, load_keys(self.settings), role=role, subject=subject,
                          ttl_seconds=6 * 3600)


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _create_roles(admin_url: str) -> tuple[str, str]:
    connection = await asyncpg.connect(_dsn(admin_url))
    try:
        await connection.execute("CREATE ROLE seenby_owner LOGIN; CREATE ROLE seenby_app LOGIN")
        await connection.execute("CREATE DATABASE seenby OWNER seenby_owner")
    finally:
        await connection.close()
    base = admin_url.rsplit("/", 1)[0]
    connection = await asyncpg.connect(_dsn(base + "/seenby"))
    try:
        await connection.execute("GRANT USAGE ON SCHEMA public TO seenby_app")
    finally:
        await connection.close()
    host = base.split("@", 1)[1]
    return f"postgresql+asyncpg://seenby_owner@{host}/seenby", f"postgresql+asyncpg://seenby_app@{host}/seenby"


# A new cluster creates each 16 MB WAL segment by writing zeros to it, and every commit waits
# meanwhile; one that has run a while recycles the segments its checkpoints freed instead. At
# 2,700 single events/s a segment fills every 2.6 s, and each switch held ~60 requests (2 %) for
# 60-75 ms, enough to put p99 there instead of near 40 ms (python -m bench.ingest_probe --single 15
# --ledger 500000, one run traced request by request; with this setting, one traced run had no
# request over 60 ms). Skipping the zeroing approximates a cluster that recycles its segments: the
# benchmark measures that steady state. (PostgreSQL offers the setting for copy-on-write file
# systems; production clusters keep the default.) WAL is still flushed at every commit.
STEADY_STATE_OPTIONS = "-c wal_init_zero=off"


@contextlib.contextmanager
def deployment(workdir: Path, *, postgres_options: str = "") -> Iterator[Deployment]:
    """PostgreSQL with an owner and an app role, migrated as in production; SEENBY_ENV=production."""
    server = ThrowawayPostgres(durable=True, options=f"{STEADY_STATE_OPTIONS} {postgres_options}")
    try:
        admin = server.start()
        owner_url, app_url = asyncio.run(_create_roles(admin))
        key_file, ticket_key_file = workdir / "log-signing-key.pem", workdir / "ticket-key.pem"
        key_file.write_bytes(new_key_pem())
        ticket_key_file.write_bytes(new_key_pem())
        env = {
            "SEENBY_ENV": "production",
            "SEENBY_DATABASE_URL": app_url,
            "SEENBY_MIGRATION_DATABASE_URL": owner_url,
            "SEENBY_DATA_DIR": str(workdir / "data"),
            "SEENBY_JWT_ISSUER": "https://id.bench.example",
            "SEENBY_JWT_SECRET": secrets.token_hex(32),
            "SEENBY_PSEUDONYM_SECRET": secrets.token_hex(32),
            "SEENBY_SIGNING_KEY_FILE": str(key_file),
            "SEENBY_TICKET_KEY_FILE": str(ticket_key_file),
            "SEENBY_LOG_ORIGIN": "bench.seenby.example/log",
            "SEENBY_DELETION_SERVICES": "clip-store",
            # One load generator speaks for a whole fleet: measure the service, not its limiter.
            "SEENBY_RATE_LIMIT_PER_SECOND": "0",
        }
        settings = Settings(_env_file=None, **{k.removeprefix("SEENBY_").lower(): v  # type: ignore[arg-type]
                                               for k, v in env.items()})
        upgrade(settings)
        yield Deployment(settings, env, _dsn(owner_url), _dsn(server.url("seenby")), workdir, server)
    finally:
        server.stop()


@contextlib.contextmanager
def seenby_server(deployment: Deployment, *, workers: int = 1,
                  env: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """`seenby serve` on the deployment (with `env` on top of its settings), until it is ready."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SEENBY_")}
    log = (deployment.workdir / f"serve-{port}.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--workers", str(workers)],
        env={**clean, **deployment.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            if process.poll() is not None:
                raise RuntimeError(f"seenby serve exited; see {log.name}")
            time.sleep(0.1)
        yield url, process
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def rss_kib(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) in KiB of the process serving requests: with several workers, of the
    largest worker (uvicorn's supervisor only watches them), from /proc."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    figures = [_rss(int(child)) for child in children] or [_rss(pid)]
    return max(figures)


def _rss(pid: int) -> tuple[int, int]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def cpu_seconds() -> dict[str, float]:
    """CPU seconds so far: the machine (busy, all) and the live processes by kind."""
    ticks = os.sysconf("SC_CLK_TCK")
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]
    totals = {"machine_busy": (sum(map(int, fields)) - int(fields[3]) - int(fields[4])) / ticks}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        name, rest = stat.rsplit(")", 1)
        kind = ("postgres" if "postgres" in name else
                "server" if b"service.cli" in command or b"multiprocessing" in command else None)
        if kind:
            # Own CPU plus that of reaped children: backends and autovacuum workers that came and
            # went are counted in the postmaster, uvicorn's workers in their supervisor.
            used = sum(int(field) for field in rest.split()[11:15])
            totals[kind] = totals.get(kind, 0.0) + used / ticks
    return totals
