"""The benchmark's CI-sized run: every scenario produces its figures (never a timing assertion)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.ci import unavailable

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_smoke_run_produces_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    result = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--out", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["machine"]["cores"] and figures["machine"]["cpu"] and figures["machine"]["commit"]
    assert figures["postgres"]["fsync"] == "on" and figures["postgres"]["synchronous_commit"] == "on"
    for scenario in ("batch_ingest", "single_ingest"):
        assert figures[scenario]["events_per_second"] > 0
        assert figures[scenario].get("failures", 0) == 0 and figures[scenario].get("non_2xx", 0) == 0
    lag = figures["batch_ingest"]
    assert 0 <= lag["integration_lag_p50_s"] <= lag["integration_lag_p99_s"] <= lag["integration_lag_max_s"]
    for baseline in ("copy", "copy_indexed", "naive"):
        assert figures["baselines"][baseline]["events_per_second"] > 0
    for baseline in ("copy", "copy_indexed"):
        copy = figures["baselines"][baseline]
        assert len(copy["runs_per_second"]) == 3 and max(copy["runs_per_second"]) == copy["events_per_second"]
    for scenario in ("history_first_page", "history_deep_page", "inclusion_proof", "consistency_proof",
                     "completeness_proof"):
        assert figures[scenario]["requests"] > 0 and figures[scenario]["failures"] == 0
        assert figures[scenario]["p99_ms"] > 0
    assert figures["audit"]["passed"] and figures["audit"]["entries_per_second"] > 0
    assert figures["ledger_size"] >= figures["batch_ingest"]["requests"]
    assert set(figures["memory_kib"]) >= {"start", "after_batch", "after_all", "end", "peak"}
    notices = figures["notices"]  # the dead-receiver run really wrote notices (2 runs of 2,000 events)
    assert len(notices["runs_per_second"]["without"]) == len(notices["runs_per_second"]["dead_receiver"]) == 2
    assert notices["notices_written"] > 2_000 and notices["ratio"] > 0
    table = out.with_suffix(".md").read_text()
    assert "| Batch ingest" in table and "| Completeness proof" in table
    assert "x COPY" in table and "x indexed COPY" in table and "with the entry table's indexes" in table
    assert figures["customers"] > 0
    if shutil.which("wrk"):  # CI installs it (.ci/run)
        tickets = figures["tickets"]
        assert tickets["tickets_per_second"] > 0 and tickets["non_2xx"] == 0 and tickets["p99_ms"] > 0
        assert "| Access tickets" in table


def test_ingest_probe_reports_rate_cpu_and_statements() -> None:
    result = subprocess.run([sys.executable, "-m", "bench.ingest_probe", "--events", "2000", "--statements"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert figures["events_per_second"] > 0
    assert figures["cpu_seconds"]["server"] > 0 and figures["cpu_seconds"]["postgres"] > 0
    # The ledger's writes are among PostgreSQL's top statements. Which COPY leads varies with so few
    # events (entries are stored packed, so the entry table's COPY is no longer always the largest).
    assert any(s["query"].startswith('COPY "') and s["calls"] > 0 for s in figures["statements"])
    assert all({"ms", "calls", "rows", "query"} <= s.keys() for s in figures["statements"])


def test_ingest_probe_measures_single_events_with_wrk() -> None:
    if not shutil.which("wrk"):
        unavailable("wrk is not installed (apt-get install wrk; .ci/run does)")
    result = subprocess.run([sys.executable, "-m", "bench.ingest_probe", "--single", "2"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert figures["events_per_second"] > 0 and figures["p99_ms"] > 0
    assert figures["cpu_us_per_event"]["server"] > 0
    assert figures["integration_lag"]["p99_s"] >= 0


def test_top_frames_counts_a_function_once_per_sample_whatever_its_line(tmp_path: Path) -> None:
    frames = [{"name": "handle", "file": "/app/service/routes.py", "line": 10},
              {"name": "handle", "file": "/app/service/routes.py", "line": 12},
              {"name": "hash", "file": "/app/service/canonical.py", "line": 3},
              {"name": "run", "file": "/usr/lib/asyncio/runners.py", "line": 1}]
    profile = {"shared": {"frames": frames}, "profiles": [
        {"samples": [[3, 0, 1, 2], [3, 0], [3]], "weights": [2.0, 1.0, 1.0]},
    ]}
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    result = subprocess.run([sys.executable, "-m", "bench.top_frames", str(path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=True)
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "%" in line]
    assert rows == ["| 75.0 % | 25.0 % | `handle (routes.py)` |",
                    "| 50.0 % | 50.0 % | `hash (canonical.py)` |"]


def test_floor_times_every_step() -> None:
    result = subprocess.run([sys.executable, "-m", "bench.floor", "--events", "2000"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert figures["events"] == 2000 and len(figures["us_per_event"]) == 6
    assert all(micros > 0 for micros in figures["us_per_event"].values())
    assert figures["total_us_per_event"] > 0 and figures["events_per_second_per_core"] > 0


def test_disk_counts_every_table_and_the_tiles_of_the_tree_it_loaded() -> None:
    result = subprocess.run([sys.executable, "-m", "bench.disk", "--entries", "3000"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(result.stdout)
    # The customer index's leaves share the log with the entries.
    size = figures["merkle"]["tree_size"]
    assert figures["entries"] == 3000 and 3000 < size < 3100
    # Levels 0, 4, 8, ... are tiled: 256 complete nodes of level L cover 256 << L leaves.
    assert figures["merkle"]["tiles_per_level"] == {
        str(level): size >> (level + 8) for level in range(0, size.bit_length(), 4) if size >> (level + 8)}
    assert all(figures["bytes_per_entry"][table] > 0
               for table in ("ledger_entries", "actor_identities", "log_leaves", "merkle_tiles"))
    assert figures["tables_over_canonical"] > 1
    assert figures["customer_heads"]["rows"] == 30
    assert figures["load"]["events_per_second"] > 0


def test_witness_lag_covers_every_entry_with_a_cosigned_checkpoint() -> None:
    result = subprocess.run([sys.executable, "-m", "bench.witness_lag", "--seconds", "2", "--rate", "500"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert figures["cosigned_and_served"]["entries"] == figures["signed"]["entries"] == 1000
    served, signed = figures["cosigned_and_served"], figures["signed"]
    assert 0 < served["p50_s"] <= served["p99_s"] <= served["max_s"]
    assert served["p50_s"] >= signed["p50_s"]  # a cosignature comes after the signature
    assert set(figures["exchange_mean_s"]) == {"W1", "W2", "W3"}
