"""python -m bench [--scale S] [--smoke] [--only notices]: seenby against the physical limit, one run,
one table."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from bench import baselines
from bench.drive import (
    ROOT,
    checkpoint_size,
    completeness_latency,
    entries_in_log,
    entries_waiting,
    fetchval,
    integration_lag,
    loadgen,
    log_readers,
    machine,
    postgres_settings,
    wait_integrated,
    wrk_get,
    wrk_one_at_a_time,
    wrk_single,
)
from bench.harness import STEADY_STATE_OPTIONS, Deployment, cpu_seconds, deployment, rss_kib, seenby_server
from bench.scale import disk_use, scale_run
from bench.scale import markdown as scale_markdown
from service.paging import encode_cursor
from tests.pg import ThrowawayPostgres, free_port

app = typer.Typer(add_completion=False)

def completeness_alone(dep: Deployment, scale: float, workers: int, requests: int,
                       profile: Path | None) -> dict[str, Any]:
    """The completeness scenario of a full run on its own: a ledger of 1M entries (at scale 1) over
    100,000 customers, then the proofs (profiled with py-spy when `profile` names a file)."""
    events = max(2_000, int(1_000_000 * scale))
    customers = max(1_000, int(100_000 * scale))
    with seenby_server(dep, workers=workers) as (url, server):
        loadgen("batch", "--url", url, "--token", dep.token("service", "bench-ingest"),
                "--events", str(events), "--batch", "1000", "--concurrency", "4",
                "--customers", str(customers))
        wait_integrated(dep.admin_dsn, events, timeout=600)
        time.sleep(1)  # the last index leaf, and a checkpoint over it
        with py_spy(server.pid, profile, seconds=10):
            return completeness_latency(dep, url, dep.token("regulator", "bench-regulator"), requests)


@contextlib.contextmanager
def py_spy(pid: int, profile: Path | None, *, seconds: int) -> Iterator[None]:
    """A speedscope profile of the server and its workers for the first `seconds` of the block."""
    executable = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if profile is None or executable is None:
        yield
        return
    spy = subprocess.Popen([executable, "record", "-o", str(profile), "-p", str(pid), "-d", str(seconds),
                            "-r", "50", "-f", "speedscope", "--subprocesses"])
    try:
        yield
    finally:
        spy.wait()


def run_all(dep: Deployment, scale: float, smoke: bool, profile: Path | None, workers: int) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine(), "scale": scale, "smoke": smoke, "workers": workers,
                               "postgres": postgres_settings(dep.admin_dsn)}
    service_token = dep.token("service", "bench-ingest")
    regulator = dep.token("regulator", "bench-regulator")
    batch_events = max(2_000, int(500_000 * scale))
    total_target = max(batch_events + 1_000, int(1_000_000 * scale))
    hot_events = min(10_000, batch_events // 4)

    results["baselines"] = baselines.run(dep.admin_dsn, copy_rows=max(2_000, int(200_000 * scale)),
                                         naive_rows=max(200, int(3_000 * scale)))
    with seenby_server(dep, workers=workers) as (url, server):
        results["memory_kib"] = {"start": rss_kib(server.pid)[0]}
        with py_spy(server.pid, profile, seconds=30):
            batch = loadgen("batch", "--url", url, "--token", service_token, "--events", str(batch_events),
                            "--batch", "1000", "--concurrency", "4", "--hot", "cust-hot",
                            "--hot-events", str(hot_events))
            waiting = batch_events - entries_in_log(dep.admin_dsn)
            drain = wait_integrated(dep.admin_dsn, batch_events, timeout=300)
        lag = integration_lag(dep.admin_dsn)
        batch.update({"waiting_at_end": max(0, waiting), "drain_seconds": round(drain, 2),
                      "integration_lag_p50_s": lag["p50_s"], "integration_lag_p99_s": lag["p99_s"],
                      "integration_lag_max_s": lag["max_s"]})
        results["batch_ingest"] = batch
        results["memory_kib"]["after_batch"] = rss_kib(server.pid)[0]

        single_seconds = 3 if smoke else 20
        single = wrk_single(url, service_token, single_seconds, 64)
        if single is None or smoke:
            single = loadgen("single", "--url", url, "--token", service_token,
                             "--events", str(300 if smoke else 20_000), "--concurrency", "64")
            single["tool"] = "python loadgen"
        results["single_ingest"] = single
        # Access tickets: the same recording, then an EdDSA signature, all before the answer.
        tickets = wrk_single(url, service_token, single_seconds, 64, audience="clip-store-bench")
        if tickets is not None:
            tickets["tickets_per_second"] = tickets.pop("events_per_second")
            results["tickets"] = tickets
        recorded = entries_in_log(dep.admin_dsn) + entries_waiting(dep.admin_dsn)

        top_up = total_target - batch_events
        if top_up > 0:
            customers = max(1_000, int(100_000 * scale))
            loadgen("batch", "--url", url, "--token", service_token, "--events", str(top_up),
                    "--batch", "1000", "--concurrency", "4", "--customers", str(customers))
        wait_integrated(dep.admin_dsn, recorded + top_up, timeout=600)
        results["ledger_size"] = size = checkpoint_size(url)  # leaves: entries and index leaves
        results["memory_kib"]["after_all"] = rss_kib(server.pid)[0]
        results["disk"] = disk_use(dep.admin_dsn)

        requests = 200 if smoke else 3_000
        base = "/v1/customers/cust-hot/accesses"
        deep_cursor = encode_cursor(max(1, hot_events // 10))
        if not smoke:
            results.update(wrk_one_at_a_time(url, log_readers(base, deep_cursor, regulator, size)))
        reader = ("--url", url, "--token", regulator, "--concurrency", "2")
        results["history_first_page"] = loadgen("get", *reader, "--paths", f"{base}?limit=50",
                                                "--repeat", str(requests))
        results["history_deep_page"] = loadgen("get", *reader, "--paths",
                                               f"{base}?limit=50&cursor={deep_cursor}",
                                               "--repeat", str(requests))
        rng = random.Random(7)
        inclusion = [f"/v1/log/proof/inclusion?log_index={rng.randrange(size)}&tree_size={size}"
                     for _ in range(requests)]
        consistency = [f"/v1/log/proof/consistency?first={rng.randrange(1, size)}&second={size}"
                       for _ in range(requests)]
        results["inclusion_proof"] = loadgen("get", "--url", url, "--concurrency", "2", "--paths", *inclusion)
        results.update(completeness_latency(dep, url, regulator, requests))
        results["consistency_proof"] = loadgen("get", "--url", url, "--concurrency", "2", "--paths",
                                               *consistency)
        results["memory_kib"]["end"], results["memory_kib"]["peak"] = rss_kib(server.pid)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SEENBY_")}
    started = time.perf_counter()
    audit = subprocess.run([sys.executable, "-m", "service.cli", "audit"], env={**clean, **dep.env},
                           capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    results["audit"] = {"entries": size, "seconds": round(seconds, 2), "passed": audit.returncode == 0,
                        "entries_per_second": round(size / seconds, 1)}
    results["notices"] = notices_overhead(dep, service_token, workers, rounds=1 if smoke else 2,
                                          events=max(2_000, int(100_000 * scale)))
    return results


def notices_overhead(dep: Deployment, token: str, workers: int, *, events: int,
                     rounds: int) -> dict[str, Any]:
    """Batch ingest with notices on, sent to a receiver that is down (every delivery refused), side
    by side with the same ingest without notices: runs in the order A B B A, each on a server of
    its own, on the same database."""
    dead_receiver = {"SEENBY_WEBHOOK_URL": f"http://127.0.0.1:{free_port()}/hooks/seenby",
                     "SEENBY_WEBHOOK_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()}
    runs: dict[str, list[float]] = {"without": [], "dead_receiver": []}
    # CPU an event as well as throughput: the machine's speed drifts by more than the margin
    # between runs, while the work an event costs does not.
    cpu: dict[str, list[float]] = {"without": [], "dead_receiver": []}
    for _ in range(rounds):
        for name in ("without", "dead_receiver", "dead_receiver", "without"):
            env = dead_receiver if name == "dead_receiver" else None
            with seenby_server(dep, workers=workers, env=env) as (url, _):
                before = cpu_seconds()
                batch = loadgen("batch", "--url", url, "--token", token, "--events", str(events),
                                "--batch", "1000", "--concurrency", "4")
                after = cpu_seconds()
            runs[name].append(batch["events_per_second"])
            used = sum(after[k] - before.get(k, 0.0) for k in ("server", "postgres"))
            cpu[name].append(used / events * 1e6)
    unpacked = int(fetchval(dep.admin_dsn, "SELECT count(*) FROM notices"))
    packed = int(fetchval(dep.admin_dsn, "SELECT coalesce(sum(notices), 0) FROM notice_batches"))
    mean = {name: sum(values) / len(values) for name, values in runs.items()}
    cpu_mean = {name: sum(values) / len(values) for name, values in cpu.items()}
    return {"events_per_run": events, "runs_per_second": runs,
            "cpu_us_per_event": {name: [round(v, 1) for v in values] for name, values in cpu.items()},
            "cpu_ratio": round(cpu_mean["without"] / cpu_mean["dead_receiver"], 4),
            "without_per_second": round(mean["without"], 1),
            "dead_receiver_per_second": round(mean["dead_receiver"], 1),
            "ratio": round(mean["dead_receiver"] / mean["without"], 4),
            "notices_written": unpacked + packed, "notices_unpacked": unpacked}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def markdown(results: dict[str, Any]) -> str:
    m, b, s = results["machine"], results["batch_ingest"], results["single_ingest"]
    disk = results["disk"]
    copy = results["baselines"]["copy"]["events_per_second"]
    copy_indexed = results["baselines"]["copy_indexed"]["events_per_second"]
    naive = results["baselines"]["naive"]["events_per_second"]

    def lat(r: dict[str, Any]) -> str:
        return " / ".join("-" if r.get(k) is None else f"{r[k]}" for k in ("p50_ms", "p95_ms", "p99_ms"))

    rows = [
        ("Batch ingest (1,000/batch, 4 clients)", f"{b['events_per_second']:,.0f} events/s", lat(b),
         f"{b['events_per_second'] / copy:.2f}x COPY, {b['events_per_second'] / copy_indexed:.2f}x indexed "
         f"COPY, {b['events_per_second'] / naive:.1f}x naive; "
         f"integration lag p50 {b['integration_lag_p50_s']} s, p99 {b['integration_lag_p99_s']} s; "
         f"{b['waiting_at_end']:,} waiting at end"),
        ("  raw COPY, same rows, same PostgreSQL", f"{copy:,.0f} rows/s", "",
         "the physical limit: best of " + " / ".join(
             f"{r:,.0f}" for r in results["baselines"]["copy"]["runs_per_second"])),
        ("  raw COPY, same rows, into a table with the entry table's indexes", f"{copy_indexed:,.0f} rows/s",
         "", "the rows as seenby stores them, with its indexes: best of " + " / ".join(
             f"{r:,.0f}" for r in results["baselines"]["copy_indexed"]["runs_per_second"])),
        ("  naive ORM INSERT + COMMIT per event", f"{naive:,.0f} rows/s", "", "the baseline"),
        (f"Single-event ingest ({s.get('connections', 64)} conns, {s['tool']})",
         f"{s['events_per_second']:,.0f} events/s", lat(s), ""),
        *(
            (f"Access tickets ({t['connections']} conns, wrk)", f"{t['tickets_per_second']:,.0f} tickets/s",
             lat(t), f"{t['non_2xx']} not 2xx")
            for t in [results["tickets"]] if results.get("tickets")
        ),
        ("History, first page (10k-entry customer)",
         f"{results['history_first_page']['per_second']:,.0f} req/s",
         lat(results["history_first_page"]), f"ledger of {results['ledger_size']:,} entries"),
        ("History, deep page", f"{results['history_deep_page']['per_second']:,.0f} req/s",
         lat(results["history_deep_page"]), ""),
        ("Inclusion proof", f"{results['inclusion_proof']['per_second']:,.0f} req/s",
         lat(results["inclusion_proof"]), f"tree of {results['ledger_size']:,} leaves"),
        ("Consistency proof", f"{results['consistency_proof']['per_second']:,.0f} req/s",
         lat(results["consistency_proof"]), ""),
        ("Completeness proof", f"{results['completeness_proof']['per_second']:,.0f} req/s",
         lat(results["completeness_proof"]), f"customer index of {results['customers']:,} customers, "
         f"{results['customer_index_bytes_per_customer']:,.0f} bytes each on disk"),
        *(
            (f"  {label}, one client at a time (wrk)", f"{results[key]['per_second']:,.0f} req/s",
             lat(results[key]), "latency without queueing or a Python client")
            for key, label in (("history_first_page_wrk", "History, first page"),
                               ("history_deep_page_wrk", "History, deep page"),
                               ("inclusion_proof_wrk", "Inclusion proof"),
                               ("consistency_proof_wrk", "Consistency proof"))
            if results.get(key)
        ),
        ("seenby audit", f"{results['audit']['entries_per_second']:,.0f} entries/s", "",
         "passed" if results["audit"]["passed"] else "FAILED"),
        *(
            (f"Batch ingest, notices to a dead receiver ({n['events_per_run']:,}/run)",
             f"{n['dead_receiver_per_second']:,.0f} events/s", "",
             f"{n['ratio']:.3f}x the same without notices ({n['without_per_second']:,.0f} events/s); runs "
             + ", ".join(f"{a:,.0f}/{b:,.0f}" for a, b in zip(
                 n["runs_per_second"]["without"], n["runs_per_second"]["dead_receiver"], strict=True))
             + f"; server and PostgreSQL CPU an event {_mean(n['cpu_us_per_event']['without']):.1f} µs "
               f"without, {_mean(n['cpu_us_per_event']['dead_receiver']):.1f} µs with ({n['cpu_ratio']:.3f}x)"
             + f"; {n['notices_written']:,} notices kept, {n.get('notices_unpacked', 0):,} of them unpacked")
            for n in [results["notices"]] if results.get("notices")
        ),
    ]
    mem = results["memory_kib"]
    lines = [
        f"Machine: {m['cores']} cores, {m['cpu']}; Python {m['python']}; commit {m['commit']}; {m['date']}; "
        f"scale {results['scale']}",
        "PostgreSQL: " + ", ".join(f"{k} {v}" for k, v in results["postgres"].items()),
        "",
        "| scenario | throughput | latency p50 / p95 / p99 (ms) | notes |",
        "| --- | --- | --- | --- |",
        *(f"| {a} | {t} | {lt} | {n} |" for a, t, lt, n in rows),
        "",
        f"Server RSS (MiB): start {mem['start'] / 1024:.0f}, "
        f"after batch ingest {mem['after_batch'] / 1024:.0f}, "
        f"after {results['ledger_size']:,} entries {mem['after_all'] / 1024:.0f}, "
        f"end {mem['end'] / 1024:.0f}, "
        f"peak {mem['peak'] / 1024:.0f}.",
        "",
        f"Disk: {disk['tables_over_canonical']}x the entries' canonical bytes in the tables "
        f"({disk['canonical_bytes_per_entry']:,.0f} bytes an entry, stored packed in "
        f"{disk['stored_canonical_bytes_per_entry']:,.0f}); by table, bytes an entry: "
        + ", ".join(f"{table} {size:,.0f}" for table, size in disk["bytes_per_entry"].items() if size >= 1)
        + ".",
    ]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def standby_of(dep: Deployment) -> Iterator[str]:
    """A hot standby of the deployment's PostgreSQL (`pg_basebackup -R`), as the app role's URL."""
    standby = ThrowawayPostgres(durable=True, options=STEADY_STATE_OPTIONS)
    try:
        standby.start_standby_of(dep.postgres)
        yield dep.env["SEENBY_DATABASE_URL"].replace(f":{dep.postgres.port}/", f":{standby.port}/")
    finally:
        standby.stop()


def standby_reads(dep: Deployment, scale: float, workers: int, seconds: int = 8) -> dict[str, Any]:
    """History pages and inclusion proofs (wrk, 2 connections) from a server reading its primary
    alone, and from one reading a hot standby of it, in the order A B B A on the same ledger."""
    events, hot = max(2_000, int(200_000 * scale)), max(100, int(10_000 * scale))
    service, regulator = dep.token("service", "bench-ingest"), dep.token("regulator", "bench-regulator")
    with seenby_server(dep, workers=workers) as (url, _):
        loadgen("batch", "--url", url, "--token", service, "--events", str(events), "--batch", "1000",
                "--concurrency", "4", "--hot", "cust-hot", "--hot-events", str(hot))
        wait_integrated(dep.admin_dsn, events, timeout=600)
        time.sleep(1)
        size = checkpoint_size(url)
    reads = {"history_first_page": ("/v1/customers/cust-hot/accesses?limit=50", regulator),
             "inclusion_proof": (f"/v1/log/proof/inclusion?log_index=%d&tree_size={size}", "")}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {"primary_alone": {}, "standby": {}}
    with standby_of(dep) as read_url:
        for name in ("primary_alone", "standby", "standby", "primary_alone"):
            env = {"SEENBY_READ_DATABASE_URL": read_url} if name == "standby" else None
            with seenby_server(dep, workers=workers, env=env) as (url, _):
                if env:  # caught up before it reads: /readyz says so
                    while httpx.get(f"{url}/readyz", timeout=10).json()["read_database"]["lag_seconds"] > 0.5:
                        time.sleep(0.2)
                for read, (template, token) in reads.items():
                    figures = wrk_get(url, template, size, token, seconds=seconds, connections=2)
                    if figures is None:
                        raise RuntimeError("the standby scenario needs wrk (apt-get install wrk)")
                    runs[name].setdefault(read, []).append(figures)
    def mean_rate(figures: list[dict[str, Any]]) -> float:
        return round(sum(f["per_second"] for f in figures) / len(figures), 1)

    return {"entries": size, "runs": runs, **{
        f"{read}_per_second": {name: mean_rate(by_read[read]) for name, by_read in runs.items()}
        for read in reads}}


def _write_alone(out: Path, scenario: str, results: dict[str, Any], *, shown: dict[str, Any]) -> None:
    """A scenario run alone: its JSON (to bench/out/<scenario>.json unless --out says otherwise), and
    `shown` printed."""
    if out == ROOT / "bench" / "out" / "results.json":
        out = out.with_name(f"{scenario}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    typer.echo(json.dumps(shown, indent=2))


@app.command()
def main(
    scale: Annotated[float, typer.Option(help="1.0: 500k batch events, 1M-entry ledger.")] = 1.0,
    smoke: Annotated[bool, typer.Option(help="A tiny run (well under a minute) for CI.")] = False,
    out: Annotated[Path, typer.Option(help="Where to write the JSON with every figure.")] =
    ROOT / "bench" / "out" / "results.json",
    profile: Annotated[Path | None, typer.Option(
        help="py-spy profile of the server during ingest (with --only completeness: during the proofs)."
    )] = None,
    workers: Annotated[int, typer.Option(help="seenby serve worker processes (one per core).")] = 2,
    only: Annotated[str | None, typer.Option(
        help="Run one scenario alone, on a fresh database: `notices` (batch ingest with notices to a "
             "dead receiver, side by side with none; --scale sets the events of a run, --rounds the "
             "A B B A rounds) or `completeness` (proofs at 1M entries over 100,000 customers at "
             "scale 1) or `standby` (reads from a hot standby against the primary alone, A B B A, "
             "over 200,000 entries at scale 1) or `scale` (a ledger of 1M entries over 10,000 "
             "customers at scale 1, loaded in tenths; then reads, proofs, tiles, export, verify "
             "and audit at full size: --scale 10 is the ten-million-entry run).")] = None,
    rounds: Annotated[int, typer.Option(help="With --only notices: A B B A rounds.")] = 2,
) -> None:
    """Run every scenario against a throwaway PostgreSQL and a production-configured seenby."""
    if smoke:
        scale = 0.004
    if only not in (None, "notices", "completeness", "standby", "scale"):
        raise typer.BadParameter(f"no scenario {only!r}; known: notices, completeness, standby, scale",
                                 param_hint="--only")
    with tempfile.TemporaryDirectory(prefix="seenby-bench-") as workdir, deployment(Path(workdir)) as dep:
        if only == "notices":
            results = {"machine": machine(), "scale": scale, "workers": workers,
                       "postgres": postgres_settings(dep.admin_dsn),
                       "notices": notices_overhead(dep, dep.token("service", "bench-ingest"), workers,
                                                   rounds=rounds, events=max(2_000, int(100_000 * scale)))}
            _write_alone(out, "notices", results, shown=results["notices"])
            return
        if only == "completeness":
            results = {"machine": machine(), "scale": scale, "workers": workers,
                       **completeness_alone(dep, scale, workers, 3_000, profile)}
            _write_alone(out, "completeness", results, shown=results)
            return
        if only == "standby":
            results = {"machine": machine(), "scale": scale, "workers": workers,
                       "standby": standby_reads(dep, scale, workers)}
            _write_alone(out, "standby", results, shown={k: v for k, v in results["standby"].items()
                                                         if k != "runs"})
            return
        if only == "scale":
            results = {"machine": machine(), "scale": scale, "workers": workers,
                       "postgres": postgres_settings(dep.admin_dsn), **scale_run(dep, scale, workers)}
            _write_alone(out, "scale", results, shown={})
            (out.parent / "scale.md").write_text(scale_markdown(results))
            typer.echo(scale_markdown(results))
            return
        results = run_all(dep, scale, smoke, profile, workers)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    out.with_suffix(".md").write_text(table)
    typer.echo(table)


if __name__ == "__main__":
    app()
