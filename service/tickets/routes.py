"""HTTP for access tickets: POST /v1/access-tickets (services) and the public ticket keys."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import TypeAdapter

from service.accesses.routes import parse
from service.auth import ServicePrincipal
from service.errors import problem_responses
from service.tickets.schemas import TicketKeys, TicketRequest, TicketResponse
from service.tickets.service import TicketIssuer

router = APIRouter(prefix="/v1", tags=["tickets"])
REQUEST = TypeAdapter(TicketRequest)  # main.py adds its schema to the OpenAPI components


async def get_issuer(request: Request) -> TicketIssuer:
    issuer: TicketIssuer = request.app.state.ticket_issuer
    return issuer


IssuerDep = Annotated[TicketIssuer, Depends(get_issuer)]


@router.post(
    "/access-tickets", status_code=status.HTTP_201_CREATED, response_model=TicketResponse,
    responses={
        200: {"description": "A replay: the original receipt and a fresh ticket (same jti).",
              "model": TicketResponse},
        **problem_responses(
            403, 409, 422,
            s403="Refused: `type` ends in access-refused, with the `flags` that refused the access and "
                 "the `entry_hash` of the access_refused entry recorded for the attempt (the same again "
                 "for a replay); or a token whose role is not service.",
            s409="The event_id was already recorded with another body.",
            s422="The body does not match the schema (audience missing or blank, an unknown field, an "
                 "event POST /v1/accesses would refuse); nothing is recorded.",
        ),
    },
    summary="Record an access, then get a ticket for the clip store",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/TicketRequest"}}}}},
)
async def issue_ticket(principal: ServicePrincipal, issuer: IssuerDep, request: Request) -> Response:
    body = parse(REQUEST, await request.body())
    issued = await issuer.issue(body["audience"], body["event"], requested_by=principal.subject)
    return Response(
        orjson.dumps({"receipt": issued.receipt, "ticket": issued.ticket, "expires_at": issued.expires_at}),
        media_type="application/json",
        status_code=status.HTTP_201_CREATED if issued.created else status.HTTP_200_OK,
    )


@router.get("/tickets/jwks.json", response_model=TicketKeys,
            summary="The public keys that sign access tickets (a JWKS; no token needed)")
async def ticket_keys(issuer: IssuerDep) -> Response:
    return Response(issuer.jwks, media_type="application/json")
