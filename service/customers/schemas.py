"""Request and response bodies for customers' jurisdictions (admin only)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from service.types import Country, CustomerIdText

MAX_BULK = 10_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Jurisdiction(_Strict):
    country: Country


class CustomerJurisdiction(_Strict):
    customer_id: CustomerIdText
    country: Country


class JurisdictionBatch(_Strict):
    customers: list[CustomerJurisdiction] = Field(min_length=1, max_length=MAX_BULK)


class CustomerView(BaseModel):
    customer_id: str
    country: str | None


class BatchResult(BaseModel):
    count: int = Field(description="Distinct customers in the request.")
    created: int = Field(description="Customers seenby did not know before.")
    updated: int = Field(description="Customers whose country was set again (changed or not).")
