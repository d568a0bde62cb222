"""Who may read which customer: the object-level check every customer-scoped read goes through."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth import Principal, Role
from service.customers.tables import customers
from service.errors import NotFound


async def ensure_readable(session: AsyncSession, principal: Principal, customer_id: str) -> None:
    """404, never 403, for a customer the caller may not see: existence is not leaked."""
    if principal.has(Role.REGULATOR):
        if principal.jurisdiction is None:
            return
        country = await session.scalar(
            select(customers.c.country).where(customers.c.customer_id == customer_id)
        )
        if country == principal.jurisdiction:
            return
    elif principal.has(Role.CUSTOMER) and principal.subject == customer_id:
        return
    raise NotFound(f"customer {customer_id} not found")


def ensure_owner(principal: Principal, customer_id: str) -> None:
    """Writes on a customer's behalf (consent, grants, deletion requests): that customer only.
    A token that also holds the regulator role gains nothing here: regulators never write."""
    if not (principal.has(Role.CUSTOMER) and principal.subject == customer_id):
        raise NotFound(f"customer {customer_id} not found")


def sees_identities(principal: Principal) -> bool:
    """Regulators, and only they, read a human actor's employee id and commitment salt."""
    return principal.has(Role.REGULATOR)


def jurisdiction_customers(principal: Principal) -> Select[Any] | None:
    """For a regulator limited to a jurisdiction: the ids of customers known to be of that country
    (those with no known country are left out), to filter by. None when the caller is not limited."""
    if principal.jurisdiction is None:
        return None
    return select(customers.c.customer_id).where(customers.c.country == principal.jurisdiction)
