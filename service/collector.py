"""The cyclic garbage collector for the commands that go through millions of entries (the audit, an
export's verification): each allocates several objects an entry and holds thousands alive at once
(a chunk of rows, the customers' chain links, a batch of proofs), all freed by reference counting.
At CPython's default thresholds the collector scans them over and over: 10-15 % of the audit's
chains and index passes' CPU at 1M entries. The server tunes its own (service.main)."""

from __future__ import annotations

import gc

COLLECT_AFTER_ALLOCATIONS = 50_000  # CPython's default: 700


def collect_rarely() -> None:
    """In this process, run the youngest generation's collection after COLLECT_AFTER_ALLOCATIONS."""
    gc.set_threshold(COLLECT_AFTER_ALLOCATIONS, *gc.get_threshold()[1:])
