"""Opaque keyset cursors: the position (a sequence number or an id) after which the next page starts."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from service.errors import Unprocessable
from service.responses import JSONBody

_PREFIX = "after:"
MAX_POSITION_LENGTH = 64
MAX_SEQ = 2**63 - 1  # a BIGINT
# Every position this service writes into a cursor (a number, a UUID, "<id>.<type>") is printable
# ASCII; anything else (a NUL, which PostgreSQL's text refuses) was not issued here.
_POSITION = re.compile(rf"[\x21-\x7e]{{1,{MAX_POSITION_LENGTH}}}")
_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
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
        if raw.startswith(_PREFIX) and _POSITION.fullmatch(position) and encode_cursor(position) == cursor:
            return position
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise _invalid()


def decode_seq_cursor(cursor: str | None) -> int | None:
    position = decode_cursor(cursor)
    if position is None:
        return None
    if not is_seq(position):
        raise _invalid()
    return int(position)


def decode_id_cursor(cursor: str | None) -> str | None:
    """The id (a UUID as service.ids writes them) a cursor names; 422 for anything else."""
    position = decode_cursor(cursor)
    if position is not None and not _ID.fullmatch(position):
        raise _invalid()
    return position


def is_seq(text: str) -> bool:
    """ASCII digits naming a BIGINT (never more than its 19 digits: no huge int is parsed)."""
    return text.isascii() and text.isdigit() and len(text) <= 19 and int(text) <= MAX_SEQ


def _invalid() -> Unprocessable:
    return Unprocessable.at("query.cursor", "the cursor is not one this service issued", "invalid cursor")
