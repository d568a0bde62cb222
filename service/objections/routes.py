"""HTTP for objections: a customer objects to one of its accesses; readers list objections."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status

from service.auth import CustomerPrincipal, Principal, ReaderPrincipal, RegulatorPrincipal
from service.db import DatabaseDep, ReadSessionDep
from service.errors import problem_responses
from service.objections import service
from service.objections.schemas import FiledObjection, FileObjection, ObjectionView
from service.paging import Page, page_response
from service.ratelimit import RateLimiter
from service.responses import JSONBody
from service.tenancy import ensure_owner, ensure_readable, jurisdiction_customers
from service.vocabulary import Cursor, CustomerId, Limit

router = APIRouter(prefix="/v1", tags=["objections"])

_FILE = problem_responses(
    404, 409, 422, 429,
    s404="Another customer's id, or an entry that is not in this customer's chain.",
    s409="This customer has objected to that entry already, or it is neither an access nor a refused "
         "attempt.",
    s422="The body is invalid.",
    s429="The customer is over SEENBY_OBJECTIONS_PER_MINUTE (or the caller over its request rate); "
         "retry after Retry-After seconds.",
)
_FILE_SUMMARY = "Object to an access: an `objection` entry in the customer's chain, citing it"


async def _objection_rate(request: Request) -> RateLimiter:
    """The app's limit on objections per customer, made on first use from its settings."""
    state = request.app.state
    limiter: RateLimiter | None = getattr(state, "objection_rate", None)
    if limiter is None:
        per_minute = state.settings.objections_per_minute
        limiter = state.objection_rate = RateLimiter(
            per_minute / 60, per_minute, limit=f"more than {per_minute} objections a minute")
    return limiter


# An objection is a customer writing to the ledger (SECURITY.md): its text is capped
# (FileObjection) and its rate per customer, whether it is taken or refused.
ObjectionRate = Annotated[RateLimiter, Depends(_objection_rate)]


@router.post("/customers/{customer_id}/objections", status_code=status.HTTP_201_CREATED,
             response_model=FiledObjection, responses=_FILE, summary=_FILE_SUMMARY)
async def file_objection(customer_id: CustomerId, body: FileObjection, principal: CustomerPrincipal,
                         database: DatabaseDep, rate: ObjectionRate) -> JSONBody:
    ensure_owner(principal, customer_id)
    return await _file(database, principal, body, rate)


@router.post("/me/objections", status_code=status.HTTP_201_CREATED, response_model=FiledObjection,
             responses=_FILE, summary=_FILE_SUMMARY + " (the calling customer)")
async def file_my_objection(body: FileObjection, principal: CustomerPrincipal,
                            database: DatabaseDep, rate: ObjectionRate) -> JSONBody:
    return await _file(database, principal, body, rate)


async def _file(database: DatabaseDep, principal: Principal, body: FileObjection,
                rate: RateLimiter) -> JSONBody:
    rate.check(principal.subject)
    view = await service.file_objection(database, principal.subject, body.entry_hash, body.reason)
    return JSONBody(view, status_code=status.HTTP_201_CREATED)


@router.get("/customers/{customer_id}/objections", response_model=Page[ObjectionView],
            responses=problem_responses(404, s404="No such customer for this caller."),
            summary="A customer's objections, newest first")
async def customer_objections(customer_id: CustomerId, principal: ReaderPrincipal, session: ReadSessionDep,
                              limit: Limit = 50, cursor: Cursor = None) -> JSONBody:
    await ensure_readable(session, principal, customer_id)
    return page_response(await service.list_objections(session, customer_id=customer_id, customers=None,
                                                       limit=limit, cursor=cursor))


@router.get("/me/objections", response_model=Page[ObjectionView],
            summary="The calling customer's objections, newest first")
async def my_objections(principal: CustomerPrincipal, session: ReadSessionDep, limit: Limit = 50,
                        cursor: Cursor = None) -> JSONBody:
    return page_response(await service.list_objections(session, customer_id=principal.subject,
                                                       customers=None, limit=limit, cursor=cursor))


@router.get("/objections", response_model=Page[ObjectionView],
            summary="Every customer's objections (a regulator's jurisdiction, when its token has one), "
                    "newest first")
async def all_objections(principal: RegulatorPrincipal, session: ReadSessionDep, limit: Limit = 50,
                         cursor: Cursor = None) -> JSONBody:
    return page_response(await service.list_objections(
        session, customer_id=None, customers=jurisdiction_customers(principal), limit=limit, cursor=cursor))
