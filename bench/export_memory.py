"""Peak RSS of a `seenby serve` on PostgreSQL while it exports ever larger exports: it must stay flat.

    .venv/bin/python -m bench.export_memory [--entries 200000] [--verify]

Loads the entries straight through service.ledger.store (as the service would append them), lets a
first server integrate them into the Merkle log, then starts a fresh server and, for each size,
resets its peak RSS (/proc/<pid>/clear_refs), downloads the JSONL export, the CSV export and the
manifest of that many entries, and reads the peak back (VmHWM), sampling VmRSS alongside. With
--verify it also downloads the whole export with `seenby export` and checks it with `seenby verify
export`, reporting their times and peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from service.actors import recorded_actor
from service.auth import mint_token
from service.clock import format_micros
from service.db import make_engine
from service.keys import load_keys
from service.ledger import store
from service.ledger.checkpoint import raw_public_key, verifier_key
from service.migrate import upgrade
from service.settings import Settings
from tests.pg import ThrowawayPostgres
from tests.servers import running_server, seenby_command, settings_env

BATCH = 5_000
CUSTOMERS = 2_000
PURPOSES = ("quality_review", "model_training", "troubleshooting", "customer_support")
START_US = 1_798_761_600_000_000  # 2027-01-01T00:00:00Z; batch k is recorded k seconds later


def _entry(number: int, pseudonym_key: bytes) -> store.NewEntry:
    customer = f"cust-{number % CUSTOMERS:05d}"
    human = number % 2 == 0
    actor: dict[str, Any] = (
        {"type": "human", "id": f"emp-{number % 97}", "role": "Quality reviewer",
         "organization": "Annotation vendor B", "country": "IN"} if human else
        {"type": "algorithm", "id": "clip-classifier", "role": "clip classifier", "version": "4.2.0"})
    recorded, identity = recorded_actor(actor, customer, pseudonym_key)
    event_id = str(uuid.uuid4())
    body = {"event_id": event_id, "customer_id": customer, "clip_id": f"clip-{number % 5_000}",
            "occurred_at": "2026-11-24T09:15:02.120Z", "actor": recorded, "action": "view",
            "media": ["video", "audio"], "purpose": PURPOSES[number % len(PURPOSES)],
            "justification": f"labelling batch 2026-11-24/{number % 1_000}"}
    return store.NewEntry(
        customer_id=customer, kind="access", body=body, recorded_by="bench", identity=identity,
        columns={"event_id": event_id, "request_digest": "0" * 64, "clip_id": body["clip_id"],
                 "occurred_at_us": 1_795_511_702_120_000, "actor_type": actor["type"],
                 "actor_country": actor.get("country"), "actor_organization": actor.get("organization"),
                 "purpose": body["purpose"], "action": "view"},
    )


async def load(settings: Settings, entries: int) -> None:
    pseudonym_key = load_keys(settings).pseudonym_key
    engine = make_engine(settings.resolved_database_url)
    try:
        for batch in range(entries // BATCH):
            new = [_entry(batch * BATCH + i, pseudonym_key) for i in range(BATCH)]
            async with engine.begin() as connection, AsyncSession(bind=connection) as session:
                await store.append(session, new, START_US + batch * 1_000_000)
            print(f"\rloaded {(batch + 1) * BATCH:,} entries", end="", flush=True)
    finally:
        await engine.dispose()
    print()


def tree_size(url: str) -> int:
    return int(httpx.get(f"{url}/v1/log/checkpoint", timeout=10).text.split("\n")[1])


def server_pid() -> int:
    """The `seenby serve` child of this process (uvicorn with one worker serves in that process)."""
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for pid in (task / "children").read_text().split():
            if b"serve" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return int(pid)
    raise RuntimeError("no seenby serve child process found")


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


class Sampler(threading.Thread):
    """A /proc/<pid>/status field every 20 ms (VmRSS: a second opinion next to the kernel's VmHWM)."""

    def __init__(self, pid: int, field: str = "VmRSS") -> None:
        super().__init__(daemon=True)
        self.pid, self.field, self.peak, self._done = pid, field, 0, threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            try:
                self.peak = max(self.peak, status_kib(self.pid, self.field))
            except (OSError, KeyError):  # the process has exited (or is a zombie)
                return
            time.sleep(0.02)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak


def measure(url: str, token: str, pid: int, path: str, params: dict[str, str]) -> dict[str, Any]:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = status_kib(pid, "VmRSS")
    sampler = Sampler(pid)
    sampler.start()
    digest, size, lines = hashlib.sha256(), 0, 0
    started = time.monotonic()
    with httpx.stream("GET", f"{url}{path}", params=params, timeout=None,
                      headers={"Authorization": f"Bearer {token}"}) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            digest.update(chunk)
            size += len(chunk)
            lines += chunk.count(b"\n")
    seconds = time.monotonic() - started
    sampled = sampler.stop()
    return {"rss_before_kib": before, "peak_kib": status_kib(pid, "VmHWM"), "sampled_peak_kib": sampled,
            "bytes": size, "lines": lines, "seconds": seconds}


def command(work: Path, *args: str, token: str = "") -> None:
    """A `seenby` command, timed, with its peak RSS (its VmHWM, sampled until it exits: ru_maxrss of a
    child would count the memory of this process, which it starts from)."""
    started = time.monotonic()
    with (work / "command.log").open("w+") as log:
        process = subprocess.Popen([*seenby_command(), *args], cwd=work, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "SEENBY_TOKEN": token})
        sampler = Sampler(process.pid, "VmHWM")
        sampler.start()
        process.wait()
        peak_kib = sampler.stop()
        log.seek(0)
        last = [line for line in log.read().splitlines() if line.strip()][-1:]
    print(f"seenby {args[0]} {args[1]}: exit {process.returncode} in {time.monotonic() - started:.1f} s, "
          f"peak RSS {peak_kib / 1024:.1f} MiB; {' '.join(last)[:300]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--verify", action="store_true", help="also download and verify the whole export")
    arguments = parser.parse_args()
    entries = arguments.entries // BATCH * BATCH
    sizes = sorted({s for s in (BATCH, 25_000, 50_000, 100_000, entries) if s <= entries})

    postgres = ThrowawayPostgres()
    admin_url = postgres.start()
    work = Path(tempfile.mkdtemp(prefix="seenby-export-bench-"))
    try:
        async def create() -> None:
            connection = await asyncpg.connect(admin_url.replace("postgresql+asyncpg", "postgresql"))
            await connection.execute("CREATE DATABASE seenby_bench")
            await connection.close()

        asyncio.run(create())
        settings = Settings(_env_file=None, data_dir=work, database_url=postgres.url("seenby_bench"),  # type: ignore[call-arg]
                            jwt_secret=secrets.token_hex(32), pseudonym_secret=secrets.token_hex(32))
        upgrade(settings)
        started = time.monotonic()
        asyncio.run(load(settings, entries))
        print(f"loaded {entries:,} entries in {time.monotonic() - started:.1f} s")
        env = settings_env(settings)
        token = mint_token(settings, load_keys(settings), role="regulator", subject="bench",
                           ttl_seconds=86_400)
        with running_server(env, work, timeout=60) as url:
            started = time.monotonic()
            while tree_size(url) < entries:
                time.sleep(0.5)
            print(f"integrated into the Merkle log in {time.monotonic() - started:.1f} s")
        with running_server(env, work, timeout=60) as url:  # a fresh process: a clean baseline
            pid = server_pid()
            print(f"server pid {pid}, idle RSS {status_kib(pid, 'VmRSS') / 1024:.1f} MiB")
            print(f"{'entries':>8} {'what':>9} {'MiB sent':>9} {'seconds':>8} {'RSS before':>11} "
                  f"{'peak (HWM)':>11} {'peak (sampled)':>15}")
            for size in sizes:
                until = format_micros(START_US + (size // BATCH) * 1_000_000)
                for what, path, extra in (("jsonl", "/v1/exports/accesses", {}),
                                          ("csv", "/v1/exports/accesses", {"format": "csv"}),
                                          ("manifest", "/v1/exports/accesses/manifest", {})):
                    result = measure(url, token, pid, path, {"until": until, **extra})
                    if what == "jsonl":
                        assert result["lines"] == size, result
                    print(f"{size:>8,} {what:>9} {result['bytes'] / 2**20:>9.1f} {result['seconds']:>8.1f} "
                          f"{result['rss_before_kib'] / 1024:>9.1f} M {result['peak_kib'] / 1024:>9.1f} M "
                          f"{result['sampled_peak_kib'] / 1024:>13.1f} M", flush=True)
            if arguments.verify:
                command(work, "export", "--url", url, "--out", "all.jsonl", "--kind", "all", token=token)
        if arguments.verify:
            (work / "key.txt").write_text(verifier_key(settings.log_origin,
                                                       raw_public_key(load_keys(settings).signing_key)))
            command(work, "verify", "export", "all.jsonl", "--manifest", "all.jsonl.manifest.json",
                    "--key", "key.txt")
    finally:
        postgres.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
