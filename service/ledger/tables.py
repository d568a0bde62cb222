"""Table models of the ledger: append-only entries, the identities kept apart, chain heads."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, String
from sqlmodel import Field, SQLModel

from service.db import tables_of
from service.ledger.compact_columns import HexBytes, UuidText
from service.ledger.merkle.hashing import HASH_SIZE
from service.ledger.merkle.tiles import TILE_WIDTH
from service.ledger.packing import PackedCanonical

# SQLite only auto-increments an INTEGER PRIMARY KEY (a rowid alias), not a BIGINT one.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# The entry table's columns that a domain fills from its entry's own fields, for reads to filter on
# (store.NewEntry.columns); every other column the store fills itself.
FILTER_COLUMNS = ("event_id", "request_digest", "clip_id", "occurred_at_us", "actor_type",
                  "actor_country", "actor_organization", "purpose", "action")

TILE_BYTES = TILE_WIDTH * HASH_SIZE

APPEND_ONLY_TABLES = ("ledger_entries", "actor_identities", "log_leaves", "merkle_tiles", "checkpoints",
                      "index_leaves")


class LedgerEntry(SQLModel, table=True):
    """One entry; `canonical` is the source of truth (stored packed: packing.py), the other columns
    index it."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index("uq_ledger_entries_customer_seq", "customer_id", "customer_seq", unique=True),
        # Also (customer_id, kind, customer_seq) on SQLite only, and period indexes: migrations 0004, 0007.
        Index("ix_ledger_entries_customer_clip_seq", "customer_id", "clip_id", "customer_seq"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    customer_id: str = Field(sa_column=Column(String(128), nullable=False))
    customer_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    kind: str = Field(sa_column=Column(String(40), nullable=False))
    # Found through a hash index on PostgreSQL (migration 0009), a unique index on SQLite (0001).
    entry_hash: str = Field(sa_column=Column(HexBytes, nullable=False))
    # Empty since migration 0016 (the canonical bytes hold it); a copy in rows from before.
    prev_hash: str = Field(sa_column=Column(String(64), nullable=False))
    recorded_at_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    canonical: bytes = Field(sa_column=Column(PackedCanonical, nullable=False))
    flags: str = Field(default="", sa_column=Column(String(200), nullable=False, default=""))
    recorded_by: str = Field(sa_column=Column(String(128), nullable=False))
    # Access entries only: the idempotency key, the digest of the body as sent, and filter columns.
    event_id: str | None = Field(default=None, sa_column=Column(UuidText, unique=True))
    request_digest: str | None = Field(default=None, sa_column=Column(HexBytes))
    clip_id: str | None = Field(default=None, sa_column=Column(String(128)))
    occurred_at_us: int | None = Field(default=None, sa_column=Column(BigInteger))
    actor_type: str | None = Field(default=None, sa_column=Column(String(16)))
    actor_country: str | None = Field(default=None, sa_column=Column(String(2)))
    actor_organization: str | None = Field(default=None, sa_column=Column(String(128)))
    purpose: str | None = Field(default=None, sa_column=Column(String(32)))
    action: str | None = Field(default=None, sa_column=Column(String(32)))


class ActorIdentity(SQLModel, table=True):
    """A human actor's employee id and commitment salt, readable only by regulators; keyed by its
    entry's id since migration 0018 (its hash before)."""

    __tablename__ = "actor_identities"

    entry_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    employee_id: str = Field(sa_column=Column(String(128), nullable=False))
    id_salt: str = Field(sa_column=Column(HexBytes, nullable=False))


class CustomerHead(SQLModel, table=True):
    """The tip of each customer's chain: the only mutable row a write touches. On PostgreSQL three
    quarters of each page stay free for the rows' next versions (migration 0019)."""

    __tablename__ = "customer_heads"

    customer_id: str = Field(sa_column=Column(String(128), primary_key=True))
    last_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    head_hash: str = Field(sa_column=Column(HexBytes, nullable=False))  # bytea since 0019


class IntegrationQueue(SQLModel, table=True):
    """Committed entries not yet in the Merkle log; written with the entry, emptied by the integrator."""

    __tablename__ = "integration_queue"

    entry_id: int = Field(sa_column=Column(BigId, primary_key=True))
    # Null only in rows queued by a release before 0005 (rolling upgrades): see tree_store.pending.
    leaf_hash: bytes | None = Field(default=None, sa_column=Column(LargeBinary(32)))
    recorded_at_us: int | None = Field(default=None, sa_column=Column(BigInteger))


class LogLeaf(SQLModel, table=True):
    """An entry's position in the Merkle log, given by the integrator under its lock."""

    __tablename__ = "log_leaves"

    log_index: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    entry_id: int = Field(sa_column=Column(BigId, nullable=False, unique=True))


class MerkleNode(SQLModel, table=True):
    """The hash of a complete perfect subtree (2**level leaves from index * 2**level): never changes.
    Only nodes of the stored levels (see MerkleTile) are written here, and held only until their
    tile is complete: the database lets a node go only once a tile holds its hash, or the hashes
    it is made of (0015, 0020)."""

    __tablename__ = "merkle_nodes"

    level: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    index: int = Field(sa_column=Column("node_index", BigInteger, primary_key=True, autoincrement=False))
    hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))


class MerkleTile(SQLModel, table=True):
    """The 256 complete nodes (level, 256 * tile_index ...) as one blob of their hashes in index order:
    a row of 8 KiB stored out of line, uncompressed, where 256 node rows took some 60 KiB. Only
    levels 0, 4, 8, ... are tiled (C2SP tlog-tiles serves 0, 8, 16, ...); a tile stands for the
    nodes of the three levels above it too, hashed up from it when read (migration 0020)."""

    __tablename__ = "merkle_tiles"

    level: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    tile_index: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hashes: bytes = Field(sa_column=Column(LargeBinary(TILE_BYTES), nullable=False))


class SignedCheckpoint(SQLModel, table=True):
    """Every checkpoint the log has signed, by tree size."""

    __tablename__ = "checkpoints"

    tree_size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    note: str = Field(sa_column=Column(String(4000), nullable=False))
    signed_at_us: int = Field(sa_column=Column(BigInteger, nullable=False))


# The Table of each model, for Core queries.
entries, identities, heads, queue, leaves, nodes, tiles, checkpoints = tables_of(
    LedgerEntry, ActorIdentity, CustomerHead, IntegrationQueue, LogLeaf, MerkleNode, MerkleTile,
    SignedCheckpoint)
