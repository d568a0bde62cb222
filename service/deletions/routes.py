"""HTTP for deletion requests (customers, regulators, admins) and deletion tasks (services)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from service.auth import AdminPrincipal, CustomerPrincipal, ReaderPrincipal, ServicePrincipal
from service.db import DatabaseDep, ReadSessionDep
from service.deletions import service
from service.deletions.schemas import (
    CompleteTask,
    DeletionRequestView,
    DeletionTask,
    FileDeletion,
    RejectDeletion,
)
from service.errors import problem_responses
from service.paging import Page, page_response
from service.responses import JSONBody
from service.tenancy import ensure_owner, ensure_readable
from service.vocabulary import Cursor, CustomerId, Limit, ObjectId, TaskStatus

router = APIRouter(prefix="/v1", tags=["deletion"])

_CUSTOMER = problem_responses(404, s404="No such customer for this caller.")


@router.post("/customers/{customer_id}/deletion-requests", status_code=status.HTTP_202_ACCEPTED,
             response_model=DeletionRequestView,
             responses=problem_responses(404, s404="Another customer's id: a customer files for itself."),
             summary="File a deletion request for some clips, or for everything")
async def file_deletion(customer_id: CustomerId, body: FileDeletion, principal: CustomerPrincipal,
                        database: DatabaseDep, request: Request) -> JSONBody:
    ensure_owner(principal, customer_id)
    view = await service.file_request(database, customer_id, body.clip_ids, request.app.state.settings)
    return JSONBody(view, status_code=status.HTTP_202_ACCEPTED)


@router.get("/customers/{customer_id}/deletion-requests", response_model=Page[DeletionRequestView],
            responses=_CUSTOMER,
            summary="A customer's deletion requests, newest first, with each service's task")
async def list_deletions(customer_id: CustomerId, principal: ReaderPrincipal, session: ReadSessionDep,
                         limit: Limit = 50, cursor: Cursor = None) -> JSONBody:
    await ensure_readable(session, principal, customer_id)
    return page_response(await service.list_requests(session, customer_id, limit=limit, cursor=cursor))


@router.get("/customers/{customer_id}/deletion-requests/{request_id}", response_model=DeletionRequestView,
            responses=problem_responses(404, s404="No such request of this customer, or no such customer "
                                                  "for this caller."),
            summary="One deletion request")
async def get_deletion(customer_id: CustomerId, request_id: ObjectId, principal: ReaderPrincipal,
                       session: ReadSessionDep) -> JSONBody:
    await ensure_readable(session, principal, customer_id)
    return JSONBody(await service.get_request(session, customer_id, request_id))


@router.get("/deletion-tasks", response_model=Page[DeletionTask],
            summary="The calling service's deletion tasks, oldest first")
async def list_tasks(principal: ServicePrincipal, session: ReadSessionDep,
                     task_status: Annotated[TaskStatus | None, Query(alias="status")] = None,
                     limit: Limit = 50, cursor: Cursor = None) -> JSONBody:
    return page_response(await service.list_tasks(
        session, principal.subject, status=task_status.value if task_status else None, limit=limit,
        cursor=cursor,
    ))


@router.post("/deletion-tasks/{task_id}/complete", response_model=DeletionTask,
             responses=problem_responses(404, s404="No such task addressed to the calling service."),
             summary="Report a task done, with evidence; completing again changes nothing")
async def complete_task(task_id: ObjectId, body: CompleteTask, principal: ServicePrincipal,
                        database: DatabaseDep) -> JSONBody:
    return JSONBody(await service.complete_task(database, principal.subject, task_id, body.evidence))


@router.post("/deletion-requests/{request_id}/reject", response_model=DeletionRequestView,
             responses=problem_responses(404, 409, s404="No such deletion request.",
                                         s409="The request is already completed."),
             summary="Reject a deletion request (admin)")
async def reject_deletion(request_id: ObjectId, body: RejectDeletion, principal: AdminPrincipal,
                          database: DatabaseDep) -> JSONBody:
    return JSONBody(await service.reject(database, request_id, body.reason, principal.subject))
