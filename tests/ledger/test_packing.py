"""Entries are stored packed (service/ledger/packing.py) and read back byte for byte, on both backends;
rows stored as plain canonical bytes, as before packing, still read; dictionary 1 never changes."""

from __future__ import annotations

import base64
import hashlib
import random

import httpx
import zstandard
from sqlalchemy import text

from bench.entry_dictionary import entry_bytes, random_event
from service.db import make_engine
from service.ledger import packing
from service.main import create_app
from service.settings import Settings
from tests.chains import assert_chain_intact, fetch_chain
from tests.conftest import Backend, Tokens, serve
from tests.factories import access_event

# Rows packed with dictionary 1 can only be read with these very bytes.
DICTIONARY_1_SHA256 = "364973da24dd80ce61b65dd5a5809bd7ab53e4eea33c93c0e253fd606b07c5b7"


def test_dictionary_1_is_the_one_rows_were_packed_with() -> None:
    assert hashlib.sha256(packing.dictionary(1).as_bytes()).hexdigest() == DICTIONARY_1_SHA256


def test_entries_pack_to_well_under_half_and_unpack_to_the_same_bytes() -> None:
    rng = random.Random(5)
    samples = [entry_bytes(random_event(random.Random(n)), rng) for n in range(500)]
    packed = [packing.pack(sample) for sample in samples]
    assert [packing.unpack(value) for value in packed] == samples
    assert all(value[0] == packing.DICTIONARY_1 for value in packed)
    assert sum(map(len, packed)) < 0.45 * sum(map(len, samples))


def test_what_is_not_a_packed_frame_comes_back_as_stored() -> None:
    canonical = entry_bytes(random_event(random.Random(1)), random.Random(2))
    assert packing.unpack(canonical) == canonical  # a row from before packing
    truncated = packing.pack(canonical)[:20]
    assert packing.unpack(truncated) == truncated
    assert packing.unpack(b"") == b""


def test_a_frame_that_claims_more_than_an_entry_or_no_size_is_not_unpacked() -> None:
    """A header states the size decompression allocates: a tampered row must not make a reader take
    gigabytes, nor a frame without a size (pack() always writes one) be read to an arbitrary length."""
    def frame(data: bytes, **options: bool) -> bytes:
        return bytes((packing.DICTIONARY_1,)) + zstandard.ZstdCompressor(**options).compress(data)

    too_large = frame(b"{" + bytes(packing.MAX_CANONICAL_BYTES))
    assert packing.unpack(too_large) == too_large
    at_the_limit = frame(b"{" + bytes(packing.MAX_CANONICAL_BYTES - 1))
    assert packing.unpack(at_the_limit) == b"{" + bytes(packing.MAX_CANONICAL_BYTES - 1)
    unsized = frame(b'{"kind":"access"}', write_content_size=False)
    assert packing.unpack(unsized) == unsized


async def _stored(url: str, customer_id: str) -> list[bytes]:
    """The entry table's canonical column as stored, without the column type's unpacking."""
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(text(
                "SELECT canonical FROM ledger_entries WHERE customer_id = :c ORDER BY customer_seq"),
                {"c": customer_id})
            return [bytes(row[0]) for row in rows]
    finally:
        await engine.dispose()


async def test_the_database_holds_packed_bytes_and_the_api_shows_the_canonical_ones(
    backend: Backend, client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    events = [access_event(customer_id, clip_id=f"clip-{n}") for n in range(5)]
    assert (await client.post("/v1/accesses:batch", json={"events": events},
                              headers=tokens.service())).status_code == 201  # COPY on PostgreSQL
    assert (await client.post("/v1/accesses", json=access_event(customer_id),
                              headers=tokens.service())).status_code == 201
    stored = await _stored(backend.settings.resolved_database_url, customer_id)
    chain = await fetch_chain(client, customer_id, tokens.regulator())
    shown = [base64.b64decode(item["canonical"]) for item in chain]
    assert len(stored) == len(shown) == 6
    for value, canonical in zip(stored, shown, strict=True):
        assert value[0] == packing.DICTIONARY_1 and len(value) < len(canonical) / 2
        assert packing.unpack(value) == canonical
        assert canonical.startswith(b'{"action":')


async def test_a_row_stored_as_plain_canonical_bytes_still_reads(settings: Settings) -> None:
    """As every row written before packing is: a rolling upgrade never rewrites them."""
    app = create_app(settings)
    tokens, customer_id = Tokens(app), "cust-stored-plain"
    async for client in serve(app):
        assert (await client.post("/v1/accesses", json=access_event(customer_id),
                                  headers=tokens.service())).status_code == 201
        [packed] = await _stored(settings.resolved_database_url, customer_id)
        plain = packing.unpack(packed)
        engine = make_engine(settings.resolved_migration_database_url)  # the tables' owner
        try:
            async with engine.begin() as connection:
                sqlite = connection.dialect.name == "sqlite"
                await connection.execute(text(
                    "DROP TRIGGER ledger_entries_no_update" if sqlite else
                    "ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_no_change"))
                await connection.execute(text("UPDATE ledger_entries SET canonical = :plain"),
                                         {"plain": plain})
        finally:
            await engine.dispose()
        assert await _stored(settings.resolved_database_url, customer_id) == [plain]
        chain = await fetch_chain(client, customer_id, tokens.regulator())
    assert base64.b64decode(chain[0]["canonical"]) == plain
    assert_chain_intact(chain)
