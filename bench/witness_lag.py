"""python -m bench.witness_lag [--seconds S] [--rate R]: from commit to a served, cosigned checkpoint.

seenby in production mode on PostgreSQL, with three `seenby witness serve` processes on localhost and
a 2-of-3 policy, under a steady load of batches. A reader polls GET /v1/log/checkpoint every 10 ms and
notes when each tree size was first served; an entry's lag is that moment for the first served size
that holds it, less the entry's `recorded_at` (taken before its commit, so the figure is, if anything,
pessimistic). Every entry of the run counts. For comparison, the same lag to the first *signed*
checkpoint (from the database), which is what a log without witnesses would serve.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import httpx
import orjson
import typer

from bench.harness import Deployment, deployment, seenby_server
from bench.loadgen import event
from service.keys import load_keys, load_signing_key, new_key_pem
from service.ledger.checkpoint import COSIGNATURE_TYPE, raw_public_key, verifier_key
from tests.pg import free_port

app = typer.Typer(add_completion=False)
BATCH = 100


@contextlib.contextmanager
def witnesses(workdir: Path, log_vkey: str, count: int = 3) -> Iterator[list[tuple[str, str, int]]]:
    """`count` witness processes: (verifier key, URL, pid) each."""
    (workdir / "logs.txt").write_text(f"log {log_vkey}\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SEENBY_")}
    processes, running = [], []
    try:
        for n in range(1, count + 1):
            key_pem, port, name = new_key_pem(), free_port(), f"w{n}.bench.example/witness"
            (workdir / f"w{n}.pem").write_bytes(key_pem)
            log = (workdir / f"w{n}.log").open("w")
            process = subprocess.Popen(
                [sys.executable, "-m", "service.cli", "witness", "serve", "--name", name, "--logs",
                 str(workdir / "logs.txt"), "--key-file", str(workdir / f"w{n}.pem"), "--state",
                 str(workdir / f"w{n}.db"), "--port", str(port)],
                env=clean, stdout=log, stderr=subprocess.STDOUT)
            processes.append(process)
            url = f"http://127.0.0.1:{port}"
            _wait_for(url, process)
            vkey = verifier_key(name, raw_public_key(load_signing_key(key_pem)), COSIGNATURE_TYPE)
            running.append((vkey, url, process.pid))
        yield running
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=20)


def _wait_for(url: str, process: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/add-checkpoint", timeout=1).status_code == 405:
                return
        if process.poll() is not None:
            raise RuntimeError("a witness exited at start")
        time.sleep(0.1)
    raise RuntimeError(f"no witness at {url}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(url: str, token: str, seconds: float, rate: float
                ) -> tuple[list[tuple[float, int]], int, dict[str, float]]:
    """Send batches at `rate` events/s for `seconds` while polling the served checkpoint; then poll
    until everything sent is served. Returns the first time each size was served, the events sent,
    and the mean exchange with each witness."""
    served: list[tuple[float, int]] = []
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    customers = [f"cust-{uuid.uuid4().hex[:10]}" for _ in range(2000)]
    sent, failures, done = 0, 0, asyncio.Event()

    async with httpx.AsyncClient(base_url=url, timeout=60) as client, \
            httpx.AsyncClient(base_url=url, timeout=10) as reader:
        async def poll() -> None:
            last = -1
            while not done.is_set():
                try:
                    response = await reader.get("/v1/log/checkpoint")
                except httpx.TransportError as exc:
                    print(f"reader: {exc!r}", file=sys.stderr)
                    await asyncio.sleep(0.01)
                    continue
                if response.status_code == 200:
                    size = int(response.text.split("\n")[1])
                    if size > last:
                        served.append((time.time(), size))
                        last = size
                await asyncio.sleep(0.01)

        async def send(body: bytes) -> None:
            nonlocal failures
            response = await client.post("/v1/accesses:batch", content=body, headers=headers)
            if response.status_code != 201:
                failures += 1
                if failures == 1:
                    print(f"batch refused: {response.status_code} {response.text[:300]}", file=sys.stderr)

        poller = asyncio.create_task(poll())
        interval, started, pending = BATCH / rate, time.monotonic(), set()
        batches = int(seconds * rate / BATCH)
        for n in range(batches):
            await asyncio.sleep(max(0.0, started + n * interval - time.monotonic()))
            body = orjson.dumps({"events": [event(customers[(n * BATCH + i) % len(customers)], n * BATCH + i)
                                            for i in range(BATCH)]})
            task = asyncio.create_task(send(body))
            pending.add(task)
            task.add_done_callback(pending.discard)
            sent += BATCH
        await asyncio.gather(*pending)
        if failures:
            raise RuntimeError(f"{failures} batches failed")
        await asyncio.sleep(5)  # the last entries integrated and cosigned
        done.set()
        await poller
        metrics = (await reader.get("/metrics")).text
    return served, sent, exchange_seconds(metrics)


def exchange_seconds(metrics: str) -> dict[str, float]:
    """The mean time of one exchange with each witness, from seenby's own histogram."""
    totals: dict[str, dict[str, float]] = {}
    for line in metrics.splitlines():
        for part in ("sum", "count"):
            prefix = f"seenby_witness_request_seconds_{part}{{witness=\""
            if line.startswith(prefix):
                name, value = line[len(prefix):].split('"', 1)[0], float(line.rsplit(" ", 1)[1])
                totals.setdefault(name, {})[part] = value
    return {name: round(t["sum"] / t["count"], 4) for name, t in sorted(totals.items()) if t.get("count")}


async def entry_times(dsn: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(log index, recorded_at_us) of every entry; (tree size, signed_at_us) of every checkpoint."""
    connection = await asyncpg.connect(dsn)
    try:
        entries = await connection.fetch("SELECT l.log_index, e.recorded_at_us FROM log_leaves l"
                                         " JOIN ledger_entries e ON e.id = l.entry_id")
        checkpoints = await connection.fetch("SELECT tree_size, signed_at_us FROM checkpoints"
                                             " ORDER BY tree_size")
    finally:
        await connection.close()
    return [(r[0], r[1]) for r in entries], [(r[0], r[1]) for r in checkpoints]


def lags(entries: list[tuple[int, int]], covering: list[tuple[float, int]]) -> dict[str, float]:
    """Each entry's wait (s) for the first of `covering` (time in s, size), in size order, holding it."""
    sizes = [size for _, size in covering]
    waits = []
    for log_index, recorded_at_us in entries:
        at = bisect.bisect_right(sizes, log_index)
        if at == len(sizes):
            raise RuntimeError(f"entry {log_index} was never covered")
        waits.append(covering[at][0] - recorded_at_us / 1e6)
    waits.sort()

    def q(p: float) -> float:
        return round(waits[min(len(waits) - 1, int(p * len(waits)))], 3)

    return {"entries": len(waits), "p50_s": q(0.5), "p99_s": q(0.99), "max_s": round(waits[-1], 3)}


@app.command()
def main(
    seconds: Annotated[float, typer.Option(help="How long the load runs.")] = 60,
    rate: Annotated[float, typer.Option(help="Events a second, in batches of 100.")] = 5000,
) -> None:
    with tempfile.TemporaryDirectory(prefix="seenby-witness-lag-") as folder:
        workdir = Path(folder)
        with deployment(workdir) as plain:
            log_key = load_keys(plain.settings).signing_key
            log_vkey = verifier_key(plain.settings.log_origin, raw_public_key(log_key))
            with witnesses(workdir, log_vkey) as running:
                policy = workdir / "policy.txt"
                lines = [f"witness W{n} {vkey} {url}\n" for n, (vkey, url, _) in enumerate(running, 1)]
                policy.write_text("".join(lines) + "group two-of-three 2 W1 W2 W3\nquorum two-of-three\n")
                witnessed: Deployment = dataclasses.replace(
                    plain, env={**plain.env, "SEENBY_WITNESS_POLICY_FILE": str(policy)})
                with seenby_server(witnessed) as (url, _):
                    token = witnessed.token("service", "bench-loader")
                    served, sent, exchanges = asyncio.run(drive(url, token, seconds, rate))
                witness_cpu = [round(cpu_seconds(pid), 2) for _, _, pid in running]
            entries, checkpoints = asyncio.run(entry_times(plain.superuser_dsn))
    result: dict[str, Any] = {
        "events_sent": sent, "rate_per_s": rate, "seconds": seconds,
        "cosigned_and_served": lags(entries, served),
        "signed": lags(entries, [(at_us / 1e6, size) for size, at_us in checkpoints]),
        "served_sizes": len(served), "witness_cpu_s": witness_cpu, "exchange_mean_s": exchanges,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    app()
