"""HTTP for consent, troubleshooting grants (customers) and access decisions (services)."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from service.auth import CustomerPrincipal, ReaderPrincipal, ServicePrincipal
from service.consent import service
from service.consent.schemas import (
    Consent,
    ConsentChange,
    Decision,
    DecisionRequest,
    Grant,
    GrantRequest,
    Withdrawal,
)
from service.db import DatabaseDep, ReadSessionDep
from service.errors import problem_responses
from service.paging import Page
from service.responses import JSONBody
from service.tenancy import ensure_owner, ensure_readable
from service.vocabulary import CustomerId, ObjectId

router = APIRouter(prefix="/v1", tags=["consent"])

_CUSTOMER = problem_responses(404, s404="No such customer for this caller.")
_OWN = problem_responses(404, s404="Another customer's id: a customer changes only its own.")


@router.get("/customers/{customer_id}/consent", response_model=Consent, responses=_CUSTOMER,
            summary="A customer's consent")
async def read_consent(customer_id: CustomerId, principal: ReaderPrincipal, session: ReadSessionDep,
                       request: Request) -> JSONBody:
    await ensure_readable(session, principal, customer_id)
    return JSONBody(await service.read_consent(session, customer_id, request.app.state.settings))


@router.put("/customers/{customer_id}/consent", response_model=Consent, responses=_OWN,
            summary="Change a customer's consent (a ledger entry)")
async def change_consent(customer_id: CustomerId, body: ConsentChange, principal: CustomerPrincipal,
                         database: DatabaseDep, request: Request) -> JSONBody:
    ensure_owner(principal, customer_id)
    return JSONBody(await service.change_consent(
        database, customer_id, body.model_dump(exclude_none=True), request.app.state.settings,
        principal.subject,
    ))


@router.post("/customers/{customer_id}/troubleshooting-grants", status_code=status.HTTP_201_CREATED,
             response_model=Grant, responses=_OWN,
             summary="Allow human review of one clip, for a bounded time")
async def grant(customer_id: CustomerId, body: GrantRequest, principal: CustomerPrincipal,
                database: DatabaseDep, request: Request) -> JSONBody:
    ensure_owner(principal, customer_id)
    view = await service.grant_troubleshooting(database, customer_id, body.clip_id, body.note,
                                               request.app.state.settings)
    return JSONBody(view, status_code=status.HTTP_201_CREATED)


@router.get("/customers/{customer_id}/troubleshooting-grants", response_model=Page[Grant],
            responses=_CUSTOMER, summary="A customer's grants (one page: next_cursor is always null)")
async def list_grants(customer_id: CustomerId, principal: ReaderPrincipal,
                      session: ReadSessionDep) -> JSONBody:
    await ensure_readable(session, principal, customer_id)
    return JSONBody({"items": await service.list_grants(session, customer_id), "next_cursor": None})


@router.post("/customers/{customer_id}/troubleshooting-grants/{grant_id}/withdraw",
             response_model=Grant,
             responses=problem_responses(404, s404="No such grant of this customer, or another "
                                                   "customer's id."),
             summary="End a troubleshooting grant early")
async def withdraw(customer_id: CustomerId, grant_id: ObjectId, principal: CustomerPrincipal,
                   database: DatabaseDep, body: Withdrawal | None = None) -> JSONBody:
    ensure_owner(principal, customer_id)
    return JSONBody(await service.withdraw_troubleshooting(database, customer_id, grant_id))


@router.post("/access-decisions", status_code=status.HTTP_201_CREATED, response_model=Decision,
             summary="Ask whether an access is covered; the answer is a ledger entry to cite")
async def decide(body: DecisionRequest, principal: ServicePrincipal, database: DatabaseDep,
                 request: Request) -> JSONBody:
    decision = await service.decide_access(
        database, body.model_dump(mode="json", exclude_none=True), decided_by=principal.subject,
        pseudonym_key=request.app.state.keys.pseudonym_key, settings=request.app.state.settings,
    )
    return JSONBody(decision, status_code=status.HTTP_201_CREATED)
