"""Time as the ledger keeps it, integer microseconds since the epoch, and the one source of "now" (so
that tests can move time). Standard library only: offline verifiers import it."""

from __future__ import annotations

import time
from datetime import UTC, datetime

DAY_US = 86_400 * 1_000_000


def now_us() -> int:
    return time.time_ns() // 1000


def to_micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def timestamp_micros(value: str) -> int:
    return to_micros(datetime.fromisoformat(value))


def format_micros(micros: int) -> str:
    seconds, micro = divmod(micros, 1_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{micro:06d}Z"
