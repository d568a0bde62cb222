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


class ChainLinks:
    """A customer's chain, followed entry by entry from customer_seq 0: no gap, and every prev_hash
    the hash of the entry before it. Fed the recorded entries, never the shown ones."""

    __slots__ = ("broken", "next_seq", "prev_hash")  # the audit holds one for each customer

    def __init__(self) -> None:
        self.next_seq = 0
        self.prev_hash = GENESIS_HASH
        self.broken = 0

    def follow(self, recorded: Mapping[str, Any], this_hash: str) -> list[str]:
        faults = []
        seq = recorded.get("customer_seq")
        if seq != self.next_seq:
            faults.append(f"customer_seq {seq} where {self.next_seq} was expected: the customer's "
                          "chain is not complete")
        if recorded.get("prev_hash") != self.prev_hash:
            faults.append("prev_hash does not link to the entry before it")
        self.broken += len(faults)
        self.next_seq = seq + 1 if isinstance(seq, int) and not isinstance(seq, bool) else self.next_seq + 1
        self.prev_hash = this_hash
        return faults
