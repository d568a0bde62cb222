"""Identifiers for requests, tasks, grants and decisions: UUIDv7, so they sort by creation time;
and random bytes for salts and nonces, drawn for a whole batch at once."""

from __future__ import annotations

import os
import uuid

from service import clock


def new_id() -> str:
    """RFC 9562 UUIDv7: 48-bit Unix milliseconds, version, 74 random bits."""
    millis = clock.now_us() // 1000
    value = (millis & ((1 << 48) - 1)) << 80 | int.from_bytes(os.urandom(10), "big") & ((1 << 80) - 1)
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))


def random_blocks(count: int, size: int) -> list[bytes]:
    """`count` independent random byte strings of `size` bytes, from one system call."""
    pool = os.urandom(count * size)
    return [pool[start:start + size] for start in range(0, count * size, size)]
