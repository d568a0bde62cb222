"""Columns the code sees as text and PostgreSQL stores compactly: hashes and salts as their bytes,
event ids as uuid (migration 0017).

A SHA-256 hash takes 33 bytes as bytea against 65 as hex text, a UUID 16 against 37, in the row
and again in each index on it. SQLite keeps the text: its files are small deployments and tests.
"""

from __future__ import annotations

import binascii
from typing import Any

from sqlalchemy import LargeBinary, String, TypeDecorator, Uuid
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

# Binds no stored value: every stored one is the bytes of lowercase hex, and this is none.
_MATCHES_NOTHING = b"\x00not hex"


class HexBytes(TypeDecorator[str]):
    """Lowercase hex in the code; its bytes on PostgreSQL."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(LargeBinary())
        return dialect.type_descriptor(String(64))

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | bytes | None:
        if value is None or dialect.name != "postgresql":
            return value
        return as_bytes(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if value is None or dialect.name != "postgresql":
            return None if value is None else str(value)
        return bytes(value).hex()


def as_bytes(value: str) -> bytes:
    """The bytes of lowercase hex; anything else (a caller's typo, an uppercase hash) matches no row,
    as it matched none when the column held the text."""
    if value != value.lower():
        return _MATCHES_NOTHING
    try:
        return binascii.unhexlify(value)
    except (binascii.Error, ValueError):
        return _MATCHES_NOTHING


class UuidText(TypeDecorator[str]):
    """A UUID as lowercase hyphenated text in the code (callers validate it); uuid on PostgreSQL,
    which reads back in the same spelling."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Uuid(as_uuid=False))
        return dialect.type_descriptor(String(36))

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return value  # COPY and asyncpg take a UUID's text for a uuid column

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else str(value)
