"""The hash columns' type: hex to the code, bytes on PostgreSQL, and no stored value for bad hex."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from service.ledger.compact_columns import HexBytes, as_bytes

HASH = "9f2c" + "0a" * 30


def test_lowercase_hex_binds_as_its_bytes_on_postgresql_and_reads_back_as_the_same_text() -> None:
    column, dialect = HexBytes(), postgresql.dialect()  # type: ignore[no-untyped-call]
    stored = column.process_bind_param(HASH, dialect)
    assert stored == bytes.fromhex(HASH) and len(stored) == 32
    assert column.process_result_value(memoryview(stored), dialect) == HASH


def test_sqlite_keeps_the_text() -> None:
    column, dialect = HexBytes(), sqlite.dialect()
    assert column.process_bind_param(HASH, dialect) == HASH
    assert column.process_result_value(HASH, dialect) == HASH


@pytest.mark.parametrize("value", [HASH.upper(), HASH[:-1], "9f 2c", "zz", "é" * 4])
def test_anything_but_lowercase_hex_binds_a_value_no_stored_hash_can_equal(value: str) -> None:
    bound = as_bytes(value)
    assert isinstance(bound, bytes) and len(bound) != 32
    assert all(bound != bytes.fromhex(candidate) for candidate in (HASH, "ab" * 32))
