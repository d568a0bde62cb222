"""Table model of customers' jurisdictions, set by admins."""

from __future__ import annotations

from sqlalchemy import Column, String
from sqlmodel import Field, SQLModel

from service.db import tables_of


class Customer(SQLModel, table=True):
    __tablename__ = "customers"

    customer_id: str = Field(sa_column=Column(String(128), primary_key=True))
    country: str | None = Field(default=None, sa_column=Column(String(2), index=True))


# The Table of each model, for Core queries.
(customers,) = tables_of(Customer)
