"""Complete Merkle tiles stored a row each (migration 0015), for every fourth level of nodes only
(0020), on both backends: the log serves the same tree from tiles, nodes hashed up from them and
node rows alike, and the database lets a node row go only once a tile holds its hash, or (checked
on PostgreSQL) the hashes it is made of."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from service.db import make_engine
from service.ledger import audit, merkle
from service.ledger.checkpoint import parse_verifier_key
from service.main import create_app
from service.settings import Settings
from tests.conftest import Tokens, serve
from tests.factories import access_event
from tests.servers import record_integrated
from tests.tlog.test_log import signed_checkpoint

# Passes of these sizes complete tiles within one pass and across passes.
BATCHES = (1, 200, 1, 300, 77, 1)


async def _query(settings: Settings, statement: str, **params: Any) -> list[Any]:
    return await _run(settings.resolved_database_url, [statement], params)


async def _run(url: str, statements: list[str], params: dict[str, Any]) -> list[Any]:
    """The statements in one transaction; the last one's rows."""
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            for statement in statements:
                result = await connection.execute(text(statement), params)
            return list(result.all()) if result.returns_rows else []
    finally:
        await engine.dispose()


async def _leaves_from_tiles(client: httpx.AsyncClient, size: int) -> list[bytes]:
    leaves: list[bytes] = []
    for tile in range(0, (size + merkle.TILE_WIDTH - 1) // merkle.TILE_WIDTH):
        width = min(merkle.TILE_WIDTH, size - tile * merkle.TILE_WIDTH)
        response = await client.get(f"/v1/log/{merkle.tile_path(0, tile, width)}")
        assert response.status_code == 200, response.text
        assert len(response.content) == width * merkle.HASH_SIZE
        leaves += [response.content[i:i + 32] for i in range(0, len(response.content), 32)]
    return leaves


async def test_complete_tiles_are_rows_and_the_log_serves_one_tree(settings: Settings) -> None:
    app = create_app(settings)
    tokens = Tokens(app)
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    async for client in serve(app):
        for count in BATCHES:
            await record_integrated(client, [access_event(customer) for _ in range(count)],
                                    tokens.service(), tokens.regulator())
        checkpoint = await signed_checkpoint(client)
        size = checkpoint.size
        assert size > 2 * merkle.TILE_WIDTH
        # The level-0 tiles, full ones from tile rows and the partial one from node rows, are every
        # leaf of the signed tree.
        leaves = await _leaves_from_tiles(client, size)
        assert merkle.root_from_leaf_hashes(leaves) == checkpoint.root_hash
        full = size // merkle.TILE_WIDTH
        level_one = await client.get(f"/v1/log/{merkle.tile_path(1, 0, full)}")
        assert level_one.content == b"".join(
            merkle.root_from_leaf_hashes(leaves[i * 256:(i + 1) * 256]) for i in range(full))
        for index in (0, 1, 255, 256, 300, 511, 512, size - 1):
            proof = (await client.get("/v1/log/proof/inclusion",
                                      params={"log_index": index, "tree_size": size})).json()
            merkle.verify_inclusion(leaves[index], index, size, [bytes.fromhex(h) for h in proof["hashes"]],
                                    checkpoint.root_hash)
        for first in (1, 255, 256, 257, 300, 512, size - 1):
            proof = (await client.get("/v1/log/proof/consistency",
                                      params={"first": first, "second": size})).json()
            merkle.verify_consistency(first, size, [bytes.fromhex(h) for h in proof["hashes"]],
                                      merkle.root_from_leaf_hashes(leaves[:first]), checkpoint.root_hash)
        # A customer's entry proof, through the entry API, verifies too.
        chain = (await client.get(f"/v1/customers/{customer}/entries", params={"limit": 500},
                                  headers=tokens.regulator())).json()["items"]
        for item in (chain[0], chain[len(chain) // 2]):
            proof = (await client.get("/v1/log/proof/inclusion",
                                      params={"log_index": item["log_index"], "tree_size": size})).json()
            assert bytes.fromhex(proof["leaf_hash"]) == leaves[item["log_index"]]
    # Stored: each complete tile of levels 0, 4, 8, ... is one row; node rows only of the nodes
    # whose tile is not complete.
    stored_tiles = {(row.level, row.tile_index) for row in await _query(
        settings, "SELECT level, tile_index FROM merkle_tiles")}
    levels = range(size.bit_length())
    assert stored_tiles == {(level, tile) for level in levels if level % 4 == 0
                            for tile in range((size >> level) // 256)}
    node_rows = await _query(settings, "SELECT level, node_index FROM merkle_nodes")
    assert sorted(node_rows) == sorted(_untiled_nodes(size))


def _untiled_nodes(size: int) -> list[tuple[int, int]]:
    """The complete nodes of levels 0, 4, 8, ... in a tree of `size` leaves that no complete tile
    holds: the nodes of the levels between are not stored, but hashed up from those."""
    return [(level, index) for level in range(0, size.bit_length(), 4)
            for index in range((size >> level) >> 8 << 8, size >> level)]


async def test_a_node_row_leaves_only_once_a_tile_holds_its_hash(settings: Settings) -> None:
    app = create_app(settings)
    tokens = Tokens(app)
    async for client in serve(app):
        await record_integrated(client, [access_event(f"cust-{uuid.uuid4().hex[:8]}") for _ in range(300)],
                                tokens.service(), tokens.regulator())
        size = (await signed_checkpoint(client)).size
    held = (await _query(settings, "SELECT level, node_index, hash FROM merkle_nodes "
                                   "WHERE level = 0 ORDER BY node_index LIMIT 1"))[0]
    tile = (await _query(settings, "SELECT hashes FROM merkle_tiles WHERE level = 0 AND tile_index = 0"))[0]
    leaves = [bytes(tile.hashes[i * 32:(i + 1) * 32]) for i in range(merkle.TILE_WIDTH)]
    refused = [
        (["DELETE FROM merkle_nodes WHERE level = 0 AND node_index = :i"], {"i": held.node_index}),
        (["DELETE FROM merkle_nodes"], {}),
        (["UPDATE merkle_nodes SET hash = :h WHERE level = 0 AND node_index = :i"],
         {"h": bytes(32), "i": held.node_index}),
        (["UPDATE merkle_tiles SET hashes = :h WHERE level = 0 AND tile_index = 0"], {"h": bytes(8192)}),
        (["DELETE FROM merkle_tiles WHERE level = 0"], {}),
        # A row put back for a tiled node, but with another hash, cannot leave either.
        (["INSERT INTO merkle_nodes (level, node_index, hash) VALUES (0, 5, :h)",
          "DELETE FROM merkle_nodes WHERE level = 0 AND node_index = 5"], {"h": bytes(32)}),
    ]
    if settings.resolved_database_url.startswith("postgresql"):
        # Nor one of a node the tile is hashed up to (SQLite, without SHA-256, lets it go: the audit
        # compares such rows with the leaves).
        refused.append((["INSERT INTO merkle_nodes (level, node_index, hash) VALUES (3, 1, :h)",
                         "DELETE FROM merkle_nodes WHERE level = 3 AND node_index = 1"], {"h": bytes(32)}))
    # The service's own role (on PostgreSQL it may delete node rows, no more), and the tables' owner.
    for url in {settings.resolved_database_url, settings.resolved_migration_database_url}:
        for statements, params in refused:
            with pytest.raises(DBAPIError) as error:
                await _run(url, statements, params)
            message = str(error.value).lower()
            assert any(reason in message for reason in (
                "append-only", "a tile holds its hash", "permission denied")), message
    assert sorted(await _query(settings, "SELECT level, node_index FROM merkle_nodes")) == sorted(
        _untiled_nodes(size))
    # A duplicate row of a node the tile holds or is hashed up to, with its own hash, may go (the
    # tile keeps it).
    for level, index, value in ((0, 5, leaves[5]), (3, 1, merkle.root_from_leaf_hashes(leaves[8:16])),
                                (2, 3, merkle.root_from_leaf_hashes(leaves[12:16]))):
        rows = await _query(settings, "INSERT INTO merkle_nodes (level, node_index, hash) "
                                      "VALUES (:l, :i, :h) RETURNING level", l=level, i=index, h=value)
        assert len(rows) == 1
        gone = await _query(settings, "DELETE FROM merkle_nodes WHERE level = :l AND node_index = :i "
                                      "RETURNING level", l=level, i=index)
        assert len(gone) == 1
    # A row the service's role slips in for a tiled node, or for one of a level between, changes no
    # proof: those are read from the tile, or hashed up from it.
    await _query(settings, "INSERT INTO merkle_nodes (level, node_index, hash) VALUES (0, 9, :h), (3, 1, :h)",
                 h=bytes(32))
    async for client in serve(app):
        checkpoint = await signed_checkpoint(client)
        proof = (await client.get("/v1/log/proof/inclusion",
                                  params={"log_index": 9, "tree_size": checkpoint.size})).json()
    merkle.verify_inclusion(leaves[9], 9, checkpoint.size, [bytes.fromhex(h) for h in proof["hashes"]],
                            checkpoint.root_hash)


async def test_the_audit_finds_nothing_in_an_untouched_log_whatever_its_batches(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whole tiles and the rows after them, compared in batches cut short: nothing differs."""
    app = create_app(settings)
    tokens = Tokens(app)
    async for client in serve(app):
        await record_integrated(client, [access_event(f"cust-{n % 7}") for n in range(600)],
                                tokens.service(), tokens.regulator())
        verifier = parse_verifier_key((await client.get("/v1/log/key")).text.strip())
    monkeypatch.setattr(audit, "CHUNK", 64)
    monkeypatch.setattr(audit, "NODES_PER_QUERY", 100)
    engine = make_engine(settings.resolved_database_url)
    try:
        async with engine.connect() as connection:
            for name in audit.PASSES:
                assert [str(finding) async for finding in audit.run_pass(name, connection, verifier)] == []
    finally:
        await engine.dispose()
