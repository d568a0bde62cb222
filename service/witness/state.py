"""A witness's memory: for each log it witnesses, the latest checkpoint it cosigned, in a SQLite file
of its own. Reading the size a submission must start from and recording the new one are one
transaction that holds the file's write lock (BEGIN IMMEDIATE), so two submissions can never both
pass the old-size check against the same state (tlog-witness: "performed atomically")."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS witnessed (
    origin TEXT PRIMARY KEY,
    size TEXT NOT NULL,       -- decimal: a tree size may reach 2**64 - 1, past SQLite's integers
    root_hash BLOB NOT NULL,
    checkpoint TEXT NOT NULL, -- the note as submitted, the log's signature with it
    cosignature TEXT NOT NULL, -- the line this witness answered with
    cosigned_at INTEGER NOT NULL
)
"""


@dataclass(frozen=True)
class Witnessed:
    size: int
    root_hash: bytes
    cosigned_at: int  # the timestamp of the cosignature it answered with


class WitnessState:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connection() as connection:
            connection.execute(_SCHEMA)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")  # persisted before the cosignature leaves
            yield connection
        finally:
            connection.close()

    def latest(self, origin: str) -> Witnessed | None:
        with self._connection() as connection:
            return _read(connection, origin)

    def cosigned_note(self, origin: str) -> str | None:
        """For monitors: the last checkpoint cosigned for the log, as submitted, with this witness's
        cosignature after the signatures it came with."""
        with self._connection() as connection:
            row = connection.execute("SELECT checkpoint, cosignature FROM witnessed WHERE origin = ?",
                                     (origin,)).fetchone()
        return str(row[0]) + str(row[1]) if row else None

    @contextlib.contextmanager
    def advancing(self, origin: str) -> Iterator[tuple[Witnessed | None, _Advance]]:
        """The log's latest witnessed state, under the write lock until the block ends; whatever the
        block records with the given callable commits with it, or not at all if it raises."""
        with self._connection() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield _read(connection, origin), _Advance(connection, origin)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")


class _Advance:
    def __init__(self, connection: sqlite3.Connection, origin: str) -> None:
        self._connection, self._origin = connection, origin

    def __call__(self, size: int, root_hash: bytes, checkpoint: str, cosignature: str, now: int) -> None:
        self._connection.execute(
            "INSERT INTO witnessed (origin, size, root_hash, checkpoint, cosignature, cosigned_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (origin) DO UPDATE SET size = excluded.size,"
            " root_hash = excluded.root_hash, checkpoint = excluded.checkpoint,"
            " cosignature = excluded.cosignature, cosigned_at = excluded.cosigned_at",
            (self._origin, str(size), root_hash, checkpoint, cosignature, now),
        )


def _read(connection: sqlite3.Connection, origin: str) -> Witnessed | None:
    row = connection.execute("SELECT size, root_hash, cosigned_at FROM witnessed WHERE origin = ?",
                             (origin,)).fetchone()
    return Witnessed(int(row[0]), bytes(row[1]), int(row[2])) if row else None
