"""How service/ledger/entries-1.zdict was made: a Zstandard dictionary trained on access entries
built by the service's own code from events whose every free field is drawn at random, so that it
learns what entries share (keys, vocabulary, timestamps, hex and base64 digits) and nothing of the
benchmark's values.

    .venv/bin/python -m bench.entry_dictionary --out /tmp/entries.zdict [--check]

Never replace dictionary 1 once entries were packed with it (service/ledger/packing.py): a better
dictionary gets the next number. --check prints how well the shipped dictionary packs a fresh
sample, and the benchmark's own events, without writing anything.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import secrets
import string
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import zstandard

from bench.loadgen import event as bench_event
from service.accesses.service import prepare
from service.ledger import packing
from service.ledger.canonical import GENESIS_HASH, canonical_bytes, entry_hash
from service.ledger.store import NONCE_BYTES, chained
from service.vocabulary import Action, Medium, Purpose

DICTIONARY_BYTES = 16_384
SAMPLES = 20_000
_WORDS = ("review", "labelling", "batch", "ticket", "support", "incident", "audit", "model", "quality",
          "night", "motion", "alert", "door", "garden", "training", "set", "case", "request", "legal",
          "vendor", "team", "annotation", "clip", "sound", "check", "false", "positive", "escalation")
_COUNTRIES = ("US", "IN", "PH", "DE", "FR", "GB", "BR", "KE", "PL", "MX", "CA", "JP", "VN", "EG")


def _name(rng: random.Random) -> str:
    shape = rng.randrange(4)
    if shape == 0:
        return str(uuid.UUID(int=rng.getrandbits(128)))
    if shape == 1:
        return f"{rng.choice(_WORDS)}-{rng.randrange(10 ** rng.randrange(1, 9))}"
    if shape == 2:
        return "".join(rng.choices(string.ascii_lowercase + string.digits, k=rng.randrange(6, 24)))
    return f"{rng.choice(_WORDS)}_{rng.getrandbits(40):x}"


def _phrase(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(1, words))).capitalize()


def random_event(rng: random.Random) -> dict[str, Any]:
    moment = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(microseconds=rng.getrandbits(45))
    actor: dict[str, Any] = (
        {"type": "human", "id": _name(rng), "role": _phrase(rng, 4), "organization": _phrase(rng, 4),
         "country": rng.choice(_COUNTRIES)}
        if rng.random() < 0.6 else
        {"type": "algorithm", "id": _name(rng), "role": _phrase(rng, 4),
         "version": f"{rng.randrange(20)}.{rng.randrange(50)}.{rng.randrange(100)}"})
    body: dict[str, Any] = {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "customer_id": _name(rng),
        "clip_id": _name(rng),
        "occurred_at": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "actor": actor, "action": rng.choice(list(Action)).value,
        "media": rng.sample([m.value for m in Medium], rng.randrange(1, 5)),
        "purpose": rng.choice(list(Purpose)).value,
    }
    if rng.random() < 0.8:
        body["justification"] = _phrase(rng, 12)
    if rng.random() < 0.2:
        body["authorization_id"] = _name(rng)
    return body


def entry_bytes(event: dict[str, Any], rng: random.Random) -> bytes:
    """The canonical bytes the service would store for the event."""
    prepared = prepare(event, _name(rng), secrets.token_bytes(32), secrets.token_bytes(16))  # type: ignore[arg-type]
    recorded = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(microseconds=rng.getrandbits(45))
    prev = GENESIS_HASH if rng.random() < 0.05 else entry_hash(secrets.token_bytes(32))
    return canonical_bytes(chained(prepared.entry, rng.randrange(100_000), prev,
                                   recorded.isoformat(timespec="microseconds").replace("+00:00", "Z"),
                                   secrets.token_bytes(NONCE_BYTES)))


def _packed_ratio(samples: list[bytes]) -> str:
    raw, packed = sum(map(len, samples)), sum(len(packing.pack(sample)) for sample in samples)
    assert all(packing.unpack(packing.pack(sample)) == sample for sample in samples)
    return f"{raw / len(samples):.0f} -> {packed / len(samples):.0f} bytes an entry ({packed / raw:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--check", action="store_true")
    arguments = parser.parse_args()
    rng = random.Random(20261206)
    if arguments.check:
        fresh = [entry_bytes(random_event(random.Random(n)), rng) for n in range(2_000)]
        bench = [entry_bytes(bench_event(f"cust-{n % 1000}", n), rng) for n in range(2_000)]
        print(f"random events: {_packed_ratio(fresh)}; the benchmark's events: {_packed_ratio(bench)}")
        return
    samples = [entry_bytes(random_event(rng), rng) for _ in range(SAMPLES)]
    trained = zstandard.train_dictionary(DICTIONARY_BYTES, samples, k=256, d=8)
    data = trained.as_bytes()
    arguments.out.write_bytes(data)
    print(f"{arguments.out}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
