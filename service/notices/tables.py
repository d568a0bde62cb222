"""The outbox. A recording transaction writes one `notice_batches` row holding all its notices;
the deliverer unpacks batches into `notices` rows, one per notice, as fast as the receiver takes
them (so a receiver that is down leaves the backlog packed, and ingest pays one row a batch)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, SmallInteger, Text, text
from sqlmodel import Field, SQLModel

from service.db import tables_of
from service.notices.types import PENDING


class Notice(SQLModel, table=True):
    """A notice of `type` (service.notices.types) about the entry `entry_id`: its delivery state.
    The body is rendered from the entry at each attempt, the same every time."""

    __tablename__ = "notices"
    __table_args__ = (
        # The deliverer's work list and the dead letters: rows leave it once delivered.
        Index("ix_notices_undelivered", "state", "entry_id", "type",
              postgresql_where=text("state <> 1"), sqlite_where=text("state <> 1")),
    )

    entry_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    type: int = Field(sa_column=Column(SmallInteger, primary_key=True, autoincrement=False))
    created_at_us: int = Field(sa_column=Column(BigInteger, nullable=False))  # the body's timestamp
    state: int = Field(default=PENDING, sa_column=Column(SmallInteger, nullable=False))
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    next_attempt_at_us: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    retry_until_us: int = Field(sa_column=Column(BigInteger, nullable=False))  # then dead-lettered
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    delivered_at_us: int | None = Field(default=None, sa_column=Column(BigInteger))


class NoticeBatch(SQLModel, table=True):
    """The notices of one recording transaction, not yet unpacked: `packed` holds, for each, its
    entry id (8 bytes, big-endian) and type (1 byte), in entry order. Unpacked in order of
    `first_entry_id`, the smallest entry id in it; `created_at_us` is the entries' recording time."""

    __tablename__ = "notice_batches"

    first_entry_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    created_at_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    notices: int = Field(sa_column=Column(Integer, nullable=False))
    packed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


notices, notice_batches = tables_of(Notice, NoticeBatch)
NOTICE_COLUMNS = ("entry_id", "type", "created_at_us", "state", "attempts", "next_attempt_at_us",
                  "retry_until_us")
