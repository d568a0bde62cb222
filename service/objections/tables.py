"""Table model of objections: one per objected entry, written with the objection's ledger entry."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Text
from sqlmodel import Field, SQLModel

from service.db import tables_of
from service.ledger.tables import BigId


class Objection(SQLModel, table=True):
    __tablename__ = "objections"
    __table_args__ = (Index("uq_objections_entry", "customer_id", "objected_entry_hash", unique=True),)

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    customer_id: str = Field(sa_column=Column(Text, nullable=False))
    objected_entry_hash: str = Field(sa_column=Column(Text, nullable=False))
    entry_hash: str = Field(sa_column=Column(Text, nullable=False))  # the objection's own entry
    filed_at_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    reason: str | None = Field(default=None, sa_column=Column(Text))
    purpose: str | None = Field(default=None, sa_column=Column(Text))
    organization: str | None = Field(default=None, sa_column=Column(Text))


(objections,) = tables_of(Objection)
APPEND_ONLY_OBJECTION_TABLES = (objections.name,)
