"""HTTP for completeness proofs: customers for themselves (/v1/me/...) and regulators by id."""

from __future__ import annotations

from fastapi import APIRouter

from service.auth import CustomerPrincipal, ReaderPrincipal
from service.completeness import service
from service.completeness.schemas import CompletenessProof
from service.db import SnapshotSessionDep
from service.errors import problem_responses
from service.responses import JSONBody
from service.tenancy import ensure_readable
from service.tlog.service import WitnessingDep
from service.vocabulary import CustomerId

router = APIRouter(prefix="/v1", tags=["completeness"])

_NOT_YET = "The log has no customer index yet: it commits to one with its first entries."
_DESCRIPTION = (
    "The customer index leaf the latest checkpoint holds, the customer's key and head (its last entry "
    "the leaf covers) with their inclusion proofs, and the index proof for the key: together they show "
    "that the customer's chain up to the head is everything the log holds about it. A customer with "
    "no entries gets a proof of absence. Check it offline with `seenby verify completeness`."
)


@router.get("/customers/{customer_id}/completeness", response_model=CompletenessProof,
            responses=problem_responses(404, 503, s404="No such customer for this caller (another "
                                        "customer's, or outside a regulator's jurisdiction).", s503=_NOT_YET),
            summary="Proof that a customer's chain is complete", description=_DESCRIPTION)
async def customer_completeness(customer_id: CustomerId, principal: ReaderPrincipal,
                                session: SnapshotSessionDep, witnessing: WitnessingDep) -> JSONBody:
    await ensure_readable(session, principal, customer_id)
    return JSONBody(await service.completeness(session, customer_id, witnessing))


@router.get("/me/completeness", response_model=CompletenessProof,
            responses=problem_responses(503, s503=_NOT_YET),
            summary="Proof that the calling customer's chain is complete", description=_DESCRIPTION)
async def my_completeness(principal: CustomerPrincipal, session: SnapshotSessionDep,
                          witnessing: WitnessingDep) -> JSONBody:
    return JSONBody(await service.completeness(session, principal.subject, witnessing))
