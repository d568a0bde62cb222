"""Complete Merkle tiles stored a row each: `merkle_tiles` holds the 256 nodes of a level that a
tile covers as one 8 KiB blob of their hashes (out of line, uncompressed), where 256 rows of
`merkle_nodes` took some 60 KiB with their index. `merkle_nodes` keeps only the nodes of tiles
not yet complete. Existing complete tiles are folded here.

`merkle_tiles` is append-only. `merkle_nodes` still refuses every UPDATE and TRUNCATE, and now
lets a node be deleted only when a tile already holds the same hash at its place, whoever asks.

A release before this one, still running while it is applied, leaves rotation (its /readyz wants
its own revision); its integrator, if it still leads, writes nodes a row each, which read as well.

Undoing it writes every tiled node back as a row and makes `merkle_nodes` append-only again.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from migrations.append_only import forbid_changes

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_WIDTH, _HASH = 256, 32
_TILES_PER_BATCH = 64

# Row by row on SQLite (its triggers have no transition tables). On PostgreSQL one check a
# statement; the CTE reads each tile touched once, whole (`|| ''` takes it out of line), rather than
# one out-of-line slice for every deleted row.
_SQLITE_GUARD = (
    "CREATE TRIGGER merkle_nodes_only_tiled_leave BEFORE DELETE ON merkle_nodes "
    "WHEN NOT EXISTS (SELECT 1 FROM merkle_tiles t WHERE t.level = OLD.level "
    "AND t.tile_index = OLD.node_index >> 8 "
    "AND substr(t.hashes, (OLD.node_index & 255) * 32 + 1, 32) = OLD.hash) "
    "BEGIN SELECT RAISE(ABORT, 'merkle_nodes: a node leaves only once a tile holds its hash'); END"
)
_PG_GUARD_FUNCTION = """
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
_PG_GUARD = (
    "CREATE TRIGGER merkle_nodes_only_tiled_leave AFTER DELETE ON merkle_nodes "
    "REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION seenby_only_tiled_nodes_leave()"
)


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "merkle_tiles",
        sa.Column("level", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("tile_index", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("hashes", sa.LargeBinary(_WIDTH * _HASH), nullable=False),
    )
    forbid_changes("merkle_tiles")
    if postgresql:
        # Random bytes never compress: skip the attempt, and let a slice be read alone.
        op.execute("ALTER TABLE merkle_tiles ALTER COLUMN hashes SET STORAGE EXTERNAL")
        op.execute("DROP TRIGGER merkle_nodes_no_change ON merkle_nodes")
        op.execute("CREATE TRIGGER merkle_nodes_no_update BEFORE UPDATE ON merkle_nodes "
                   "FOR EACH ROW EXECUTE FUNCTION seenby_append_only()")
        op.execute(_PG_GUARD_FUNCTION)
        op.execute(_PG_GUARD)
    else:
        op.execute("DROP TRIGGER merkle_nodes_no_delete")
        op.execute(_SQLITE_GUARD)
    _fold_complete_tiles(op.get_bind())


def _fold_complete_tiles(connection: sa.Connection) -> None:
    """Every level's complete tiles, a batch at a time: the tile rows, then the nodes they hold out."""
    levels = connection.execute(sa.text(
        "SELECT level, max(node_index) AS last FROM merkle_nodes GROUP BY level ORDER BY level")).all()
    for level, last in levels:
        complete = (last + 1) // _WIDTH
        for first_tile in range(0, complete, _TILES_PER_BATCH):
            low = first_tile * _WIDTH
            high = min(complete, first_tile + _TILES_PER_BATCH) * _WIDTH - 1
            span = {"level": level, "low": low, "high": high,
                    "first_tile": low // _WIDTH, "last_tile": high // _WIDTH}
            rows = connection.execute(sa.text(
                "SELECT node_index, hash FROM merkle_nodes WHERE level = :level "
                "AND node_index BETWEEN :low AND :high ORDER BY node_index"), span).all()
            by_index = {index: bytes(value) for index, value in rows}
            tiles = []
            for tile in range(low // _WIDTH, high // _WIDTH + 1):
                hashes = [by_index.get(index, b"") for index in range(tile * _WIDTH, (tile + 1) * _WIDTH)]
                if all(hashes):  # a damaged tree keeps its rows as they are, for the audit to name
                    tiles.append({"level": level, "tile_index": tile, "hashes": b"".join(hashes)})
            if not tiles:
                continue
            connection.execute(sa.text(
                "INSERT INTO merkle_tiles (level, tile_index, hashes) VALUES (:level, :tile_index, :hashes)"),
                tiles)
            connection.execute(sa.text(
                "DELETE FROM merkle_nodes WHERE level = :level AND node_index BETWEEN :low AND :high "
                "AND node_index / 256 IN (SELECT tile_index FROM merkle_tiles WHERE level = :level "
                "AND tile_index BETWEEN :first_tile AND :last_tile)"), span)


def downgrade() -> None:
    connection = op.get_bind()
    postgresql = connection.dialect.name == "postgresql"
    after: tuple[int, int] = (-1, -1)
    while rows := connection.execute(sa.text(
        "SELECT level, tile_index, hashes FROM merkle_tiles WHERE level > :level "
        "OR (level = :level AND tile_index > :tile) ORDER BY level, tile_index LIMIT :batch"),
        {"level": after[0], "tile": after[1], "batch": _TILES_PER_BATCH},
    ).all():
        connection.execute(sa.text("INSERT INTO merkle_nodes (level, node_index, hash) "
                                   "VALUES (:level, :node_index, :hash)"), [
            {"level": row.level, "node_index": row.tile_index * _WIDTH + offset,
             "hash": bytes(row.hashes[offset * _HASH:(offset + 1) * _HASH])}
            for row in rows for offset in range(_WIDTH)
        ])
        after = (rows[-1].level, rows[-1].tile_index)
    op.execute("DROP TRIGGER merkle_nodes_only_tiled_leave" + (" ON merkle_nodes" if postgresql else ""))
    op.execute("DROP TRIGGER merkle_nodes_no_update" + (" ON merkle_nodes" if postgresql else ""))
    if postgresql:
        op.execute("DROP FUNCTION seenby_only_tiled_nodes_leave()")
        op.execute("DROP TRIGGER merkle_nodes_no_truncate ON merkle_nodes")
    forbid_changes("merkle_nodes")
    op.drop_table("merkle_tiles")
