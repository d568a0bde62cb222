"""Per-caller rate limits: a token bucket for each token subject, in each process."""

from __future__ import annotations

import math
import time
from collections import OrderedDict

from service.errors import TooManyRequests

MAX_TRACKED_CALLERS = 100_000


class RateLimiter:
    """`rate` requests a second on average, bursts of `burst`; 0 turns the limit off. `limit` says
    what is exceeded in the 429's detail."""

    def __init__(self, rate: float, burst: float, limit: str = "") -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.limit = limit or f"more than {rate:g} requests a second"
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def check(self, caller: str) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        tokens, last = self._buckets.pop(caller, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[caller] = (tokens, now)
            raise TooManyRequests(
                f"{self.limit} from {caller}; slow down",
                retry_after_seconds=max(1, math.ceil((1.0 - tokens) / self.rate)),
            )
        self._buckets[caller] = (tokens - 1.0, now)
        if len(self._buckets) > MAX_TRACKED_CALLERS:
            self._buckets.popitem(last=False)  # the longest idle caller starts afresh
