"""Request and response bodies for customers' jurisdictions (admin only)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from service.customers.countries import ASSIGNED
from service.types import Id, assigned_country

MAX_BULK = 10_000


CountryCode = Annotated[str, Field(min_length=2, max_length=2, examples=["DE"],
                                   json_schema_extra={"enum": sorted(ASSIGNED)}),
                        AfterValidator(assigned_country)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Jurisdiction(_Strict):
    country: CountryCode


class CustomerJurisdiction(_Strict):
    customer_id: Id
    country: CountryCode


class JurisdictionBatch(_Strict):
    customers: list[CustomerJurisdiction] = Field(min_length=1, max_length=MAX_BULK)


class CustomerView(BaseModel):
    customer_id: str
    country: str | None


class BatchResult(BaseModel):
    count: int = Field(description="Distinct customers in the request.")
    created: int = Field(description="Customers seenby did not know before.")
    updated: int = Field(description="Customers whose country was set again (changed or not).")
