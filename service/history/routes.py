"""HTTP for reading histories: customers and regulators by id, and /v1/me/... for customers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth import CustomerPrincipal, Principal, ReaderPrincipal
from service.db import DatabaseDep, ReplicaSessionDep
from service.errors import problem_responses
from service.history import service
from service.history.schemas import AccessView, EntryDetail, ListedChainItem, Summary
from service.ledger.reads import AccessFilters
from service.paging import Page, page_response
from service.responses import JSONBody
from service.tenancy import ensure_readable, sees_identities
from service.tlog.service import Witnessing, WitnessingDep
from service.types import Period
from service.vocabulary import (
    MAX_INDEX,
    Action,
    ActorType,
    ClipFilter,
    Cursor,
    CustomerId,
    EntryHash,
    Limit,
    OccurredSince,
    OccurredUntil,
    Purpose,
)

router = APIRouter(prefix="/v1", tags=["history"])

_CUSTOMER_404 = ("No such customer for this caller (another customer's, or outside a regulator's "
                 "jurisdiction).")
_CUSTOMER = problem_responses(404, s404=_CUSTOMER_404)
ProofTreeSize = Annotated[int | None, Query(ge=1, le=MAX_INDEX, description=(
    "With a signed tree size (at most the latest checkpoint's; beyond it: 422), each item carries "
    "`inclusion`: its inclusion proof in that tree, or null while it is not in it."))]
_ENTRIES = problem_responses(404, 422, s404=_CUSTOMER_404,
                             s422="Schema errors, or a tree_size beyond the latest checkpoint.")
_ENTRY = problem_responses(404, s404="No such entry in the customer's chain, or no such customer for "
                                     "this caller.")


async def access_filters(
    clip_id: ClipFilter = None,
    actor_type: ActorType | None = None,
    purpose: Purpose | None = None,
    action: Action | None = None,
    since: OccurredSince = None,
    until: OccurredUntil = None,
) -> AccessFilters:
    return AccessFilters(
        clip_id=clip_id,
        actor_type=actor_type.value if actor_type else None,
        purpose=purpose.value if purpose else None,
        action=action.value if action else None,
        occurred=Period.of(since, until),
    )


Filters = Annotated[AccessFilters, Depends(access_filters)]


async def _accesses(session: ReplicaSessionDep, principal: Principal, customer_id: str,
                    filters: AccessFilters, limit: int, cursor: str | None) -> JSONBody:
    await ensure_readable(session, principal, customer_id)
    return page_response(await service.list_accesses(
        session, customer_id, filters, limit=limit, cursor=cursor, regulator=sees_identities(principal)
    ))


async def _summary(session: ReplicaSessionDep, principal: Principal, customer_id: str,
                   filters: AccessFilters) -> JSONBody:
    await ensure_readable(session, principal, customer_id)
    return JSONBody(await service.summarize(session, customer_id, filters))


async def _entries(database: DatabaseDep, principal: Principal, customer_id: str, limit: int,
                   cursor: str | None, tree_size: int | None) -> JSONBody:
    async def read(session: AsyncSession) -> Page[dict[str, Any]]:
        await ensure_readable(session, principal, customer_id)
        return await service.list_entries(
            session, customer_id, limit=limit, cursor=cursor, regulator=sees_identities(principal),
            tree_size=tree_size,
        )

    # On the primary for a tree_size the standby has not replayed yet.
    return page_response(await database.on_replica(read))


async def _entry(session: ReplicaSessionDep, principal: Principal, customer_id: str,
                 entry_hash: str, witnessing: Witnessing) -> JSONBody:
    await ensure_readable(session, principal, customer_id)
    return JSONBody(await service.get_entry(
        session, customer_id, entry_hash, regulator=sees_identities(principal), witnessing=witnessing
    ))


@router.get("/customers/{customer_id}/accesses", response_model=Page[AccessView], responses=_CUSTOMER,
            summary="A customer's accesses, newest first")
async def customer_accesses(customer_id: CustomerId, principal: ReaderPrincipal,
                            session: ReplicaSessionDep, filters: Filters, limit: Limit = 50,
                            cursor: Cursor = None) -> JSONBody:
    return await _accesses(session, principal, customer_id, filters, limit, cursor)


@router.get("/customers/{customer_id}/accesses/summary", response_model=Summary, responses=_CUSTOMER,
            summary="Counts of a customer's accesses")
async def customer_summary(customer_id: CustomerId, principal: ReaderPrincipal,
                           session: ReplicaSessionDep, filters: Filters) -> JSONBody:
    return await _summary(session, principal, customer_id, filters)


@router.get("/customers/{customer_id}/entries", response_model=Page[ListedChainItem], responses=_ENTRIES,
            summary="A customer's whole chain, oldest first, with canonical bytes")
async def customer_entries(customer_id: CustomerId, principal: ReaderPrincipal,
                           database: DatabaseDep, limit: Limit = 50,
                           cursor: Cursor = None, tree_size: ProofTreeSize = None) -> JSONBody:
    return await _entries(database, principal, customer_id, limit, cursor, tree_size)


@router.get("/customers/{customer_id}/entries/{entry_hash}", response_model=EntryDetail,
            responses=_ENTRY, summary="One entry of a customer's chain")
async def customer_entry(customer_id: CustomerId, entry_hash: EntryHash, principal: ReaderPrincipal,
                         session: ReplicaSessionDep, witnessing: WitnessingDep) -> JSONBody:
    return await _entry(session, principal, customer_id, entry_hash, witnessing)


@router.get("/me/accesses", response_model=Page[AccessView], summary="The calling customer's accesses")
async def my_accesses(principal: CustomerPrincipal, session: ReplicaSessionDep, filters: Filters,
                      limit: Limit = 50, cursor: Cursor = None) -> JSONBody:
    return await _accesses(session, principal, principal.subject, filters, limit, cursor)


@router.get("/me/accesses/summary", response_model=Summary,
            summary="Counts of the calling customer's accesses")
async def my_summary(principal: CustomerPrincipal, session: ReplicaSessionDep,
                     filters: Filters) -> JSONBody:
    return await _summary(session, principal, principal.subject, filters)


@router.get("/me/entries", response_model=Page[ListedChainItem], summary="The calling customer's whole chain",
            responses=problem_responses(422, s422="Schema errors, or a tree_size beyond the latest "
                                                  "checkpoint."))
async def my_entries(principal: CustomerPrincipal, database: DatabaseDep, limit: Limit = 50,
                     cursor: Cursor = None, tree_size: ProofTreeSize = None) -> JSONBody:
    return await _entries(database, principal, principal.subject, limit, cursor, tree_size)


@router.get("/me/entries/{entry_hash}", response_model=EntryDetail,
            responses=problem_responses(404, s404="No such entry in the caller's chain."),
            summary="One entry of the calling customer's chain")
async def my_entry(entry_hash: EntryHash, principal: CustomerPrincipal,
                   session: ReplicaSessionDep, witnessing: WitnessingDep) -> JSONBody:
    return await _entry(session, principal, principal.subject, entry_hash, witnessing)
