"""HTTP for customers' jurisdictions: PUT one or many, GET one (role admin)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from service.auth import AdminPrincipal
from service.customers import service
from service.customers.schemas import (
    BatchResult,
    CustomerJurisdiction,
    CustomerView,
    Jurisdiction,
    JurisdictionBatch,
)
from service.db import DatabaseDep, ReadSessionDep
from service.errors import problem_responses
from service.vocabulary import CustomerId

router = APIRouter(prefix="/v1/admin/customers", tags=["admin"])

@router.put(
    "/{customer_id}", response_model=CustomerView,
    responses={201: {"description": "The customer was not known before.", "model": CustomerView}},
    summary="Set a customer's jurisdiction (ISO 3166-1 alpha-2)",
)
async def put_customer(customer_id: CustomerId, body: Jurisdiction, _: AdminPrincipal,
                       database: DatabaseDep, response: Response) -> CustomerView:
    result = await service.set_countries(
        database, [CustomerJurisdiction(customer_id=customer_id, country=body.country)]
    )
    if result.created:
        response.status_code = status.HTTP_201_CREATED
    return CustomerView(customer_id=customer_id, country=body.country)


@router.put("", response_model=BatchResult,
            responses=problem_responses(422, s422="Schema errors, or a customer given twice with "
                                                  "different countries."),
            summary="Set many customers' jurisdictions at once, all or nothing")
async def put_customers(body: JurisdictionBatch, _: AdminPrincipal, database: DatabaseDep) -> BatchResult:
    return await service.set_countries(database, body.customers)


@router.get("/{customer_id}", response_model=CustomerView,
            responses=problem_responses(404, s404="seenby knows no jurisdiction for this customer."),
            summary="A customer's jurisdiction")
async def get_customer(customer_id: CustomerId, _: AdminPrincipal, session: ReadSessionDep) -> CustomerView:
    return await service.get(session, customer_id)
