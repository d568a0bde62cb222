"""Opaque keyset cursors: the position after which the next page starts."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pydantic import BaseModel

from service.errors import Unprocessable

_PREFIX = "seq:"


class Page(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None


def encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{position}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if raw.startswith(_PREFIX) and raw[len(_PREFIX):].isdigit():
            return int(raw[len(_PREFIX):])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise Unprocessable(
        "the cursor is not one this service issued",
        errors=[{"field": "query.cursor", "message": "invalid cursor", "type": "value_error"}],
    )


_KEY_PREFIX = "key:"


def encode_key_cursor(key: str) -> str:
    """A cursor after a string key (ids that sort by creation time)."""
    return base64.urlsafe_b64encode(f"{_KEY_PREFIX}{key}".encode()).decode().rstrip("=")


def decode_key_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if raw.startswith(_KEY_PREFIX) and 0 < len(raw) - len(_KEY_PREFIX) <= 64:
            return raw[len(_KEY_PREFIX):]
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise Unprocessable(
        "the cursor is not one this service issued",
        errors=[{"field": "query.cursor", "message": "invalid cursor", "type": "value_error"}],
    )
