"""Opaque keyset cursors: the position (a sequence number or an id) after which the next page starts."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from service.errors import Unprocessable
from service.responses import JSONBody

_PREFIX = "after:"
MAX_POSITION_LENGTH = 64
MAX_SEQ = 2**63 - 1  # a BIGINT
Item = TypeVar("Item")


class Page(BaseModel, Generic[Item]):
    """Services fill `items` with plain dicts; routes document `Page[TheirItem]` and answer with
    `page_response`, so what is sent is those dicts exactly (no field dropped or reordered)."""

    items: list[Item]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


def page_response(page: Page[Any]) -> JSONBody:
    return JSONBody({"items": page.items, "next_cursor": page.next_cursor})


def encode_cursor(position: int | str) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{position}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """The position a cursor names; 422 for anything this service did not issue."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        position = raw.removeprefix(_PREFIX)
        # Only the spelling encode_cursor writes: the decoder would also skip stray characters.
        if raw.startswith(_PREFIX) and 0 < len(position) <= MAX_POSITION_LENGTH and (
            encode_cursor(position) == cursor
        ):
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
    return Unprocessable.at("query.cursor", "the cursor is not one this service issued", "invalid cursor")
