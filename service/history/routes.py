"""HTTP for reading histories: customers and regulators by id, and /v1/me/... for customers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from service.auth import CustomerPrincipal, Principal, ReaderPrincipal
from service.db import ReadSessionDep
from service.history import service
from service.ledger.reads import AccessFilters
from service.paging import Page
from service.tenancy import ensure_readable, sees_identities
from service.types import Moment, Period
from service.vocabulary import Action, ActorType, Cursor, CustomerId, EntryHash, Limit, Purpose

router = APIRouter(prefix="/v1", tags=["history"])

async def access_filters(
    clip_id: Annotated[str | None, Query(max_length=128)] = None,
    actor_type: ActorType | None = None,
    purpose: Purpose | None = None,
    action: Action | None = None,
    since: Annotated[Moment | None, Query(description="occurred_at >= since")] = None,
    until: Annotated[Moment | None, Query(description="occurred_at < until")] = None,
) -> AccessFilters:
    return AccessFilters(
        clip_id=clip_id,
        actor_type=actor_type.value if actor_type else None,
        purpose=purpose.value if purpose else None,
        action=action.value if action else None,
        occurred=Period.of(since, until),
    )


Filters = Annotated[AccessFilters, Depends(access_filters)]


async def _accesses(session: ReadSessionDep, principal: Principal, customer_id: str,
                    filters: AccessFilters, limit: int, cursor: str | None) -> Page:
    await ensure_readable(session, principal, customer_id)
    return await service.list_accesses(
        session, customer_id, filters, limit=limit, cursor=cursor, regulator=sees_identities(principal)
    )


async def _summary(session: ReadSessionDep, principal: Principal, customer_id: str,
                   filters: AccessFilters) -> dict[str, Any]:
    await ensure_readable(session, principal, customer_id)
    return await service.summarize(session, customer_id, filters)


async def _entries(session: ReadSessionDep, principal: Principal, customer_id: str, limit: int,
                   cursor: str | None) -> Page:
    await ensure_readable(session, principal, customer_id)
    return await service.list_entries(
        session, customer_id, limit=limit, cursor=cursor, regulator=sees_identities(principal)
    )


async def _entry(session: ReadSessionDep, principal: Principal, customer_id: str,
                 entry_hash: str) -> dict[str, Any]:
    await ensure_readable(session, principal, customer_id)
    return await service.get_entry(
        session, customer_id, entry_hash, regulator=sees_identities(principal)
    )


@router.get("/customers/{customer_id}/accesses", response_model=Page,
            summary="A customer's accesses, newest first")
async def customer_accesses(customer_id: CustomerId, principal: ReaderPrincipal,
                            session: ReadSessionDep, filters: Filters, limit: Limit = 50,
                            cursor: Cursor = None) -> Page:
    return await _accesses(session, principal, customer_id, filters, limit, cursor)


@router.get("/customers/{customer_id}/accesses/summary", summary="Counts of a customer's accesses")
async def customer_summary(customer_id: CustomerId, principal: ReaderPrincipal,
                           session: ReadSessionDep, filters: Filters) -> dict[str, Any]:
    return await _summary(session, principal, customer_id, filters)


@router.get("/customers/{customer_id}/entries", response_model=Page,
            summary="A customer's whole chain, oldest first, with canonical bytes")
async def customer_entries(customer_id: CustomerId, principal: ReaderPrincipal,
                           session: ReadSessionDep, limit: Limit = 50, cursor: Cursor = None) -> Page:
    return await _entries(session, principal, customer_id, limit, cursor)


@router.get("/customers/{customer_id}/entries/{entry_hash}", summary="One entry of a customer's chain")
async def customer_entry(customer_id: CustomerId, entry_hash: EntryHash,
                         principal: ReaderPrincipal, session: ReadSessionDep) -> dict[str, Any]:
    return await _entry(session, principal, customer_id, entry_hash)


@router.get("/me/accesses", response_model=Page, summary="The calling customer's accesses")
async def my_accesses(principal: CustomerPrincipal, session: ReadSessionDep, filters: Filters,
                      limit: Limit = 50, cursor: Cursor = None) -> Page:
    return await _accesses(session, principal, principal.subject, filters, limit, cursor)


@router.get("/me/accesses/summary", summary="Counts of the calling customer's accesses")
async def my_summary(principal: CustomerPrincipal, session: ReadSessionDep,
                     filters: Filters) -> dict[str, Any]:
    return await _summary(session, principal, principal.subject, filters)


@router.get("/me/entries", response_model=Page, summary="The calling customer's whole chain")
async def my_entries(principal: CustomerPrincipal, session: ReadSessionDep, limit: Limit = 50,
                     cursor: Cursor = None) -> Page:
    return await _entries(session, principal, principal.subject, limit, cursor)


@router.get("/me/entries/{entry_hash}", summary="One entry of the calling customer's chain")
async def my_entry(entry_hash: EntryHash, principal: CustomerPrincipal,
                   session: ReadSessionDep) -> dict[str, Any]:
    return await _entry(session, principal, principal.subject, entry_hash)
