"""Entry -> canonical bytes (RFC 8785) -> entry hash; also the chain's rules."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

GENESIS_HASH = "0" * 64

# RFC 8785 sorts keys by UTF-16 code units and writes strings and integers exactly as
# orjson does with sorted keys, for the entry shapes we build: ASCII keys, strings, safe
# integers, booleans, lists and objects, never floats. tests/ledger/test_canonical.py proves
# the two byte-identical on every entry shape; the reference library is ~30x slower.
_OPTIONS = orjson.OPT_SORT_KEYS


def canonical_bytes(entry: Mapping[str, Any]) -> bytes:
    return orjson.dumps(entry, option=_OPTIONS)


def entry_hash(canonical: bytes) -> str:
    return hashlib.sha256(canonical).hexdigest()


def decode(canonical: bytes) -> dict[str, Any]:
    entry: dict[str, Any] = orjson.loads(canonical)
    return entry


def chain_breaks(entries: list[tuple[int, str, str]], *, start_seq: int = 0,
                 start_prev: str = GENESIS_HASH) -> list[str]:
    """Given (customer_seq, prev_hash, entry_hash) in order, describe every broken link."""
    problems = []
    expected_seq, expected_prev = start_seq, start_prev
    for seq, prev, this in entries:
        if seq != expected_seq:
            problems.append(f"customer_seq {seq}: expected {expected_seq}")
        if prev != expected_prev:
            problems.append(f"customer_seq {seq}: prev_hash does not match the previous entry_hash")
        expected_seq, expected_prev = seq + 1, this
    return problems
