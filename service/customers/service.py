"""Customers' jurisdictions: set by admins, read by the tenancy checks of regulators' reads."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service import bulk
from service.customers.schemas import BatchResult, CustomerJurisdiction, CustomerView
from service.customers.tables import customers
from service.db import Database
from service.errors import NotFound, Unprocessable


async def set_countries(database: Database, wanted: Sequence[CustomerJurisdiction]) -> BatchResult:
    """Upsert every customer's country in one transaction: all of them or none."""
    countries: dict[str, str] = {}
    for item in wanted:
        if countries.setdefault(item.customer_id, item.country) != item.country:
            raise Unprocessable.at("body.customers",
                                   f"customer {item.customer_id} appears twice with different countries",
                                   f"{item.customer_id} is given twice")
    async with database.write([]) as session:
        known = set((await session.execute(
            select(customers.c.customer_id).where(customers.c.customer_id.in_(sorted(countries)))
        )).scalars())
        await bulk.upsert_rows(session, customers, ("customer_id", "country"), sorted(countries.items()))
    return BatchResult(count=len(countries), created=len(countries) - len(known), updated=len(known))


async def get(session: AsyncSession, customer_id: str) -> CustomerView:
    row = (await session.execute(
        select(customers.c.customer_id, customers.c.country).where(customers.c.customer_id == customer_id)
    )).first()
    if row is None:
        raise NotFound(f"seenby knows no jurisdiction for customer {customer_id}")
    return CustomerView(customer_id=row.customer_id, country=row.country)
