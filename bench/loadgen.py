"""The load generator: a separate process that drives a seenby server and reports what it saw.

python -m bench.loadgen SCENARIO --url URL --token TOKEN [options]  ->  one JSON object on stdout
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
import uuid
from typing import Any

import httpx
import orjson

ACTIONS = ("view", "listen", "download", "annotate", "infer")
PURPOSES = ("quality_review", "customer_support", "troubleshooting", "other")


def event(customer_id: str, n: int) -> dict[str, Any]:
    human = n % 3 != 0
    actor: dict[str, Any] = (
        {"type": "human", "id": f"emp-{n % 500}", "role": "Quality reviewer",
         "organization": "Annotation vendor B", "country": "IN"}
        if human else {"type": "algorithm", "id": "clip-classifier", "role": "clip classifier",
                       "version": "4.2.0"}
    )
    return {
        "event_id": str(uuid.uuid4()), "customer_id": customer_id, "clip_id": f"clip-{n % 977}",
        "occurred_at": "2026-11-24T09:15:02.120Z", "actor": actor, "action": ACTIONS[n % 5],
        "media": ["video", "audio"], "purpose": PURPOSES[n % 4],
        "justification": f"labelling batch {n // 1000}",
    }


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0}
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99)}


async def run_requests(
    url: str, token: str, bodies: list[bytes], path: str, concurrency: int, *, keep_alive: bool = True
) -> dict:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    latencies: list[float] = []
    failures = 0
    queue = iter(bodies)
    # Without keep-alive every batch is a new connection, taken by whichever server worker is free,
    # as when a fleet of services sends: four kept-alive connections may all land on one worker.
    limits = httpx.Limits(max_connections=concurrency,
                          max_keepalive_connections=concurrency if keep_alive else 0)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        async def worker() -> None:
            nonlocal failures
            for body in queue:
                started = time.perf_counter()
                response = await client.post(path, content=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                if response.status_code not in (200, 201):
                    failures += 1
                    print(response.status_code, response.text[:300], file=sys.stderr)

        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"requests": len(latencies), "failures": failures, "seconds": round(wall, 3),
            "generator_cpu_share": round(cpu / wall, 3), **percentiles(latencies)}


async def run_gets(url: str, token: str, paths: list[str], concurrency: int) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    latencies: list[float] = []
    queue = iter(paths)
    failures = 0
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        async def worker() -> None:
            nonlocal failures
            for path in queue:
                started = time.perf_counter()
                response = await client.get(path, headers=headers)
                latencies.append(time.perf_counter() - started)
                failures += response.status_code != 200

        wall0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - wall0
    return {"requests": len(latencies), "failures": failures, "seconds": round(wall, 3),
            "per_second": round(len(latencies) / wall, 1), **percentiles(latencies)}


def batch_bodies(
    customers: list[str], events: int, batch: int, hot: str | None, hot_events: int
) -> list[bytes]:
    """Batches spreading `events` over customers; `hot_events` of them go to one hot customer."""
    all_events = [event(hot, n) for n in range(hot_events)] if hot else []
    all_events += [event(customers[n % len(customers)], n) for n in range(events - len(all_events))]
    return [orjson.dumps({"events": all_events[i:i + batch]}) for i in range(0, len(all_events), batch)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scenario", choices=["batch", "single", "get"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", default="")
    parser.add_argument("--events", type=int, default=0)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--customer-prefix", default=None,
                        help="Name the customers PREFIX0, PREFIX1, ... (the same ones every run) "
                             "instead of at random.")
    parser.add_argument("--hot", default=None)
    parser.add_argument("--hot-events", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--paths", nargs="*", default=[])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    customers = ([f"{args.customer_prefix}{n}" for n in range(args.customers)] if args.customer_prefix
                 else [f"cust-{uuid.uuid4().hex[:10]}" for _ in range(args.customers)])
    if args.scenario == "batch":
        bodies = batch_bodies(customers, args.events, args.batch, args.hot, args.hot_events)
        result = asyncio.run(run_requests(args.url, args.token, bodies, "/v1/accesses:batch",
                                          args.concurrency, keep_alive=False))
        result["events_per_second"] = round(args.events / result["seconds"], 1)
    elif args.scenario == "single":
        bodies = [orjson.dumps(event(customers[n % len(customers)], n)) for n in range(args.events)]
        result = asyncio.run(run_requests(args.url, args.token, bodies, "/v1/accesses", args.concurrency))
        result["events_per_second"] = round(args.events / result["seconds"], 1)
    else:
        result = asyncio.run(run_gets(args.url, args.token, args.paths * args.repeat, args.concurrency))
    result["max_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
