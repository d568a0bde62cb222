"""Table models of the log's side of witnessing: the cosignatures witnesses returned, and the
evidence of a witness that holds a conflicting view. Both append-only."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, Text
from sqlmodel import Field, SQLModel

from service.db import tables_of


class CheckpointCosignature(SQLModel, table=True):
    """A witness's cosignature line on the checkpoint of `tree_size`, verified before it was kept."""

    __tablename__ = "checkpoint_cosignatures"
    # The newest size each witness cosigned, an index lookup (migration 0021).
    __table_args__ = (Index("ix_checkpoint_cosignatures_witness_size", "witness", "tree_size"),)

    tree_size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    witness: str = Field(sa_column=Column(Text, primary_key=True))  # the policy's name for it
    line: str = Field(sa_column=Column(Text, nullable=False))
    cosigned_at: int = Field(sa_column=Column(BigInteger, nullable=False))  # its timestamp, POSIX seconds


class WitnessConflict(SQLModel, table=True):
    """A witness answered 422: it holds a checkpoint this log's is inconsistent with. A split view,
    or an attack on the log: what was sent and answered, kept as evidence."""

    __tablename__ = "witness_conflicts"

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    witness: str = Field(sa_column=Column(Text, nullable=False))
    observed_at_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    request: str = Field(sa_column=Column(Text, nullable=False))
    status: int = Field(sa_column=Column(Integer, nullable=False))
    response: str = Field(sa_column=Column(Text, nullable=False))


cosignatures, conflicts = tables_of(CheckpointCosignature, WitnessConflict)
APPEND_ONLY_WITNESS_TABLES = (cosignatures.name, conflicts.name)
