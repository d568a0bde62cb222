"""python -m bench.ingest_probe [--events N] [--single S] [--ledger L]: ingest alone, and who spent the CPU.

A minute-long look at one change, where the full benchmark takes ten: a throwaway durable
PostgreSQL, `seenby serve` in production mode, L entries recorded first (5,000: a warm-up), then
N events in 1,000-event batches from 4 clients, or with --single S, S seconds of single events
from wrk at 64 connections. Prints events/s, integration lag, and the CPU seconds that the
server processes, PostgreSQL and the rest of the machine used meanwhile (from /proc), plus the
statements PostgreSQL spent its time on (pg_stat_statements) with --statements."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import asyncpg
import typer

from bench.drive import integration_lag, loadgen, wait_integrated, wrk_single
from bench.harness import cpu_seconds, deployment, seenby_server

app = typer.Typer(add_completion=False)


async def top_statements(dsn: str, limit: int = 12) -> list[dict[str, object]]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT round(total_exec_time) AS ms, calls, rows,"
            " left(regexp_replace(query, '\\s+', ' ', 'g'), 100) AS query"
            " FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT $1", limit)
    finally:
        await connection.close()
    return [dict(row) for row in rows]


@app.command()
def main(
    events: Annotated[int, typer.Option(help="Events to send after the warm-up.")] = 100_000,
    workers: Annotated[int, typer.Option(help="seenby serve worker processes.")] = 2,
    statements: Annotated[bool, typer.Option(help="Load pg_stat_statements and list the top ones.")] = False,
    single: Annotated[int, typer.Option(help="Instead of batches: seconds of single events (wrk).")] = 0,
    ledger: Annotated[int, typer.Option(help="Entries recorded first (warm-up), in batches.")] = 5_000,
    customers: Annotated[int, typer.Option(help="Customers the batches spread over.")] = 2_000,
) -> None:
    options = "-c shared_preload_libraries=pg_stat_statements" if statements else ""
    with tempfile.TemporaryDirectory(prefix="seenby-probe-") as workdir, \
            deployment(Path(workdir), postgres_options=options) as dep:
        token = dep.token("service", "bench-probe")
        with seenby_server(dep, workers=workers) as (url, _):
            batch = ("batch", "--url", url, "--token", token, "--concurrency", "4",
                     "--customers", str(customers))
            loadgen(*batch, "--events", str(ledger))
            wait_integrated(dep.admin_dsn, ledger, timeout=600)
            if statements:
                asyncio.run(_reset_statements(dep.superuser_dsn))
            before, started = cpu_seconds(), time.perf_counter()
            if single:
                sent = wrk_single(url, token, single, 64)
                if sent is None:
                    raise typer.BadParameter("--single needs wrk (apt-get install wrk)")
                events = sent["requests"]
            else:
                sent = loadgen(*batch, "--events", str(events))
            wall, after = time.perf_counter() - started, cpu_seconds()
            wait_integrated(dep.admin_dsn, ledger + events, timeout=300)
            figures = {
                "events_per_second": sent["events_per_second"], "p99_ms": sent["p99_ms"],
                "wall_seconds": round(wall, 2), "cores": os.cpu_count(),
                "cpu_seconds": {k: round(after[k] - before.get(k, 0.0), 2) for k in after},
                "cpu_us_per_event": {k: round((after[k] - before.get(k, 0.0)) / events * 1e6, 1)
                                     for k in after},
                "integration_lag": integration_lag(dep.admin_dsn),
            }
            if statements:
                figures["statements"] = asyncio.run(top_statements(dep.superuser_dsn))
    typer.echo(json.dumps(figures, indent=2, default=str))


async def _reset_statements(dsn: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await connection.execute("SELECT pg_stat_statements_reset()")
    finally:
        await connection.close()


if __name__ == "__main__":
    sys.exit(app())
