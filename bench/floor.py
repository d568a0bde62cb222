"""python -m bench.floor: the work every recorded event needs whatever the database, timed alone.

One process, no database, no HTTP: seenby's own functions on the load generator's batches, step by
step, as the server runs them for each event: validating the batch, preparing the event (request
digest, pseudonym and commitment), chaining it (canonical bytes, entry and leaf hashes), adding its
leaf to the Merkle tree and writing its receipt. Their sum is a floor under the server's CPU per
event on this stack; `python -m bench.ingest_probe` measures what the server spends in all.
"""

from __future__ import annotations

import contextlib
import gc
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Annotated, Any

import orjson
import typer

from bench.loadgen import batch_bodies
from service.accesses.routes import BATCH, parse
from service.accesses.service import new_receipt, prepare
from service.actors import SALT_BYTES
from service.clock import format_micros
from service.ids import random_blocks
from service.ledger.canonical import GENESIS_HASH, canonical_bytes, entry_hash
from service.ledger.merkle import CompactRange, leaf_hash
from service.ledger.store import NONCE_BYTES, AppendedEntry, chained
from service.main import GC_THRESHOLDS

app = typer.Typer(add_completion=False)

STEPS = ("validate the batch", "prepare each event", "chain: canonical bytes", "chain: entry and leaf hash",
         "Merkle tree", "receipt")


def measure(events: int, batch: int = 1_000) -> dict[str, Any]:
    """CPU microseconds per event of each step, over `events` events in batches of `batch`, with the
    server's garbage-collector settings."""
    customers = [f"cust-{uuid.uuid4().hex[:10]}" for _ in range(2_000)]
    bodies = batch_bodies(customers, events, batch, None, 0)
    pseudonym_key = secrets.token_bytes(32)
    tree = CompactRange()
    spent = dict.fromkeys(STEPS, 0.0)
    gc.freeze()
    collector = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    recorded_at = format_micros(time.time_ns() // 1_000)

    @contextlib.contextmanager
    def timing(step: str) -> Iterator[None]:
        started = time.process_time()
        yield
        spent[step] += time.process_time() - started

    for body in bodies:
        with timing("validate the batch"):
            parsed = parse(BATCH, body)["events"]
        salts, nonces = random_blocks(len(parsed), SALT_BYTES), random_blocks(len(parsed), NONCE_BYTES)
        with timing("prepare each event"):
            sent = [prepare(event, "bench", pseudonym_key, salt)
                    for event, salt in zip(parsed, salts, strict=True)]
        with timing("chain: canonical bytes"):
            canonical = [canonical_bytes(chained(s.entry, 0, GENESIS_HASH, recorded_at, nonce))
                         for s, nonce in zip(sent, nonces, strict=True)]
        with timing("chain: entry and leaf hash"):
            hashes = [(entry_hash(c), leaf_hash(c)) for c in canonical]
        with timing("Merkle tree"):
            for _, leaf in hashes:
                tree.append(leaf)
        appended = [AppendedEntry(s.entry.customer_id, 0, digest, recorded_at, c)
                    for s, (digest, _), c in zip(sent, hashes, canonical, strict=True)]
        with timing("receipt"):
            orjson.dumps({"receipts": [new_receipt(s, a) for s, a in zip(sent, appended, strict=True)]})
    gc.set_threshold(*collector)
    per_event = {step: round(seconds * 1e6 / events, 2) for step, seconds in spent.items()}
    total = sum(per_event.values())
    return {"events": events, "us_per_event": per_event, "total_us_per_event": round(total, 2),
            "events_per_second_per_core": round(1e6 / total)}


@app.command()
def main(events: Annotated[int, typer.Option(help="Events to time.")] = 100_000) -> None:
    """Print the floor as JSON: microseconds of CPU per event for each step, and their sum."""
    typer.echo(json.dumps(measure(events), indent=2))


if __name__ == "__main__":
    app()
