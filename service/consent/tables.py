"""Table models of consent, troubleshooting grants and access decisions (current state)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, String
from sqlmodel import Field, SQLModel

from service.db import tables_of


class Consent(SQLModel, table=True):
    __tablename__ = "consents"

    customer_id: str = Field(sa_column=Column(String(128), primary_key=True))
    human_review: bool = Field(sa_column=Column(Boolean, nullable=False))
    model_training: bool = Field(sa_column=Column(Boolean, nullable=False))
    updated_at_us: int = Field(sa_column=Column(BigInteger, nullable=False))


class TroubleshootingGrant(SQLModel, table=True):
    __tablename__ = "troubleshooting_grants"

    id: str = Field(sa_column=Column(String(36), primary_key=True))
    customer_id: str = Field(sa_column=Column(String(128), nullable=False))
    clip_id: str = Field(sa_column=Column(String(128), nullable=False))
    note: str | None = Field(default=None, sa_column=Column(String(1000)))
    granted_at_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    expires_at_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    withdrawn_at_us: int | None = Field(default=None, sa_column=Column(BigInteger))


class AccessDecision(SQLModel, table=True):
    __tablename__ = "access_decisions"

    id: str = Field(sa_column=Column(String(36), primary_key=True))
    customer_id: str = Field(sa_column=Column(String(128), nullable=False))
    clip_id: str = Field(sa_column=Column(String(128), nullable=False))
    action: str = Field(sa_column=Column(String(32), nullable=False))
    purpose: str = Field(sa_column=Column(String(32), nullable=False))
    decision: str = Field(sa_column=Column(String(8), nullable=False))
    entry_hash: str = Field(sa_column=Column(String(64), nullable=False))
    decided_at_us: int = Field(sa_column=Column(BigInteger, nullable=False))


# The Table of each model, for Core queries.
consents, grants, decisions = tables_of(Consent, TroubleshootingGrant, AccessDecision)
