"""Table models of deletion requests, the clips they cover, and each service's task."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, String
from sqlmodel import Field, SQLModel

from service.db import tables_of


class DeletionRequest(SQLModel, table=True):
    __tablename__ = "deletion_requests"

    id: str = Field(sa_column=Column(String(36), primary_key=True))
    customer_id: str = Field(sa_column=Column(String(128), nullable=False))
    scope: str = Field(sa_column=Column(String(8), nullable=False))  # "clips" or "all"
    status: str = Field(sa_column=Column(String(16), nullable=False))
    filed_at_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    due_at_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    completed_at_us: int | None = Field(default=None, sa_column=Column(BigInteger))
    rejected_at_us: int | None = Field(default=None, sa_column=Column(BigInteger))
    reject_reason: str | None = Field(default=None, sa_column=Column(String(1000)))
    requested_seq: int | None = Field(default=None, sa_column=Column(BigInteger))  # its entry's


class DeletionRequestClip(SQLModel, table=True):
    __tablename__ = "deletion_request_clips"

    request_id: str = Field(
        sa_column=Column(String(36), ForeignKey("deletion_requests.id"), primary_key=True)
    )
    clip_id: str = Field(sa_column=Column(String(128), primary_key=True))
    customer_id: str = Field(sa_column=Column(String(128), nullable=False))


class DeletionTask(SQLModel, table=True):
    __tablename__ = "deletion_tasks"

    id: str = Field(sa_column=Column(String(36), primary_key=True))
    request_id: str = Field(
        sa_column=Column(String(36), ForeignKey("deletion_requests.id"), nullable=False)
    )
    service: str = Field(sa_column=Column(String(128), nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))  # "pending" or "completed"
    created_at_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    evidence: str | None = Field(default=None, sa_column=Column(String(4000)))
    completed_at_us: int | None = Field(default=None, sa_column=Column(BigInteger))


# The Table of each model, for Core queries.
requests, request_clips, tasks = tables_of(DeletionRequest, DeletionRequestClip, DeletionTask)
