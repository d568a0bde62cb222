"""python -m bench.ticket_check [--tickets N]: how many tickets a clip store checks a second on one core.

The clip store's whole check (service.tickets.check.TicketChecker: header, key by kid, Ed25519
signature, claims, single use) on tickets signed as seenby signs them, each once, in one process:
its CPU time is one core's. Nothing else runs in the loop.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Annotated

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service import jws
from service.tickets.check import TICKET_TYP, Jwks, MemoryReplayStore, TicketChecker

ISSUER, AUDIENCE, CLIP = "bench.seenby.example/log", "clip-store-bench", "clip-77a1"
app = typer.Typer(add_completion=False)


def tickets(key: Ed25519PrivateKey, count: int) -> list[str]:
    now = int(time.time())
    return [jws.sign_eddsa({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "cust-1042", "jti": str(uuid.uuid4()), "clip_id": CLIP,
        "action": "view", "media": ["video"], "purpose": "quality_review", "entry_hash": "ab" * 32,
        "customer_seq": n, "iat": now, "exp": now + 300,
    }, key, typ=TICKET_TYP) for n in range(count)]


async def measure(count: int) -> dict[str, float]:
    key = Ed25519PrivateKey.generate()
    checker = TicketChecker(ISSUER, AUDIENCE, Jwks(document={"keys": [jws.public_jwk(key.public_key())]}),
                            MemoryReplayStore(max_entries=count))
    signed = tickets(key, count)
    cpu, wall = time.process_time(), time.perf_counter()
    for ticket in signed:
        await checker.check(ticket, clip_id=CLIP, action="view")
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"tickets": count, "cpu_seconds": round(cpu, 3), "wall_seconds": round(wall, 3),
            "tickets_per_cpu_second": round(count / cpu), "microseconds_each": round(cpu / count * 1e6, 1)}


@app.command()
def main(count: Annotated[int, typer.Option("--tickets", help="Tickets to check.")] = 50_000) -> None:
    """Check COUNT distinct tickets in one process; print the rate per CPU second (one core) as JSON."""
    print(json.dumps(asyncio.run(measure(count))))


if __name__ == "__main__":
    app()
