"""Opaque keyset cursors: the position (a sequence number or an id) after which the next page starts."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pydantic import BaseModel

from service.errors import Unprocessable

_PREFIX = "after:"
MAX_POSITION_LENGTH = 64
MAX_SEQ = 2**63 - 1  # a BIGINT


class Page(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None


def encode_cursor(position: int | str) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{position}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """The position a cursor names; 422 for anything this service did not issue."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        position = raw.removeprefix(_PREFIX)
        if raw.startswith(_PREFIX) and 0 < len(position) <= MAX_POSITION_LENGTH:
            return position
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise _invalid()


def decode_seq_cursor(cursor: str | None) -> int | None:
    position = decode_cursor(cursor)
    if position is None:
        return None
    if not position.isascii() or not position.isdigit() or int(position) > MAX_SEQ:
        raise _invalid()
    return int(position)


def _invalid() -> Unprocessable:
    return Unprocessable(
        "the cursor is not one this service issued",
        errors=[{"field": "query.cursor", "message": "invalid cursor", "type": "value_error"}],
    )
