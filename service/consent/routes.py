"""HTTP for consent, troubleshooting grants (customers) and access decisions (services)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status

from service.auth import CustomerPrincipal, ReaderPrincipal, ServicePrincipal
from service.consent import service
from service.consent.schemas import ConsentChange, DecisionRequest, GrantRequest
from service.db import DatabaseDep, ReadSessionDep
from service.tenancy import ensure_owner, ensure_readable
from service.vocabulary import CustomerId, ObjectId

router = APIRouter(prefix="/v1", tags=["consent"])

@router.get("/customers/{customer_id}/consent", summary="A customer's consent")
async def read_consent(customer_id: CustomerId, principal: ReaderPrincipal, session: ReadSessionDep,
                       request: Request) -> dict[str, bool]:
    await ensure_readable(session, principal, customer_id)
    return await service.read_consent(session, customer_id, request.app.state.settings)


@router.put("/customers/{customer_id}/consent", summary="Change a customer's consent (a ledger entry)")
async def change_consent(customer_id: CustomerId, body: ConsentChange, principal: CustomerPrincipal,
                         database: DatabaseDep, request: Request) -> dict[str, bool]:
    ensure_owner(principal, customer_id)
    return await service.change_consent(database, customer_id, body.model_dump(exclude_none=True),
                                        request.app.state.settings, principal.subject)


@router.post("/customers/{customer_id}/troubleshooting-grants", status_code=status.HTTP_201_CREATED,
             summary="Allow human review of one clip, for a bounded time")
async def grant(customer_id: CustomerId, body: GrantRequest, principal: CustomerPrincipal,
                database: DatabaseDep, request: Request) -> dict[str, Any]:
    ensure_owner(principal, customer_id)
    return await service.grant_troubleshooting(database, customer_id, body.clip_id, body.note,
                                               request.app.state.settings)


@router.get("/customers/{customer_id}/troubleshooting-grants", summary="A customer's grants")
async def list_grants(customer_id: CustomerId, principal: ReaderPrincipal,
                      session: ReadSessionDep) -> dict[str, Any]:
    await ensure_readable(session, principal, customer_id)
    return {"items": await service.list_grants(session, customer_id), "next_cursor": None}


@router.post("/customers/{customer_id}/troubleshooting-grants/{grant_id}/withdraw",
             summary="End a troubleshooting grant early")
async def withdraw(customer_id: CustomerId, grant_id: ObjectId, principal: CustomerPrincipal,
                   database: DatabaseDep) -> dict[str, Any]:
    ensure_owner(principal, customer_id)
    return await service.withdraw_troubleshooting(database, customer_id, grant_id)


@router.post("/access-decisions", status_code=status.HTTP_201_CREATED,
             summary="Ask whether an access is covered; the answer is a ledger entry to cite")
async def decide(body: DecisionRequest, principal: ServicePrincipal, database: DatabaseDep,
                 request: Request) -> dict[str, Any]:
    return await service.decide_access(
        database, body.model_dump(mode="json", exclude_none=True), decided_by=principal.subject,
        pseudonym_key=request.app.state.keys.pseudonym_key, settings=request.app.state.settings,
    )
