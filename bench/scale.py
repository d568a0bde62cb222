"""The scale run, `python -m bench --only scale --scale 10`: ten million entries over 100,000
customers, loaded in tenths. At each tenth: the ingest rate, CPU an event, the server's memory, disk
an entry and how far the log trails. At full size: history pages, proofs and tiles, then an export
end to end of a window of entries in the middle of the log, `seenby verify export` of it, and
`seenby audit` of the whole log."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.drive import (
    checkpoint_size,
    completeness_latency,
    entries_in_log,
    fetchval,
    loadgen,
    log_readers,
    wait_integrated,
    wrk_one_at_a_time,
)
from bench.harness import Deployment, cpu_seconds, rss_kib, seenby_server
from service.clock import format_micros
from service.keys import load_keys
from service.ledger import packing
from service.ledger.checkpoint import raw_public_key, verifier_key
from service.ledger.merkle.tiles import TILE_WIDTH, tile_path
from service.paging import encode_cursor

TENTHS = 10
CANONICAL_SAMPLE = 10_000
HOT = "cust-hot"
# The export's manifest carries an inclusion proof for every entry (about 1.7 KB an entry at 10M):
# the whole ledger would take hours and tens of GB to export, a window measures the same rate.
EXPORT_WINDOW = 200_000

# Every table a recorded access writes to, and the database as a whole.
_TABLES = ("ledger_entries", "actor_identities", "log_leaves", "merkle_tiles", "merkle_nodes",
           "integration_queue", "customer_heads", "customer_index_nodes", "index_leaves", "checkpoints",
           "notice_batches", "notices")


def scale_run(dep: Deployment, scale: float, workers: int, requests: int = 3_000) -> dict[str, Any]:
    entries = max(TENTHS * 1_000, int(1_000_000 * scale))
    customers = max(1_000, int(10_000 * scale))
    tenth = entries // TENTHS
    hot_events = min(10_000, tenth // 4)
    service, regulator = dep.token("service", "bench-ingest"), dep.token("regulator", "bench-regulator")
    results: dict[str, Any] = {"entries": tenth * TENTHS, "customers": customers}
    with seenby_server(dep, workers=workers) as (url, server):
        results["memory_kib_start"] = rss_kib(server.pid)[0]
        results["tenths"] = [
            _load_tenth(dep, url, server.pid, service, customers, tenth, step,
                        hot_events if step == 0 else 0)
            for step in range(TENTHS)
        ]
        first, last = results["tenths"][0], results["tenths"][-1]
        results["ingest_end_over_start"] = round(last["events_per_second"] / first["events_per_second"], 3)
        results["drain_seconds"] = round(wait_integrated(dep.admin_dsn, tenth * TENTHS, timeout=1_800), 1)
        time.sleep(1)  # the last index leaf, and a checkpoint over it
        size = checkpoint_size(url)
        results["tree_size"] = size
        results.update(_reads(dep, url, regulator, size, hot_events, requests, customers))
        results["disk"] = disk_use(dep.admin_dsn)
        results["export"], results["verify_export"] = _export_and_verify(
            dep, url, regulator, _middle_window(dep.admin_dsn, tenth * TENTHS))
        results["memory_kib_end"], results["memory_kib_peak"] = rss_kib(server.pid)
    results["audit"] = _timed_command(dep, ["audit"], count=size)
    return results


def _load_tenth(dep: Deployment, url: str, pid: int, token: str, customers: int, events: int, step: int,
                hot_events: int) -> dict[str, Any]:
    """One tenth of the load, over the same customers every time (a hot one in the first)."""
    before = cpu_seconds()
    sent = loadgen("batch", "--url", url, "--token", token, "--events", str(events), "--batch", "1000",
                   "--concurrency", "4", "--customers", str(customers), "--customer-prefix", "cust-",
                   *(["--hot", HOT, "--hot-events", str(hot_events)] if hot_events else []))
    after = cpu_seconds()
    busy = sum(after.get(kind, 0.0) - before.get(kind, 0.0) for kind in ("server", "postgres"))
    recorded = (step + 1) * events
    return {"recorded": recorded, "events_per_second": sent["events_per_second"],
            "p99_ms": sent["p99_ms"], "failures": sent["failures"],
            "cpu_us_per_event": round(busy / events * 1e6, 1),
            "log_trails_by": recorded - entries_in_log(dep.admin_dsn),
            "server_rss_mib": round(rss_kib(pid)[0] / 1024, 1),
            "database_bytes_per_entry": round(
                fetchval(dep.admin_dsn, "SELECT pg_database_size(current_database())") / recorded)}


def _reads(dep: Deployment, url: str, regulator: str, size: int, hot_events: int,
           requests: int, customers: int) -> dict[str, Any]:
    """Histories, proofs and tiles at full size, two clients at a time (the load generator), then the
    main ones from wrk, one request at a time."""
    rng = random.Random(7)
    base = f"/v1/customers/{HOT}/accesses"
    deep_cursor = encode_cursor(max(1, hot_events // 10))

    def get(paths: list[str], token: str = "") -> dict[str, Any]:
        figures = loadgen("get", "--url", url, "--token", token, "--concurrency", "2", "--paths", *paths)
        if figures["failures"]:
            raise RuntimeError(f"{figures['failures']} of {len(paths)} reads failed, e.g. {paths[0]}")
        return figures

    def tiles(level: int) -> dict[str, Any]:
        full = size // TILE_WIDTH ** (level + 1)
        if full == 0:
            return {"skipped": f"no full tile at level {level} in a tree of {size}"}
        return get([f"/v1/log/{tile_path(level, rng.randrange(full))}" for _ in range(requests)])

    reads = {
        "history_first_page": get([f"{base}?limit=50"] * requests, regulator),
        "history_deep_page": get([f"{base}?limit=50&cursor={deep_cursor}"] * requests, regulator),
        "inclusion_proof": get([f"/v1/log/proof/inclusion?log_index={rng.randrange(size)}&tree_size={size}"
                                for _ in range(requests)]),
        "consistency_proof": get([f"/v1/log/proof/consistency?first={rng.randrange(1, size)}&second={size}"
                                  for _ in range(requests)]),
        "tile_level_0": tiles(0),
        "tile_level_1": tiles(1),
    }
    one_at_a_time = {**log_readers(base, deep_cursor, regulator, size),
                     # The load generator names its customers cust-0 .. cust-<customers - 1>.
                     "completeness_proof": ("/v1/customers/cust-%d/completeness", regulator, customers)}
    return {**reads, **completeness_latency(dep, url, regulator, requests),
            **wrk_one_at_a_time(url, one_at_a_time)}


def disk_use(dsn: str) -> dict[str, Any]:
    """Bytes an entry on disk, table by table (with indexes and TOAST) and for the whole database,
    against the entries' canonical bytes."""
    entries = fetchval(dsn, "SELECT count(*) FROM ledger_entries")
    # Stored packed: the canonical size is the mean of a sample, unpacked.
    sample = fetchval(dsn, f"SELECT array_agg(canonical) FROM (SELECT canonical FROM ledger_entries "
                           f"ORDER BY random() LIMIT {CANONICAL_SAMPLE}) AS sampled")
    canonical = sum(len(packing.unpack(stored)) for stored in sample) / len(sample) * entries
    stored = fetchval(dsn, "SELECT sum(octet_length(canonical)) FROM ledger_entries")
    sizes = {table: fetchval(dsn, f"SELECT pg_total_relation_size('{table}')") for table in _TABLES}
    database = fetchval(dsn, "SELECT pg_database_size(current_database())")
    return {"entries": entries, "canonical_bytes_per_entry": round(canonical / entries, 1),
            "stored_canonical_bytes_per_entry": round(stored / entries, 1),
            "bytes_per_entry": {table: round(size / entries, 1) for table, size in sizes.items()},
            "tables_over_canonical": round(sum(sizes.values()) / canonical, 2),
            "database_over_canonical": round(database / canonical, 2)}


def _middle_window(dsn: str, entries: int) -> list[str]:
    """`seenby export` options for about EXPORT_WINDOW entries from the middle of the ledger (by
    recorded_at, as the export filters), or none when it holds no more than that."""
    if entries <= EXPORT_WINDOW:
        return []
    first = (entries - EXPORT_WINDOW) // 2

    def recorded_at(position: int) -> str:
        return format_micros(fetchval(
            dsn, f"SELECT recorded_at_us FROM ledger_entries ORDER BY id OFFSET {position} LIMIT 1"))

    return ["--since", recorded_at(first), "--until", recorded_at(first + EXPORT_WINDOW)]


def _export_and_verify(dep: Deployment, url: str, regulator: str,
                       window: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """`seenby export` of every kind of entry (in `window`, when given), timed end to end (the server
    streaming, the CLI writing), then `seenby verify export` of what it wrote."""
    data = dep.workdir / "export.jsonl"
    key = dep.workdir / "verifier-key.txt"
    key.write_text(verifier_key(dep.settings.log_origin, raw_public_key(load_keys(dep.settings).signing_key)))
    exported = _timed_command(dep, ["export", "--url", url, "--out", str(data), "--kind", "all", *window],
                              env={"SEENBY_TOKEN": regulator}, count_lines=data)
    exported["bytes_per_entry"] = round(data.stat().st_size / exported["entries"], 1)
    exported["window"] = window
    verified = _timed_command(dep, ["verify", "export", str(data), "--manifest", f"{data}.manifest.json",
                                    "--key", str(key)], count=exported["entries"])
    data.unlink()
    Path(f"{data}.manifest.json").unlink()
    return exported, verified


def _timed_command(dep: Deployment, args: list[str], *, count: int = 0, count_lines: Path | None = None,
                   env: dict[str, str] | None = None) -> dict[str, Any]:
    """A `seenby` command against the deployment: its time, CPU (its own and the server's and
    PostgreSQL's meanwhile) and rate."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SEENBY_")}
    before, started = cpu_seconds(), time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "service.cli", *args], capture_output=True, text=True,
                          env={**clean, **dep.env, **(env or {})}, check=False)
    seconds, after = time.perf_counter() - started, cpu_seconds()
    if done.returncode != 0:
        raise RuntimeError(f"seenby {' '.join(args[:2])} failed: {done.stdout[-1000:]} {done.stderr[-1000:]}")
    if count_lines is not None:
        with count_lines.open("rb") as lines:
            count = sum(1 for _ in lines)
    return {"entries": count, "seconds": round(seconds, 1), "entries_per_second": round(count / seconds),
            "cpu_seconds": {kind: round(after.get(kind, 0.0) - before.get(kind, 0.0), 1)
                            for kind in ("machine_busy", "server", "postgres")}}


def markdown(results: dict[str, Any]) -> str:
    """The scale run as RESULTS.md shows it."""
    lines = ["| recorded | events/s | CPU µs/event | log trails by | server RSS MiB | DB bytes/entry |",
             "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {t['recorded']:,} | {t['events_per_second']:,.0f} | {t['cpu_us_per_event']} | "
              f"{t['log_trails_by']:,} | {t['server_rss_mib']} | {t['database_bytes_per_entry']:,} |"
              for t in results["tenths"]]
    lines += ["", "| read at full size | req/s | p50 / p99 ms |", "| --- | ---: | ---: |"]
    for name in ("history_first_page", "history_deep_page", "inclusion_proof", "consistency_proof",
                 "completeness_proof", "tile_level_0", "tile_level_1", "history_first_page_wrk",
                 "history_deep_page_wrk", "inclusion_proof_wrk", "consistency_proof_wrk",
                 "completeness_proof_wrk"):
        read = results.get(name, {"skipped": "not measured"})
        if "skipped" in read:
            continue
        label = name.removesuffix("_wrk").replace("_", " ")
        label += " (wrk, 1 connection)" if name.endswith("_wrk") else ""
        lines.append(f"| {label} | {read['per_second']:,.0f} | {read['p50_ms']} / {read['p99_ms']} |")
    lines += ["", "| command | entries | entries/s | seconds |", "| --- | ---: | ---: | ---: |"]
    for name in ("export", "verify_export", "audit"):
        lines.append(f"| seenby {name.replace('_', ' ')} | {results[name]['entries']:,} | "
                     f"{results[name]['entries_per_second']:,} | {results[name]['seconds']} |")
    return "\n".join(lines) + "\n"
