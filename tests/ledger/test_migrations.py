"""Upgrading a database with entries still waiting for the log, and entries queued by the previous
release during a rolling upgrade: they join the log, with the right leaves."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from service.actors import SALT_BYTES
from service.ledger import merkle, packing, store
from service.ledger.canonical import canonical_bytes
from service.ledger.checkpoint import parse_verifier_key
from service.ledger.merkle import root_from_leaf_hashes
from service.main import create_app
from service.migrate import alembic_config, upgrade
from service.settings import Settings
from service.verify import completeness
from tests.chains import assert_chain_intact, fetch_chain
from tests.conftest import Tokens, _create_database, base_settings, serve
from tests.factories import access_event
from tests.notices.harness import Receiver, webhook_settings
from tests.pg import free_port
from tests.servers import record_integrated, seenby_command, settings_env, wait_until_integrated
from tests.tlog.test_log import signed_checkpoint

WAITING = 3


async def _queue_entries_by_id(url: str, first_seq: int, count: int) -> list[bytes]:
    """Entries committed and queued by id alone, as releases before revision 0005 queue them."""
    canonicals = [canonical_bytes({"kind": "note", "customer_id": "cust-upgrade", "customer_seq": seq})
                  for seq in range(first_seq, first_seq + count)]
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        stored_as = connection.dialect.name == "postgresql" and (await connection.execute(text(
            "SELECT data_type FROM information_schema.columns"
            " WHERE table_name = 'ledger_entries' AND column_name = 'entry_hash'"))).scalar_one()
        hash_value = "decode(:hash, 'hex')" if stored_as == "bytea" else ":hash"  # bytea since 0017
        for seq, canonical in enumerate(canonicals, first_seq):
            entry_id = (await connection.execute(text(
                "INSERT INTO ledger_entries (customer_id, customer_seq, kind, entry_hash, prev_hash, "
                "recorded_at_us, canonical, flags, recorded_by) VALUES ('cust-upgrade', :seq, 'note', "
                f"{hash_value}, :prev, 1, :canonical, '', 'test') RETURNING id"
            ), {"seq": seq, "hash": hashlib.sha256(canonical).hexdigest(), "prev": "0" * 64,
                "canonical": canonical})).scalar_one()
            await connection.execute(text("INSERT INTO integration_queue (entry_id) VALUES (:id)"),
                                     {"id": entry_id})
    await engine.dispose()
    return canonicals


async def _owner_connection(settings: Settings) -> asyncpg.Connection:
    """A plain asyncpg connection as the tables' owner."""
    return await asyncpg.connect(
        settings.resolved_migration_database_url.replace("postgresql+asyncpg://", "postgresql://"))


async def _unmigrated(backend_name: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Settings for an empty database of its own: a SQLite file, or a PostgreSQL database with an
    owner and an app role."""
    if backend_name == "sqlite":
        return base_settings(tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/seenby.db")
    owner_url, app_url, _ = await _create_database(request.getfixturevalue("postgres_admin_url"))
    return base_settings(tmp_path, database_url=app_url, migration_database_url=owner_url)


async def _migrated(backend_name: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """The same database as `_unmigrated`, migrated to the head."""
    settings = await _unmigrated(backend_name, tmp_path, request)
    await asyncio.to_thread(upgrade, settings)  # Alembic runs its own event loop
    return settings


@dataclass(frozen=True)
class EmptyPostgres:
    """An empty PostgreSQL database of its own: its settings, its Alembic config, and a connection
    as the tables' owner."""

    settings: Settings
    config: Config
    owner: asyncpg.Connection


@pytest.fixture
async def empty_pg(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[EmptyPostgres]:
    settings = await _unmigrated("postgresql", tmp_path, request)
    connection = await _owner_connection(settings)
    try:
        yield EmptyPostgres(settings, alembic_config(settings.resolved_migration_database_url), connection)
    finally:
        await connection.close()


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"])
async def test_entries_queued_around_the_upgrade_join_the_log(
    backend_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = await _unmigrated(backend_name, tmp_path, request)
    url = settings.resolved_migration_database_url
    await asyncio.to_thread(command.upgrade, alembic_config(url), "0004")
    canonicals = await _queue_entries_by_id(url, 0, WAITING)
    await asyncio.to_thread(upgrade, settings)
    # A rolling upgrade: pods of the previous release go on queueing by id on the new schema.
    canonicals += await _queue_entries_by_id(url, WAITING, WAITING)

    app = create_app(settings)
    async for client in serve(app):
        # Every entry is in once the customer index, the log's last leaf, holds the last one's head.
        deadline = time.monotonic() + 10
        while (response := await client.get("/v1/customers/cust-upgrade/completeness",
                                            headers=Tokens(app).regulator())).status_code == 503 or (
                response.json()["head"] or {}).get("customer_seq") != len(canonicals) - 1:
            assert time.monotonic() < deadline, response.text
            await asyncio.sleep(0.05)
        checkpoint = await signed_checkpoint(client)
    index_leaves = await _index_leaves(url)
    assert max(index_leaves) == checkpoint.size - 1
    entries = iter(canonicals)
    in_log_order = [index_leaves[i] if i in index_leaves else next(entries) for i in range(checkpoint.size)]
    assert next(entries, None) is None
    assert checkpoint.root_hash == root_from_leaf_hashes(hashlib.sha256(b"\x00" + c).digest()
                                                         for c in in_log_order)


async def _index_leaves(url: str) -> dict[int, bytes]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT log_index, canonical FROM index_leaves"))
            return {row.log_index: bytes(row.canonical) for row in rows}
    finally:
        await engine.dispose()


@pytest.mark.parametrize(("table", "written"), [
    ("ledger_entries", store.ENTRY_COLUMNS),
    ("integration_queue", store.QUEUE_COLUMNS),
    ("actor_identities", store.IDENTITY_COLUMNS),
])
async def test_the_ledger_writes_every_column_of_the_migrated_tables(
    table: str, written: tuple[str, ...], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = await _unmigrated("sqlite", tmp_path, request)
    await asyncio.to_thread(upgrade, settings)
    engine = create_async_engine(settings.resolved_database_url)
    async with engine.connect() as connection:
        found = await connection.run_sync(lambda sync: inspect(sync).get_columns(table))
    columns = [column["name"] for column in found]
    await engine.dispose()
    assert sorted(columns) == sorted(written)


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"])
async def test_this_release_migrates_down_and_up_again(
    backend_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = await _unmigrated(backend_name, tmp_path, request)
    config = alembic_config(settings.resolved_migration_database_url)
    await asyncio.to_thread(upgrade, settings)
    await asyncio.to_thread(command.downgrade, config, "0004")
    await asyncio.to_thread(upgrade, settings)
    app = create_app(settings)
    async for client in serve(app):
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"])
async def test_a_log_from_before_the_customer_index_gets_one_with_its_next_entries(
    backend_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = await _migrated(backend_name, tmp_path, request)
    early, late = [f"cust-early-{n}" for n in range(5)], "cust-late"
    app = create_app(settings)
    tokens = Tokens(app)
    async for client in serve(app):
        await record_integrated(client, [access_event(c) for c in early * 2], tokens.service(),
                                tokens.regulator())
    # The log as a release before 0010 leaves it: integrated entries, no customer index.
    config = alembic_config(settings.resolved_migration_database_url)
    await asyncio.to_thread(command.downgrade, config, "0009")
    await asyncio.to_thread(upgrade, settings)
    app = create_app(settings)
    async for client in serve(app):
        response = await client.post("/v1/accesses", headers=tokens.service(), json=access_event(late))
        assert response.status_code == 201, response.text
        await wait_until_integrated(client, "", [late], tokens.regulator())
        verifier = parse_verifier_key((await client.get("/v1/log/key")).text.strip())
        for customer in [*early, late]:
            proof = (await client.get(f"/v1/customers/{customer}/completeness",
                                      headers=tokens.regulator())).json()
            chain = await fetch_chain(client, customer, tokens.regulator())
            assert proof["head"]["customer_seq"] == len(chain) - 1 == (0 if customer == late else 1)
            completeness(proof, chain, verifier, None)
        leaf = json.loads(base64.b64decode(proof["index"]["canonical"]))
        assert leaf["customers"] == len(early) + 1


async def test_a_half_built_index_is_rebuilt_when_0007_runs_again(empty_pg: EmptyPostgres) -> None:
    """A cancelled CREATE INDEX CONCURRENTLY leaves an INVALID index under the new name; running
    the migration again must rebuild it, not take it for done and drop the indexes it replaces."""
    settings, connection = empty_pg.settings, empty_pg.owner
    await asyncio.to_thread(command.upgrade, empty_pg.config, "0006")
    await _queue_entries_by_id(settings.resolved_migration_database_url, 0, 2)
    with pytest.raises(asyncpg.UniqueViolationError):  # fails half-way, as a cancelled build would
        await connection.execute(
            "CREATE UNIQUE INDEX CONCURRENTLY ix_ledger_entries_rare_kind_recorded_at "
            "ON ledger_entries (customer_id)")
    await asyncio.to_thread(upgrade, settings)
    indexes = {row["indexname"]: row["indexdef"] for row in await connection.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'ledger_entries'")}
    invalid = await connection.fetchval(
        "SELECT count(*) FROM pg_index WHERE indrelid = 'ledger_entries'::regclass AND NOT indisvalid")
    assert invalid == 0
    assert "WHERE" in indexes["ix_ledger_entries_rare_kind_recorded_at"]
    assert "brin" in indexes["brin_ledger_entries_recorded_at"]
    assert "ix_ledger_entries_kind_recorded_at" not in indexes


async def test_0008_makes_text_compare_byte_by_byte_on_postgresql_and_undoes_it(
    empty_pg: EmptyPostgres,
) -> None:
    connection = empty_pg.owner

    async def collations() -> set[str | None]:
        return {row["collation_name"] for row in await connection.fetch(
            "SELECT collation_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND data_type IN ('character varying', 'text')"
            " AND table_name <> 'alembic_version'")}

    await asyncio.to_thread(upgrade, empty_pg.settings)
    assert await collations() == {"C"}
    customer_ids = ["cust-b", "cust-B", "cust-a", "cust-é", "cust-Z"]
    await connection.executemany(
        "INSERT INTO customer_heads (customer_id, last_seq, head_hash) VALUES ($1, 0, $2)",
        [(c, bytes(32)) for c in customer_ids])  # head_hash: bytea since 0019
    ordered = [r[0] for r in await connection.fetch("SELECT customer_id FROM customer_heads ORDER BY 1")]
    assert ordered == sorted(customer_ids)  # Python's order, and SQLite's
    await asyncio.to_thread(command.downgrade, empty_pg.config, "0007")
    assert await collations() == {None}  # the database's default again


async def test_0009_finds_entries_by_a_hash_index_on_postgresql_and_undoes_it(
    empty_pg: EmptyPostgres,
) -> None:
    settings, config, connection = empty_pg.settings, empty_pg.config, empty_pg.owner

    async def entry_hash_indexes() -> dict[str, str]:
        return {row["indexname"]: row["indexdef"] for row in await connection.fetch(
            "SELECT indexname, indexdef FROM pg_indexes"
            " WHERE tablename = 'ledger_entries' AND indexdef LIKE '%(entry_hash)%'")}

    async def unique_constraints() -> set[str]:
        return {row["conname"] for row in await connection.fetch(
            "SELECT conname FROM pg_constraint"
            " WHERE conrelid = 'ledger_entries'::regclass AND contype = 'u'")}

    await asyncio.to_thread(command.upgrade, config, "0008")
    await _queue_entries_by_id(settings.resolved_migration_database_url, 0, 3)
    # A build cancelled half-way leaves an INVALID index under the new name.
    with pytest.raises(asyncpg.UniqueViolationError):
        await connection.execute("CREATE UNIQUE INDEX CONCURRENTLY ix_ledger_entries_entry_hash"
                                 " ON ledger_entries (customer_id)")
    await asyncio.to_thread(upgrade, settings)
    indexes = await entry_hash_indexes()
    assert list(indexes) == ["ix_ledger_entries_entry_hash"]
    assert "USING hash (entry_hash)" in indexes["ix_ledger_entries_entry_hash"]
    assert "ledger_entries_entry_hash_key" not in await unique_constraints()
    await connection.execute("SET enable_seqscan = off")
    wanted = await connection.fetchval("SELECT entry_hash FROM ledger_entries LIMIT 1")
    plan = "\n".join(row[0] for row in await connection.fetch(
        "EXPLAIN SELECT id FROM ledger_entries WHERE entry_hash = $1", wanted))
    assert "ix_ledger_entries_entry_hash" in plan

    await asyncio.to_thread(command.downgrade, config, "0008")
    assert list(await entry_hash_indexes()) == ["ledger_entries_entry_hash_key"]
    assert "ledger_entries_entry_hash_key" in await unique_constraints()
    invalid = await connection.fetchval(
        "SELECT count(*) FROM pg_index WHERE indrelid = 'ledger_entries'::regclass AND NOT indisvalid")
    assert invalid == 0


async def test_0009_waits_for_a_long_reader_without_holding_up_the_ledger(empty_pg: EmptyPostgres) -> None:
    """The constraint can only go under the table's exclusive lock. Behind a reader that holds the
    table (an export, an audit), a waiting ALTER would queue every other read and write behind it;
    0009 gives up each try after a second and tries again until the reader is done."""
    settings, reader = empty_pg.settings, empty_pg.owner
    await asyncio.to_thread(command.upgrade, empty_pg.config, "0008")
    await _queue_entries_by_id(settings.resolved_migration_database_url, 0, 3)
    other = await _owner_connection(settings)
    try:
        # Built beforehand, so that the upgrade goes straight to the constraint.
        await reader.execute(
            "CREATE INDEX ix_ledger_entries_entry_hash ON ledger_entries USING hash (entry_hash)")
        reader_done = reader.transaction()
        await reader_done.start()
        await reader.fetchval("SELECT count(*) FROM ledger_entries")
        upgrading = asyncio.create_task(asyncio.to_thread(upgrade, settings))
        await asyncio.sleep(2.5)  # more than one try
        assert not upgrading.done()
        # Another reader still gets through while the long one holds the table.
        assert await asyncio.wait_for(other.fetchval("SELECT count(*) FROM ledger_entries"), 10) == 3
        await reader_done.commit()
        await asyncio.wait_for(upgrading, 30)
        remaining = await other.fetchval(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'ledger_entries'::regclass AND contype = 'u'"
            " AND conname = 'ledger_entries_entry_hash_key'")
        assert remaining == 0
    finally:
        await other.close()


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"])
async def test_notices_still_packed_become_rows_when_0013_is_undone(
    backend_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = await _migrated(backend_name, tmp_path, request)
    nobody = Receiver(tmp_path / "receiver")  # never started: every delivery fails
    app = create_app(webhook_settings(settings, nobody, webhook_url=f"http://127.0.0.1:{free_port()}/hooks"))
    tokens = Tokens(app)
    async for client in serve(app):
        for batch in range(2):  # human accesses, unconsented: two notices each
            events = [access_event(f"cust-packed-{batch}-{n % 5}") for n in range(600)]
            response = await client.post("/v1/accesses:batch", json={"events": events},
                                         headers=tokens.service())
            assert response.status_code == 201, response.text
    engine = create_async_engine(settings.resolved_migration_database_url)
    try:
        async with engine.connect() as connection:
            packed = await connection.scalar(text("SELECT coalesce(sum(notices), 0) FROM notice_batches"))
        assert packed > 0
        config = alembic_config(settings.resolved_migration_database_url)
        await asyncio.to_thread(command.downgrade, config, "0012")
        async with engine.connect() as connection:
            rows = (await connection.execute(text(
                "SELECT count(*), count(DISTINCT entry_id), min(retry_until_us - created_at_us),"
                " max(state) FROM notices"))).one()
    finally:
        await engine.dispose()
    assert rows == (2400, 1200, 86_400 * 1_000_000, 0)
    await asyncio.to_thread(upgrade, settings)


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"])
async def test_packed_entries_are_stored_plain_again_when_0014_is_undone(
    backend_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = await _migrated(backend_name, tmp_path, request)
    app = create_app(settings)
    tokens = Tokens(app)
    async for client in serve(app):
        events = [access_event(f"cust-unpacked-{n % 7}") for n in range(40)]
        assert (await client.post("/v1/accesses:batch", json={"events": events},
                                  headers=tokens.service())).status_code == 201
        before = {customer: _hashes_and_bytes(await fetch_chain(client, customer, tokens.regulator()))
                  for customer in {event["customer_id"] for event in events}}
    engine = create_async_engine(settings.resolved_migration_database_url)
    try:
        config = alembic_config(settings.resolved_migration_database_url)
        await asyncio.to_thread(command.downgrade, config, "0013")
        async with engine.connect() as connection:
            stored = (await connection.execute(text("SELECT entry_hash, canonical FROM ledger_entries"))
                      ).all()
            # The append-only trigger is back.
            with pytest.raises(Exception, match="append-only"):
                await connection.execute(text("UPDATE ledger_entries SET flags = 'x'"))
    finally:
        await engine.dispose()
    assert len(stored) == 40
    assert all(bytes(canonical).startswith(b"{") and hashlib.sha256(canonical).hexdigest() == entry_hash
               for entry_hash, canonical in stored)
    await asyncio.to_thread(upgrade, settings)
    app = create_app(settings)
    async for client in serve(app):
        for customer, chain in before.items():
            assert _hashes_and_bytes(await fetch_chain(client, customer, tokens.regulator())) == chain


def _hashes_and_bytes(chain: list[dict]) -> list[tuple[str, str]]:
    return [(item["entry_hash"], item["canonical"]) for item in chain]


async def _tree_rows(url: str) -> tuple[dict[tuple[int, int], bytes], dict[tuple[int, int], bytes]]:
    """(tiles, node rows), each by (level, index)."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            nodes = {(row.level, row.node_index): bytes(row.hash) for row in await connection.execute(
                text("SELECT level, node_index, hash FROM merkle_nodes"))}
            tiles = {}
            if await connection.run_sync(lambda sync: inspect(sync).has_table("merkle_tiles")):
                tiles = {(row.level, row.tile_index): bytes(row.hashes) for row in await connection.execute(
                    text("SELECT level, tile_index, hashes FROM merkle_tiles"))}
    finally:
        await engine.dispose()
    return tiles, nodes


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"])
async def test_0015_folds_complete_tiles_and_undoing_it_gives_every_node_a_row_again(
    backend_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = await _migrated(backend_name, tmp_path, request)
    app = create_app(settings)
    tokens = Tokens(app)
    async for client in serve(app):
        for count in (300, 1, 260):
            await record_integrated(client, [access_event(f"cust-tiled-{n % 9}") for n in range(count)],
                                    tokens.service(), tokens.regulator())
        checkpoint = (await client.get("/v1/log/checkpoint")).text
    url = settings.resolved_migration_database_url
    config = alembic_config(url)
    await asyncio.to_thread(command.downgrade, config, "0019")  # every level tiled, as 0015 made it
    tiles, held = await _tree_rows(url)
    assert {(0, 0), (0, 1), (1, 0)} <= tiles.keys()
    every_node = {**held, **{(level, tile * 256 + i): hashes[i * 32:(i + 1) * 32]
                             for (level, tile), hashes in tiles.items() for i in range(256)}}
    await asyncio.to_thread(command.downgrade, config, "0014")
    assert await _tree_rows(url) == ({}, every_node)
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            with pytest.raises(Exception, match="append-only"):  # append-only again, as at 0014
                await connection.execute(text("DELETE FROM merkle_nodes WHERE level = 0 AND node_index = 0"))
    finally:
        await engine.dispose()
    await asyncio.to_thread(command.upgrade, config, "0019")
    assert await _tree_rows(url) == (tiles, held), "folded again, into the same tiles"
    await asyncio.to_thread(upgrade, settings)
    app = create_app(settings)
    async for client in serve(app):
        assert (await client.get("/v1/log/checkpoint")).text == checkpoint
        size = int(checkpoint.split("\n")[1])
        proof = (await client.get("/v1/log/proof/consistency", params={"first": 257, "second": size})).json()
        root = merkle.root_hash(257, every_node)
        merkle.verify_consistency(257, size, [bytes.fromhex(h) for h in proof["hashes"]], root,
                                  base64.b64decode(checkpoint.split("\n")[2]))


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"])
async def test_prev_hash_is_stored_in_the_canonical_bytes_only_and_copied_back_when_0016_is_undone(
    backend_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = await _migrated(backend_name, tmp_path, request)
    app = create_app(settings)
    tokens = Tokens(app)
    async for client in serve(app):
        events = [access_event(f"cust-linked-{n % 3}") for n in range(12)]
        await record_integrated(client, events, tokens.service(), tokens.regulator())
    url = settings.resolved_migration_database_url

    async def stored_links() -> list[tuple[str, str]]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                rows = (await connection.execute(text(
                    "SELECT prev_hash, canonical FROM ledger_entries ORDER BY id"))).all()
        finally:
            await engine.dispose()
        return [(row.prev_hash, json.loads(packing.unpack(bytes(row.canonical)))["prev_hash"])
                for row in rows]

    links = await stored_links()
    assert len(links) == 12 and {column for column, _ in links} == {""}
    await asyncio.to_thread(command.downgrade, alembic_config(url), "0015")
    copied = await stored_links()
    assert all(column == recorded and len(column) == 64 for column, recorded in copied)
    assert [recorded for _, recorded in copied] == [recorded for _, recorded in links]
    await asyncio.to_thread(upgrade, settings)
    app = create_app(settings)
    async for client in serve(app):  # entries with and without a copy, in the same chains
        events = [access_event(f"cust-linked-{n % 3}") for n in range(6)]
        await record_integrated(client, events, tokens.service(), tokens.regulator())
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SEENBY_")}
    result = await asyncio.to_thread(subprocess.run, [*seenby_command(), "audit"], capture_output=True,
                                     text=True, timeout=120, env={**clean, **settings_env(settings)})
    assert result.returncode == 0 and "audit passed" in result.stdout, result.stdout + result.stderr


_IDENTITIES_BY_ID = ("SELECT e.entry_hash, a.id_salt FROM actor_identities a"
                     " JOIN ledger_entries e ON e.id = a.entry_id ORDER BY e.entry_hash")
_IDENTITIES_BY_HASH = "SELECT entry_hash, id_salt FROM actor_identities ORDER BY entry_hash"


async def _stored_compactly(
    url: str, identities: str = _IDENTITIES_BY_ID
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """(entry_hash, request_digest, event_id) of each entry and (entry_hash, id_salt) of each
    identity, as the driver reads them without the columns' types."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            entry_rows = (await connection.execute(text(
                "SELECT entry_hash, request_digest, event_id FROM ledger_entries ORDER BY id"))).all()
            identity_rows = (await connection.execute(text(identities))).all()
    finally:
        await engine.dispose()
    return [tuple(row) for row in entry_rows], [tuple(row) for row in identity_rows]


def _as_text(rows: list[tuple[object, ...]]) -> list[tuple[str, ...]]:
    return [tuple(bytes(value).hex() if isinstance(value, bytes | memoryview) else str(value)
                  for value in row) for row in rows]


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"])
async def test_0017_stores_hashes_salts_and_event_ids_compactly_on_postgresql_and_undoing_it_gives_text(
    backend_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = await _migrated(backend_name, tmp_path, request)
    url = settings.resolved_migration_database_url
    customers = [f"cust-hex-{n}" for n in range(3)]
    events = [access_event(customers[n % 3]) for n in range(12)]
    events[0]["event_id"] = events[0]["event_id"].upper()  # one UUID however it is spelt
    app = create_app(settings)
    tokens = Tokens(app)
    async for client in serve(app):
        await record_integrated(client, events, tokens.service(), tokens.regulator())
        before = {customer: await fetch_chain(client, customer, tokens.regulator()) for customer in customers}
        shown = before[customers[0]][0]
        found = await client.get(f"/v1/customers/{customers[0]}/entries/{shown['entry_hash']}",
                                 headers=tokens.regulator())
        assert found.status_code == 200 and found.json()["entry_hash"] == shown["entry_hash"]
        assert found.json()["actor"]["id_salt"] == shown["actor"]["id_salt"]
        replayed = await client.post("/v1/accesses", json=events[0], headers=tokens.service())
        assert replayed.status_code == 200 and replayed.json()["entry_hash"] == shown["entry_hash"]

    entry_rows, identity_rows = await _stored_compactly(url)
    assert len(entry_rows) == 12 and len(identity_rows) == 12
    postgresql = backend_name == "postgresql"
    stored_as, per_byte = (bytes, 1) if postgresql else (str, 2)
    assert all(isinstance(value, stored_as) and len(value) == 32 * per_byte  # type: ignore[arg-type]
               for row in entry_rows for value in row[:2])
    assert all(isinstance(value, stored_as) and len(value) == size * per_byte  # type: ignore[arg-type]
               for row in identity_rows for value, size in zip(row, (32, SALT_BYTES), strict=True))
    assert all(not isinstance(event_id, str) if postgresql else len(event_id) == 36  # type: ignore[arg-type]
               for _, _, event_id in entry_rows)
    shown_items = [item for chain in before.values() for item in chain]
    assert {(entry_hash, event_id) for entry_hash, _, event_id in _as_text(entry_rows)} == {
        (item["entry_hash"], item["event_id"].lower()) for item in shown_items}, "the key: lower case"
    assert {item["event_id"] for item in shown_items} == {event["event_id"] for event in events}, "as sent"
    assert set(_as_text(identity_rows)) == {(item["entry_hash"], item["actor"]["id_salt"])
                                            for item in shown_items}
    assert len({item["actor"]["id_salt"] for item in shown_items}) == 12

    await asyncio.to_thread(command.downgrade, alembic_config(url), "0016")
    text_rows = await _stored_compactly(url, _IDENTITIES_BY_HASH)
    assert text_rows == (_as_text(entry_rows), _as_text(identity_rows)), "the same values, as text"
    await asyncio.to_thread(upgrade, settings)
    assert await _stored_compactly(url) == (entry_rows, identity_rows)
    app = create_app(settings)
    async for client in serve(app):
        assert {customer: await fetch_chain(client, customer, tokens.regulator())
                for customer in customers} == before
        objected = await client.post("/v1/me/objections", json={"entry_hash": shown["entry_hash"]},
                                     headers=tokens.customer(customers[0]))
        assert objected.status_code == 201, objected.text


async def _delete_past_the_trigger(url: str, statement: str) -> None:
    """As the tables' owner, with actor_identities' append-only trigger set aside for the statement."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                trigger = "TRIGGER actor_identities_no_change"
                await connection.execute(text(f"ALTER TABLE actor_identities DISABLE {trigger}"))
                await connection.execute(text(statement))
                await connection.execute(text(f"ALTER TABLE actor_identities ENABLE {trigger}"))
            else:
                trigger = (await connection.execute(text(
                    "SELECT sql FROM sqlite_master WHERE name = 'actor_identities_no_delete'"))).scalar_one()
                await connection.execute(text("DROP TRIGGER actor_identities_no_delete"))
                await connection.execute(text(statement))
                await connection.execute(text(trigger))
    finally:
        await engine.dispose()


async def _identity_columns(url: str) -> list[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: [column["name"] for column in inspect(sync).get_columns("actor_identities")])
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"])
async def test_0018_keys_identities_by_entry_id_refuses_orphans_and_undoing_it_keys_them_by_hash(
    backend_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = await _migrated(backend_name, tmp_path, request)
    url = settings.resolved_migration_database_url
    customers = [f"cust-who-{n}" for n in range(3)]
    app = create_app(settings)
    tokens = Tokens(app)
    async for client in serve(app):
        await record_integrated(client, [access_event(customers[n % 3]) for n in range(9)],
                                tokens.service(), tokens.regulator())
        before = {customer: await fetch_chain(client, customer, tokens.regulator())
                  for customer in customers}
    assert all(item["actor"]["id"] and item["actor"]["id_salt"]
               for chain in before.values() for item in chain)
    assert await _identity_columns(url) == ["entry_id", "employee_id", "id_salt"]
    by_id = await _stored_compactly(url)

    config = alembic_config(url)
    await asyncio.to_thread(command.downgrade, config, "0017")
    assert await _identity_columns(url) == ["entry_hash", "employee_id", "id_salt"]
    assert await _stored_compactly(url, _IDENTITIES_BY_HASH) == by_id
    engine = create_async_engine(url)
    try:
        # An identity whose entry was deleted behind the ledger's back.
        async with engine.begin() as connection:
            await connection.execute(text(
                "INSERT INTO actor_identities (entry_hash, employee_id, id_salt) VALUES (:h, 'emp-x', :s)"),
                {"h": bytes(32) if backend_name == "postgresql" else "00" * 32,
                 "s": bytes(16) if backend_name == "postgresql" else "00" * 16})
        with pytest.raises(RuntimeError, match="1 actor identities have no entry"):
            await asyncio.to_thread(command.upgrade, config, "0018")
        async with engine.connect() as connection:
            version = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar()
            assert version == "0017"
            assert (await connection.execute(text("SELECT count(*) FROM actor_identities"))).scalar() == 10
            # The orphan stays: the ledger's own triggers refuse to take it away.
            with pytest.raises(Exception, match="append-only"):
                await connection.execute(text("DELETE FROM actor_identities WHERE employee_id = 'emp-x'"))
    finally:
        await engine.dispose()
    await _delete_past_the_trigger(url, "DELETE FROM actor_identities WHERE employee_id = 'emp-x'")
    await asyncio.to_thread(upgrade, settings)
    assert await _identity_columns(url) == ["entry_id", "employee_id", "id_salt"]
    assert await _stored_compactly(url) == by_id
    app = create_app(settings)
    async for client in serve(app):
        assert {customer: await fetch_chain(client, customer, tokens.regulator())
                for customer in customers} == before
        events = [access_event(customers[0]) for _ in range(2)]
        await record_integrated(client, events, tokens.service(), tokens.regulator())
        latest = (await fetch_chain(client, customers[0], tokens.regulator()))[-2:]
        assert [item["actor"]["id"] for item in latest] == [event["actor"]["id"] for event in events]


async def _heads(url: str) -> dict[str, tuple[int, str]]:
    """Each customer's stored head, its hash as hex however the column holds it."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            rows = (await connection.execute(text(
                "SELECT customer_id, last_seq, head_hash FROM customer_heads"))).all()
    finally:
        await engine.dispose()
    return {customer: (seq, *_as_text([(head,)])[0]) for customer, seq, head in rows}


async def _heads_pages(settings: Settings) -> int:
    connection = await _owner_connection(settings)
    try:
        return int(await connection.fetchval("SELECT pg_relation_size('customer_heads') / 8192"))
    finally:
        await connection.close()


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"])
async def test_0019_keeps_heads_small_and_their_updates_on_their_page_and_undoing_it_gives_text(
    backend_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = await _migrated(backend_name, tmp_path, request)
    url = settings.resolved_migration_database_url
    postgresql = backend_name == "postgresql"
    customers = [f"cust-head-{n:03}" for n in range(150)]
    app = create_app(settings)
    tokens = Tokens(app)

    async def write_to_every_customer(rounds: int) -> None:
        async for client in serve(app):
            for _ in range(rounds):
                response = await client.post("/v1/accesses:batch", headers=tokens.service(),
                                             json={"events": [access_event(c) for c in customers]})
                assert response.status_code == 201, response.text

    async def chains_end_at_their_heads() -> dict[str, tuple[int, str]]:
        heads = await _heads(url)
        async for client in serve(app):
            for customer in customers[::50]:
                chain = await fetch_chain(client, customer, tokens.regulator())
                assert_chain_intact(chain)
                assert heads[customer] == (chain[-1]["customer_seq"], chain[-1]["entry_hash"])
        return heads

    await write_to_every_customer(1)
    stored = await _heads(url)
    assert len(stored) == len(customers)
    if postgresql:
        connection = await _owner_connection(settings)
        try:
            column = await connection.fetchrow(
                "SELECT c.data_type, t.reloptions FROM information_schema.columns c"
                " JOIN pg_class t ON t.relname = c.table_name"
                " WHERE c.table_name = 'customer_heads' AND c.column_name = 'head_hash'")
            assert (column["data_type"], column["reloptions"]) == ("bytea", ["fillfactor=25"])
            assert {octet_length for (octet_length,) in await connection.fetch(
                "SELECT octet_length(head_hash) FROM customer_heads")} == {32}
        finally:
            await connection.close()
        spread_out = await _heads_pages(settings)
        await write_to_every_customer(2)
        assert await _heads_pages(settings) == spread_out, "each new version stays on its row's page"

    await asyncio.to_thread(command.downgrade, alembic_config(url), "0018")
    assert await _heads(url) == await chains_end_at_their_heads(), "the same heads, as text"
    if postgresql:
        packed = await _heads_pages(settings)
        assert packed * 2 <= spread_out, (packed, spread_out)
        connection = await _owner_connection(settings)
        try:  # two versions more of every head, as two writes would leave (this code writes bytea)
            for _ in range(2):
                await connection.execute("UPDATE customer_heads SET last_seq = last_seq")
        finally:
            await connection.close()
        assert await _heads_pages(settings) > packed, "full pages: new versions go elsewhere"

    await asyncio.to_thread(upgrade, settings)
    before = await chains_end_at_their_heads()
    await write_to_every_customer(1)
    after = await chains_end_at_their_heads()
    assert all(after[c][0] == before[c][0] + 1 for c in customers), "each chain goes on from its head"


def _leaves(tiles: dict[tuple[int, int], bytes], held: dict[tuple[int, int], bytes]) -> list[bytes]:
    """The leaf hashes: those of level 0's tiles, then those held as node rows."""
    tiled = [tiles[(0, tile)] for tile in range(len([key for key in tiles if key[0] == 0]))]
    return [hashes[i * 32:(i + 1) * 32] for hashes in tiled for i in range(256)] + [
        value for (level, _), value in sorted(held.items()) if level == 0]


def _every_complete_node(leaves: list[bytes]) -> dict[tuple[int, int], bytes]:
    """Each perfect subtree's hash, computed from the leaves alone."""
    return {(level, index): merkle.root_from_leaf_hashes(leaves[index << level:(index + 1) << level])
            for level in range(len(leaves).bit_length()) for index in range(len(leaves) >> level)}


def _laid_out(every_node: dict[tuple[int, int], bytes], tiled_levels: range
              ) -> tuple[dict[tuple[int, int], bytes], dict[tuple[int, int], bytes]]:
    """(tiles, node rows) as a store keeps the tree when it stores the given levels: every complete
    tile of them a row, and a node row for each other node of them (the levels between are hashed
    up from those)."""
    tiles = {(level, index >> 8): b"".join(every_node[(level, i)] for i in range(index, index + 256))
             for level, index in every_node if level in tiled_levels and index % 256 == 0
             and (level, index + 255) in every_node}

    return tiles, {(level, index): value for (level, index), value in every_node.items()
                   if level in tiled_levels and (level, index >> 8) not in tiles}


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"])
async def test_0020_tiles_every_fourth_level_and_undoing_it_tiles_every_level_again(
    backend_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = await _migrated(backend_name, tmp_path, request)
    app = create_app(settings)
    tokens = Tokens(app)
    async for client in serve(app):
        for count in (300, 1, 500, 260, 1000, 1000, 1000, 500):
            await record_integrated(client, [access_event(f"cust-tiers-{n % 9}") for n in range(count)],
                                    tokens.service(), tokens.regulator())
        checkpoint = await signed_checkpoint(client)
    url = settings.resolved_migration_database_url
    leaves = _leaves(*await _tree_rows(url))
    assert len(leaves) == checkpoint.size > 4096
    assert merkle.root_from_leaf_hashes(leaves) == checkpoint.root_hash
    every_node = _every_complete_node(leaves)
    every_fourth = _laid_out(every_node, range(0, 64, 4))
    assert await _tree_rows(url) == every_fourth
    assert set(every_fourth[0]) == {(0, tile) for tile in range(checkpoint.size // 256)} | {(4, 0)}

    config = alembic_config(url)
    await asyncio.to_thread(command.downgrade, config, "0019")
    every_level = _laid_out(every_node, range(64))
    assert await _tree_rows(url) == every_level
    assert {(1, 0), (1, 7), (2, 0), (3, 1), (4, 0)} <= every_level[0].keys()
    await asyncio.to_thread(upgrade, settings)
    assert await _tree_rows(url) == every_fourth

    app = create_app(settings)
    async for client in serve(app):
        assert await signed_checkpoint(client) == checkpoint
        size = checkpoint.size
        for index in (0, 7, 255, 256, 700, 4095, 4096, size - 1):
            proof = (await client.get("/v1/log/proof/inclusion",
                                      params={"log_index": index, "tree_size": size})).json()
            merkle.verify_inclusion(leaves[index], index, size, [bytes.fromhex(h) for h in proof["hashes"]],
                                    checkpoint.root_hash)
        for first in (3, 256, 600, 4097, size - 1):
            proof = (await client.get("/v1/log/proof/consistency",
                                      params={"first": first, "second": size})).json()
            merkle.verify_consistency(first, size, [bytes.fromhex(h) for h in proof["hashes"]],
                                      merkle.root_from_leaf_hashes(leaves[:first]), checkpoint.root_hash)
        # The tree goes on growing, a tile at a time, across the upgrade.
        await record_integrated(client, [access_event("cust-tiers-0") for _ in range(300)],
                                tokens.service(), tokens.regulator())
        grown = await signed_checkpoint(client)
    stored = await _tree_rows(url)
    leaves = _leaves(*stored)
    assert len(leaves) == grown.size and merkle.root_from_leaf_hashes(leaves) == grown.root_hash
    assert stored == _laid_out(_every_complete_node(leaves), range(0, 64, 4))


async def test_0020_keeps_a_damaged_node_row_on_postgresql_for_the_audit_to_name(
    empty_pg: EmptyPostgres,
) -> None:
    await asyncio.to_thread(upgrade, empty_pg.settings)
    app = create_app(empty_pg.settings)
    tokens = Tokens(app)
    async for client in serve(app):
        await record_integrated(client, [access_event(f"cust-scar-{n % 5}") for n in range(800)],
                                tokens.service(), tokens.regulator())
    await asyncio.to_thread(command.downgrade, empty_pg.config, "0019")
    # At 0019 level 1's first tile holds nodes 0..255; 256 and 257 are rows, which 0020 hashes up
    # from level 0's third tile instead.
    held = "SELECT node_index, hash FROM merkle_nodes WHERE level = 1 AND node_index IN (256, 257)"
    assert len(await empty_pg.owner.fetch(held)) == 2
    connection = empty_pg.owner
    await connection.execute("ALTER TABLE merkle_nodes DISABLE TRIGGER merkle_nodes_no_update")
    await connection.execute("UPDATE merkle_nodes SET hash = $1 WHERE level = 1 AND node_index = 256",
                             bytes(32))
    await connection.execute("ALTER TABLE merkle_nodes ENABLE TRIGGER merkle_nodes_no_update")
    await asyncio.to_thread(upgrade, empty_pg.settings)
    assert [tuple(row) for row in await connection.fetch(held)] == [(256, bytes(32))]
