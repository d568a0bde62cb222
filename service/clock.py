"""The one source of "now" (integer microseconds since the epoch), so tests can move time."""

from __future__ import annotations

import time

DAY_US = 86_400 * 1_000_000


def now_us() -> int:
    return time.time_ns() // 1000
