"""python -m bench.disk: what an entry takes on disk, table by table, after a batch load.

Loads access events through the HTTP API (batches of 1,000 from 4 clients, 100 entries a customer),
waits until the log holds them all, vacuums, then prints `bench.scale.disk_use`, the Merkle tiles
stored per level, how often the chain heads were rewritten and how fast the load went, as JSON. A
smaller, faster sibling of `python -m bench --only scale`, which measures disk at ten million
entries among much else.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import typer

from bench.drive import loadgen, wait_integrated
from bench.harness import deployment, seenby_server
from bench.scale import disk_use
from service.ledger.merkle.tiles import TILE_WIDTH

app = typer.Typer(add_completion=False)

ENTRIES_PER_CUSTOMER = 100


async def _vacuumed_stats(dsn: str) -> dict[str, Any]:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("VACUUM ANALYZE")
        per_level = {row["level"]: row["tiles"] for row in await connection.fetch(
            "SELECT level, count(*) AS tiles FROM merkle_tiles GROUP BY level ORDER BY level")}
        size = await connection.fetchval("SELECT max(log_index) + 1 FROM log_leaves")
        written = await connection.fetchval(
            "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'merkle_tiles'")
        heads = await connection.fetchrow(
            "SELECT n_live_tup AS rows, n_tup_upd AS updates, n_tup_hot_upd AS hot_updates,"
            " pg_relation_size('customer_heads') AS heap_bytes"
            " FROM pg_stat_user_tables WHERE relname = 'customer_heads'")
    finally:
        await connection.close()
    return {"merkle": {"tree_size": size, "tiles_per_level": per_level, "tile_rows_ever_inserted": written,
                       "complete_level_0_tiles": size // TILE_WIDTH},
            "customer_heads": dict(heads)}


@app.command()
def main(entries: Annotated[int, typer.Option(help="Access events to load.")] = 1_000_000) -> None:
    """Load ENTRIES events into a throwaway PostgreSQL and print bytes an entry, table by table."""
    with tempfile.TemporaryDirectory() as tmp, deployment(Path(tmp)) as dep:
        with seenby_server(dep, workers=1) as (url, _):
            load = loadgen("batch", "--url", url, "--token", dep.token("service", "bench-ingest"),
                           "--events", str(entries), "--batch", "1000", "--concurrency", "4",
                           "--customers", str(max(1, entries // ENTRIES_PER_CUSTOMER)),
                           "--customer-prefix", "cust-")
            wait_integrated(dep.admin_dsn, entries, timeout=900)
        stats = asyncio.run(_vacuumed_stats(dep.admin_dsn))
        loaded = {"load": {"seconds": load["seconds"], "events_per_second": round(entries / load["seconds"])}}
        typer.echo(json.dumps({**disk_use(dep.admin_dsn), **stats, **loaded}, indent=2))


if __name__ == "__main__":
    app()
