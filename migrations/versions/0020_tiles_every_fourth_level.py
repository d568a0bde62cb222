"""Merkle tiles stored for every fourth level of nodes only (0, 4, 8, ...: those C2SP tlog-tiles
serves, and the levels halfway between them). A node of the three levels between is hashed up, when
it is read, from the tile of the level below it that holds its hashes (at most 8 of them). Every
level was tiled, and each level takes as much room as all those above it: `merkle_tiles` shrinks
to 1/16 more than level 0's tiles alone, 36 bytes an entry where it took 68.

The tiles of the other levels are deleted, where the tiles below them are all stored (a damaged
tree keeps its rows as they are, for `seenby audit` to name), and so are the node rows those tiles
now stand for (on PostgreSQL only those with the hash the tile gives: a damaged row stays too),
and those the node rows under them give (the release hashes them up from those).
`merkle_nodes` still lets a node go only once a tile stands for it: on PostgreSQL the guard hashes
the node up from the tile and compares (`seenby_tile_subtree_hash`); SQLite's, which has no
SHA-256, lets a node above a stored level go once the tile is there, and `seenby audit` compares
the hashes.

The release before this one cannot read this layout (it looks for node hashes in tiles of their
own level) and its /readyz does not know this revision, so it would stay in rotation: apply this
with the previous release out of rotation (README, "PostgreSQL in production").

Undoing it hashes the levels between up from the tiles and node rows again: their complete tiles
become rows again, and the rest of their nodes node rows.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

_STEP, _WIDTH, _HASH = 4, 256, 32  # every fourth level stored
_TILES_PER_BATCH = 64

_SUBTREE_HASH_FUNCTION = """
CREATE OR REPLACE FUNCTION seenby_tile_subtree_hash(hashes bytea, first integer, height integer)
RETURNS bytea LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    below bytea[] := ARRAY(SELECT substr(hashes, (first + k) * 32 + 1, 32)
                           FROM generate_series(0, (1 << height) - 1) AS k ORDER BY k);
BEGIN
    FOR step IN 1 .. height LOOP
        below := ARRAY(SELECT sha256('\\x01'::bytea || below[2 * k + 1] || below[2 * k + 2])
                       FROM generate_series(0, (1 << (height - step)) - 1) AS k ORDER BY k);
    END LOOP;
    RETURN below[1];
END $$
"""
_GUARD_FUNCTION = """
CREATE OR REPLACE FUNCTION seenby_only_tiled_nodes_leave() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        WITH placed AS MATERIALIZED (
            SELECT hash, level - level % 4 AS tile_level, level % 4 AS height,
                   node_index << (level % 4) AS first FROM gone
        ), tiled AS MATERIALIZED (
            SELECT level, tile_index, hashes || ''::bytea AS hashes FROM merkle_tiles
            WHERE (level, tile_index) IN (SELECT DISTINCT tile_level, first >> 8 FROM placed)
        )
        SELECT 1 FROM placed p
        LEFT JOIN tiled t ON t.level = p.tile_level AND t.tile_index = p.first >> 8
        WHERE t.hashes IS NULL OR p.hash <> CASE
            WHEN p.height = 0 THEN substr(t.hashes, CAST((p.first & 255) * 32 + 1 AS integer), 32)
            ELSE seenby_tile_subtree_hash(t.hashes, CAST(p.first & 255 AS integer), p.height) END
    ) THEN
        RAISE EXCEPTION 'merkle_nodes: a node leaves only once a tile holds its hash or those it is made of'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END $$
"""
_SQLITE_GUARD = (
    "CREATE TRIGGER merkle_nodes_only_tiled_leave BEFORE DELETE ON merkle_nodes "
    "WHEN NOT EXISTS (SELECT 1 FROM merkle_tiles t WHERE t.level = OLD.level - OLD.level % 4 "
    "AND t.tile_index = (OLD.node_index << (OLD.level % 4)) >> 8 "
    "AND (OLD.level % 4 > 0 OR substr(t.hashes, (OLD.node_index & 255) * 32 + 1, 32) = OLD.hash)) "
    "BEGIN SELECT RAISE(ABORT, 'merkle_nodes: a node leaves only once a tile holds its hash "
    "or those it is made of'); END"
)
# As 0015 made them.
_PG_GUARD_FUNCTION_0015 = """
CREATE OR REPLACE FUNCTION seenby_only_tiled_nodes_leave() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        WITH tiled AS MATERIALIZED (
            SELECT level, tile_index, hashes || ''::bytea AS hashes FROM merkle_tiles
            WHERE (level, tile_index) IN (SELECT DISTINCT level, node_index >> 8 FROM gone)
        )
        SELECT 1 FROM gone g
        LEFT JOIN tiled t ON t.level = g.level AND t.tile_index = g.node_index >> 8
        WHERE t.hashes IS NULL
           OR substr(t.hashes, CAST((g.node_index & 255) * 32 + 1 AS integer), 32) <> g.hash
    ) THEN
        RAISE EXCEPTION 'merkle_nodes: a node leaves only once a tile holds its hash'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END $$
"""
_SQLITE_GUARD_0015 = (
    "CREATE TRIGGER merkle_nodes_only_tiled_leave BEFORE DELETE ON merkle_nodes "
    "WHEN NOT EXISTS (SELECT 1 FROM merkle_tiles t WHERE t.level = OLD.level "
    "AND t.tile_index = OLD.node_index >> 8 "
    "AND substr(t.hashes, (OLD.node_index & 255) * 32 + 1, 32) = OLD.hash) "
    "BEGIN SELECT RAISE(ABORT, 'merkle_nodes: a node leaves only once a tile holds its hash'); END"
)
_SQLITE_TILES_NO_DELETE = (
    "CREATE TRIGGER merkle_tiles_no_delete BEFORE DELETE ON merkle_tiles "
    "BEGIN SELECT RAISE(ABORT, 'merkle_tiles is append-only'); END"
)

# A tile of a level between stands on 2**height tiles of the stored level below it.
_STANDS_ON_STORED_TILES = (
    "(SELECT count(*) FROM merkle_tiles b WHERE b.level = merkle_tiles.level - merkle_tiles.level % 4 "
    "AND b.tile_index BETWEEN merkle_tiles.tile_index << (merkle_tiles.level % 4) "
    "AND ((merkle_tiles.tile_index + 1) << (merkle_tiles.level % 4)) - 1) = 1 << (merkle_tiles.level % 4)"
)
_NODE_ROWS_TILED_BELOW = (
    "DELETE FROM merkle_nodes WHERE level % 4 <> 0 AND EXISTS (SELECT 1 FROM merkle_tiles t "
    "WHERE t.level = merkle_nodes.level - merkle_nodes.level % 4 "
    "AND t.tile_index = (merkle_nodes.node_index << (merkle_nodes.level % 4)) >> 8{same_hash})"
)
# On PostgreSQL, where the guard would refuse a damaged row and so stop the upgrade.
_SAME_HASH = (
    " AND seenby_tile_subtree_hash(t.hashes, CAST((merkle_nodes.node_index << (merkle_nodes.level % 4)) & 255"
    " AS integer), merkle_nodes.level % 4) = merkle_nodes.hash"
)


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.execute(_SUBTREE_HASH_FUNCTION)
        op.execute(_GUARD_FUNCTION)
        op.execute("ALTER TABLE merkle_tiles DISABLE TRIGGER merkle_tiles_no_change")
    else:
        op.execute("DROP TRIGGER merkle_nodes_only_tiled_leave")
        op.execute(_SQLITE_GUARD)
        op.execute("DROP TRIGGER merkle_tiles_no_delete")
    op.execute(f"DELETE FROM merkle_tiles WHERE level % 4 <> 0 AND {_STANDS_ON_STORED_TILES}")
    if postgresql:
        op.execute("ALTER TABLE merkle_tiles ENABLE TRIGGER merkle_tiles_no_change")
    else:
        op.execute(_SQLITE_TILES_NO_DELETE)
    op.execute(_NODE_ROWS_TILED_BELOW.format(same_hash=_SAME_HASH if postgresql else ""))
    _drop_rows_hashed_up_from_rows(op.get_bind(), postgresql)


def _drop_rows_hashed_up_from_rows(connection: sa.Connection, postgresql: bool) -> None:
    """The nodes of the levels between in tiles not yet complete, which this release hashes up from
    the node rows under them: the rows that agree with those go (past the guard, which wants a
    tile), a damaged one stays."""
    between = connection.execute(sa.text(
        "SELECT level, node_index, hash FROM merkle_nodes WHERE level % 4 <> 0")).all()
    stored = {(level, index): bytes(value) for level, index, value in connection.execute(sa.text(
        "SELECT level, node_index, hash FROM merkle_nodes WHERE level % 4 = 0"))}

    def hash_of(level: int, index: int) -> bytes | None:
        if level % _STEP == 0:
            return stored.get((level, index))
        left, right = hash_of(level - 1, 2 * index), hash_of(level - 1, 2 * index + 1)
        return None if left is None or right is None else _node_hash(left, right)

    agreeing = [{"level": level, "node_index": index} for level, index, value in between
                if hash_of(level, index) == bytes(value)]
    if not agreeing:
        return
    if postgresql:
        op.execute("ALTER TABLE merkle_nodes DISABLE TRIGGER merkle_nodes_only_tiled_leave")
    else:
        op.execute("DROP TRIGGER merkle_nodes_only_tiled_leave")
    connection.execute(sa.text("DELETE FROM merkle_nodes WHERE level = :level AND node_index = :node_index"),
                       agreeing)
    if postgresql:
        op.execute("ALTER TABLE merkle_nodes ENABLE TRIGGER merkle_nodes_only_tiled_leave")
    else:
        op.execute(_SQLITE_GUARD)


def downgrade() -> None:
    connection = op.get_bind()
    _tile_the_levels_between(connection)
    _hash_up_node_rows(connection)
    if connection.dialect.name == "postgresql":
        op.execute(_PG_GUARD_FUNCTION_0015)
        op.execute("DROP FUNCTION seenby_tile_subtree_hash(bytea, integer, integer)")
    else:
        op.execute("DROP TRIGGER merkle_nodes_only_tiled_leave")
        op.execute(_SQLITE_GUARD_0015)


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _tile_the_levels_between(connection: sa.Connection) -> None:
    """Hash the three levels above each stored level up from its tiles, a batch of tiles at a time:
    each complete tile of them becomes a row, and the rest of their nodes node rows."""
    tiled_levels = [row[0] for row in connection.execute(sa.text(
        "SELECT DISTINCT level FROM merkle_tiles WHERE level % 4 = 0 ORDER BY level"))]
    for tile_level in tiled_levels:
        waiting: dict[int, dict[int, bytes]] = defaultdict(dict)  # level -> node index -> hash
        batch = {"level": tile_level, "after": -1, "batch": _TILES_PER_BATCH}
        while rows := connection.execute(sa.text(
            "SELECT tile_index, hashes FROM merkle_tiles WHERE level = :level AND tile_index > :after "
            "ORDER BY tile_index LIMIT :batch"), batch,
        ).all():
            for tile_index, hashes in rows:
                below = [bytes(hashes[i * _HASH:(i + 1) * _HASH]) for i in range(_WIDTH)]
                for height in range(1, _STEP):
                    below = [_node_hash(below[i], below[i + 1]) for i in range(0, len(below), 2)]
                    waiting[tile_level + height].update(enumerate(below, (tile_index << 8) >> height))
            batch["after"] = rows[-1].tile_index
            _write_complete_tiles(connection, waiting)
        _write_node_rows(connection, waiting)


def _hash_up_node_rows(connection: sa.Connection) -> None:
    """The nodes of the levels between in tiles not yet complete, a row each again, hashed up from
    the node rows under them."""
    under: dict[int, dict[int, bytes]] = defaultdict(dict)
    for level, index, value in connection.execute(sa.text(
            "SELECT level, node_index, hash FROM merkle_nodes WHERE level % 4 = 0")):
        under[level][index] = bytes(value)
    rows = []
    for stored_level, below in under.items():
        for height in range(1, _STEP):
            below = {index // 2: _node_hash(value, below[index + 1])
                     for index, value in below.items() if index % 2 == 0 and index + 1 in below}
            rows += [{"level": stored_level + height, "node_index": index, "hash": value}
                     for index, value in sorted(below.items())]
    if rows:
        connection.execute(sa.text(_INSERT_NODE), rows)


_INSERT_TILE = (
    "INSERT INTO merkle_tiles (level, tile_index, hashes) SELECT :level, :tile_index, :hashes "
    "WHERE NOT EXISTS (SELECT 1 FROM merkle_tiles WHERE level = :level AND tile_index = :tile_index)"
)
_INSERT_NODE = (
    "INSERT INTO merkle_nodes (level, node_index, hash) SELECT :level, :node_index, :hash "
    "WHERE NOT EXISTS (SELECT 1 FROM merkle_nodes WHERE level = :level AND node_index = :node_index)"
)


def _write_complete_tiles(connection: sa.Connection, waiting: dict[int, dict[int, bytes]]) -> None:
    tiles = []
    for level, hashes in waiting.items():
        for tile_index in sorted({index >> 8 for index in hashes}):
            span = range(tile_index << 8, (tile_index + 1) << 8)
            if all(index in hashes for index in span):
                tiles.append({"level": level, "tile_index": tile_index,
                              "hashes": b"".join(hashes.pop(index) for index in span)})
    if tiles:
        connection.execute(sa.text(_INSERT_TILE), tiles)


def _write_node_rows(connection: sa.Connection, waiting: dict[int, dict[int, bytes]]) -> None:
    rows = [{"level": level, "node_index": index, "hash": value}
            for level, hashes in waiting.items() for index, value in sorted(hashes.items())]
    if rows:
        connection.execute(sa.text(_INSERT_NODE), rows)
