"""HTTP for deletion requests (customers, regulators, admins) and deletion tasks (services)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, status

from service.auth import AdminPrincipal, CustomerPrincipal, ReaderPrincipal, ServicePrincipal
from service.db import DatabaseDep, ReadSessionDep
from service.deletions import service
from service.deletions.schemas import CompleteTask, FileDeletion, RejectDeletion
from service.paging import Page
from service.tenancy import ensure_owner, ensure_readable
from service.vocabulary import Cursor, CustomerId, Limit, ObjectId

router = APIRouter(prefix="/v1", tags=["deletion"])

@router.post("/customers/{customer_id}/deletion-requests", status_code=status.HTTP_202_ACCEPTED,
             summary="File a deletion request for some clips, or for everything")
async def file_deletion(customer_id: CustomerId, body: FileDeletion, principal: CustomerPrincipal,
                        database: DatabaseDep, request: Request) -> dict[str, Any]:
    ensure_owner(principal, customer_id)
    return await service.file_request(database, customer_id, body.clip_ids, request.app.state.settings)


@router.get("/customers/{customer_id}/deletion-requests", response_model=Page,
            summary="A customer's deletion requests, newest first, with each service's task")
async def list_deletions(customer_id: CustomerId, principal: ReaderPrincipal, session: ReadSessionDep,
                         limit: Limit = 50, cursor: Cursor = None) -> Page:
    await ensure_readable(session, principal, customer_id)
    return await service.list_requests(session, customer_id, limit=limit, cursor=cursor)


@router.get("/customers/{customer_id}/deletion-requests/{request_id}", summary="One deletion request")
async def get_deletion(customer_id: CustomerId, request_id: ObjectId, principal: ReaderPrincipal,
                       session: ReadSessionDep) -> dict[str, Any]:
    await ensure_readable(session, principal, customer_id)
    return await service.get_request(session, customer_id, request_id)


@router.get("/deletion-tasks", response_model=Page, summary="The calling service's deletion tasks")
async def list_tasks(principal: ServicePrincipal, session: ReadSessionDep,
                     task_status: Annotated[Literal["pending", "completed"] | None,
                                            Query(alias="status")] = None,
                     limit: Limit = 50, cursor: Cursor = None) -> Page:
    return await service.list_tasks(session, principal.subject, status=task_status, limit=limit,
                                    cursor=cursor)


@router.post("/deletion-tasks/{task_id}/complete",
             summary="Report a task done, with evidence; completing again changes nothing")
async def complete_task(task_id: ObjectId, body: CompleteTask, principal: ServicePrincipal,
                        database: DatabaseDep) -> dict[str, Any]:
    return await service.complete_task(database, principal.subject, task_id, body.evidence)


@router.post("/deletion-requests/{request_id}/reject", summary="Reject a deletion request (admin)")
async def reject_deletion(request_id: ObjectId, body: RejectDeletion, principal: AdminPrincipal,
                          database: DatabaseDep) -> dict[str, Any]:
    return await service.reject(database, request_id, body.reason, principal.subject)
