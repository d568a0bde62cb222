"""Driving a deployment under test: the load generator and wrk, the log's size and lag from the
database, the machine a run was on."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.harness import Deployment

ROOT = Path(__file__).resolve().parents[1]

def loadgen(*args: str) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-m", "bench.loadgen", *args], capture_output=True, text=True,
                            cwd=ROOT, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"load generator failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def checkpoint_size(url: str) -> int:
    return int(httpx.get(f"{url}/v1/log/checkpoint", timeout=10).text.split("\n")[1])


_LAG_QUERY = """
SELECT percentile_disc(ARRAY[0.5, 0.99, 1.0]) WITHIN GROUP (ORDER BY lag_us)
FROM (
    SELECT (SELECT c.signed_at_us FROM checkpoints c WHERE c.tree_size > l.log_index
            ORDER BY c.tree_size LIMIT 1) - e.recorded_at_us AS lag_us
    FROM log_leaves l JOIN ledger_entries e ON e.id = l.entry_id
) AS lags
"""


def integration_lag(dsn: str) -> dict[str, float]:
    """Every entry's wait from its commit to the first signed checkpoint covering it, from the
    database itself: exact over all entries, and whichever worker process did the integrating."""
    p50, p99, worst = fetchval(dsn, _LAG_QUERY)
    return {"p50_s": round(p50 / 1e6, 3), "p99_s": round(p99 / 1e6, 3), "max_s": round(worst / 1e6, 3)}


POSTGRES_SETTINGS = ("server_version", "shared_buffers", "max_wal_size", "fsync", "synchronous_commit",
                     "full_page_writes", "wal_init_zero")


def postgres_settings(dsn: str) -> dict[str, str]:
    """The server settings that decide write speed, as the run had them."""
    async def query() -> dict[str, str]:
        connection = await asyncpg.connect(dsn)
        try:
            return {name: await connection.fetchval(f"SHOW {name}") for name in POSTGRES_SETTINGS}
        finally:
            await connection.close()

    return asyncio.run(query())


def fetchval(dsn: str, query: str) -> Any:
    async def fetch() -> Any:
        connection = await asyncpg.connect(dsn)
        try:
            return await connection.fetchval(query)
        finally:
            await connection.close()

    return asyncio.run(fetch())


def entries_in_log(dsn: str) -> int:
    """Entries the log holds (its size less the customer index's leaves), from the database."""
    return int(fetchval(dsn, "SELECT count(*) FROM log_leaves"))


def entries_waiting(dsn: str) -> int:
    return int(fetchval(dsn, "SELECT count(*) FROM integration_queue"))


def wait_integrated(dsn: str, expected: int, timeout: float) -> float:
    """Seconds until the log holds `expected` entries."""
    started = time.perf_counter()
    while (integrated := entries_in_log(dsn)) < expected:
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"log stuck at {integrated} of {expected} entries")
        time.sleep(0.1)
    return time.perf_counter() - started


def wrk_single(url: str, token: str, seconds: int, connections: int, audience: str | None = None
               ) -> dict[str, Any] | None:
    """One event a POST from wrk: recorded, or (with an audience) asked a ticket for."""
    if not shutil.which("wrk"):
        return None
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(ROOT / "bench/single.lua"),
         url, "--", token, *([audience] if audience else [])],
        capture_output=True, text=True, check=True).stdout

    parsed = _wrk_figures(out)
    return {"tool": "wrk", "connections": connections, "events_per_second": parsed["rate"],
            "requests": parsed["requests"], "p50_ms": parsed["p50"], "p95_ms": None, "p99_ms": parsed["p99"],
            "non_2xx": parsed["non_2xx"]}


def wrk_get(
    url: str, template: str, bound: int, token: str, *, seconds: int, connections: int
) -> dict[str, Any] | None:
    """GETs from wrk (C, so the generator's own latency stays out of the figures)."""
    if not shutil.which("wrk"):
        return None
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(ROOT / "bench/get.lua"),
         url, "--", template, str(bound), token], capture_output=True, text=True, check=True).stdout
    parsed = _wrk_figures(out)
    return {"tool": "wrk", "connections": connections, "per_second": parsed["rate"],
            "requests": parsed["requests"], "failures": parsed["non_2xx"], "p50_ms": parsed["p50"],
            "p95_ms": None, "p99_ms": parsed["p99"]}


def log_readers(history: str, deep_cursor: str, regulator: str, size: int) -> dict[str, tuple[str, str, int]]:
    """The reads the runs time from wrk: a customer's history pages (as `regulator`) and proofs in a
    tree of `size` leaves; name -> (path template, token, bound of its "%d")."""
    return {
        "history_first_page": (f"{history}?limit=50", regulator, size),
        "history_deep_page": (f"{history}?limit=50&cursor={deep_cursor}", regulator, size),
        "inclusion_proof": (f"/v1/log/proof/inclusion?log_index=%d&tree_size={size}", "", size),
        "consistency_proof": (f"/v1/log/proof/consistency?first=%d&second={size}", "", size),
    }


def wrk_one_at_a_time(url: str, readers: dict[str, tuple[str, str, int]]) -> dict[str, Any]:
    """Each read from wrk on one connection for 10 s: the server's latency, which the goals name,
    without a Python client's own time or its queueing on two cores. `<name>_wrk` -> its figures;
    nothing without wrk."""
    figures = {f"{name}_wrk": wrk_get(url, template, bound, token, seconds=10, connections=1)
               for name, (template, token, bound) in readers.items()}
    return {name: read for name, read in figures.items() if read is not None}


def _wrk_figures(out: str) -> dict[str, Any]:
    def ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()  # type: ignore[union-attr]
        return round(float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit], 2)

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "p50": ms("50"), "p99": ms("99"),
    }


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True, check=False).stdout.strip()
    return {"cores": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "commit": commit or "unknown", "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}


def completeness_latency(dep: Deployment, url: str, regulator: str, requests: int) -> dict[str, Any]:
    """Completeness proofs for customers drawn at random, two at a time, and the index's size."""
    sample = fetchval(dep.admin_dsn, f"SELECT array_agg(customer_id) FROM (SELECT customer_id FROM "
                                      f"customer_heads ORDER BY random() LIMIT {requests}) AS sampled")
    proofs = loadgen("get", "--url", url, "--token", regulator, "--concurrency", "2",
                     "--paths", *(f"/v1/customers/{c}/completeness" for c in sample))
    customers = int(fetchval(dep.admin_dsn, "SELECT count(*) FROM customer_heads"))
    index_bytes = fetchval(dep.admin_dsn, "SELECT pg_total_relation_size('customer_index_nodes')")
    return {"completeness_proof": proofs, "customers": customers,
            "customer_index_bytes_per_customer": round(index_bytes / customers, 1)}
