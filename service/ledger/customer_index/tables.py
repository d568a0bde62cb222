"""Table models of the customer index: its tree's nodes (the latest state) and its log leaves."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, LargeBinary, SmallInteger
from sqlmodel import Field, SQLModel

from service.db import tables_of


class CustomerIndexNode(SQLModel, table=True):
    """A non-empty subtree on some key's path, as of the latest index leaf: rewritten when a key
    below it changes. `prefix` is the keys' first `depth` bits, as an integer, in (depth + 7) // 8
    big-endian bytes; a subtree that holds one key keeps that key and its value."""

    __tablename__ = "customer_index_nodes"

    depth: int = Field(sa_column=Column(SmallInteger, primary_key=True, autoincrement=False))
    prefix: bytes = Field(sa_column=Column(LargeBinary(32), primary_key=True))
    hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    leaf_key: bytes | None = Field(default=None, sa_column=Column(LargeBinary(32)))
    leaf_value: bytes | None = Field(default=None, sa_column=Column(LargeBinary(32)))


class CustomerIndexUndo(SQLModel, table=True):
    """A stored node as it was before the pass whose index leaf is `covers` changed it (hash None: no
    node there before). Kept under a witness policy only, until the served checkpoint has moved past
    `covers`: the index as of an older leaf is the stored one with these put back (migration 0022)."""

    __tablename__ = "customer_index_undo"
    __table_args__ = (Index("ix_customer_index_undo_covers", "covers"),)

    depth: int = Field(sa_column=Column(SmallInteger, primary_key=True, autoincrement=False))
    prefix: bytes = Field(sa_column=Column(LargeBinary(32), primary_key=True))
    covers: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: bytes | None = Field(default=None, sa_column=Column(LargeBinary(32)))
    leaf_key: bytes | None = Field(default=None, sa_column=Column(LargeBinary(32)))
    leaf_value: bytes | None = Field(default=None, sa_column=Column(LargeBinary(32)))


class IndexLeaf(SQLModel, table=True):
    """A log leaf that commits to the index: the RFC 8785 bytes of {"kind": "customer_index", ...}."""

    __tablename__ = "index_leaves"

    log_index: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    canonical: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


index_nodes, index_undo, index_leaves = tables_of(CustomerIndexNode, CustomerIndexUndo, IndexLeaf)
