"""Customers' jurisdictions: set by admins, read by the tenancy checks of regulators' reads."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from service.customers.schemas import BatchResult, CustomerJurisdiction, CustomerView
from service.customers.tables import Customer
from service.db import Database, dialect_of
from service.errors import NotFound, Unprocessable

customers = Customer.__table__


async def set_countries(database: Database, wanted: Sequence[CustomerJurisdiction]) -> BatchResult:
    """Upsert every customer's country in one transaction: all of them or none."""
    countries: dict[str, str] = {}
    for item in wanted:
        if countries.setdefault(item.customer_id, item.country) != item.country:
            raise Unprocessable(
                f"customer {item.customer_id} appears twice with different countries",
                errors=[{"field": "body.customers", "message": f"{item.customer_id} is given twice",
                         "type": "value_error"}],
            )
    async with database.write([]) as session:
        known = set((await session.execute(
            select(customers.c.customer_id).where(customers.c.customer_id.in_(sorted(countries)))
        )).scalars())
        dialect = postgresql if dialect_of(session) == "postgresql" else sqlite
        insert = dialect.insert(customers)
        upsert = insert.on_conflict_do_update(
            index_elements=[customers.c.customer_id], set_={"country": insert.excluded.country}
        )
        await session.execute(upsert, [
            {"customer_id": customer_id, "country": country}
            for customer_id, country in sorted(countries.items())
        ])
    return BatchResult(count=len(countries), created=len(countries) - len(known), updated=len(known))


async def get(session: AsyncSession, customer_id: str) -> CustomerView:
    row = (await session.execute(
        select(customers.c.customer_id, customers.c.country).where(customers.c.customer_id == customer_id)
    )).first()
    if row is None:
        raise NotFound(f"seenby knows no jurisdiction for customer {customer_id}")
    return CustomerView(customer_id=row.customer_id, country=row.country)
