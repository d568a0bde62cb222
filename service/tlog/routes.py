"""HTTP for the public log: /v1/log/checkpoint, key, proofs and tiles (no token needed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from service.db import DatabaseDep, ReplicaSessionDep
from service.errors import problem_responses
from service.ledger.checkpoint import raw_public_key, verifier_key
from service.responses import JSONBody
from service.tlog import service
from service.tlog.schemas import ConsistencyProof, InclusionProof
from service.vocabulary import LogIndex, TreeSize

router = APIRouter(prefix="/v1/log", tags=["log"])

_TEXT = {"content": {"text/plain": {"schema": {"type": "string"}}}}
_NOT_SIGNED_YET = problem_responses(503, s503="The log has not signed its first checkpoint yet (with a "
                                              "witness policy: none has met its quorum yet), or the "
                                              "database cannot be reached; retry after Retry-After.")


@router.get("/checkpoint", response_class=PlainTextResponse,
            responses={200: {**_TEXT, "description": "The signed note, as C2SP tlog-checkpoint."},
                       **_NOT_SIGNED_YET},
            summary="The latest signed checkpoint (C2SP tlog-checkpoint in a signed note); with a "
                    "witness policy, the latest its quorum cosigned, cosignatures after the log's "
                    "signature")
async def checkpoint(session: ReplicaSessionDep, witnessing: service.WitnessingDep) -> PlainTextResponse:
    served = await service.served(session, witnessing)
    return PlainTextResponse(served.note, headers={"Cache-Control": "no-cache"})


@router.get("/key", response_class=PlainTextResponse,
            responses={200: {**_TEXT, "description": "<name>+<hex key id>+<base64(0x01 || public key)>"}},
            summary="The note verifier key")
async def key(request: Request) -> PlainTextResponse:
    settings, keys = request.app.state.settings, request.app.state.keys
    return PlainTextResponse(
        verifier_key(settings.log_origin, raw_public_key(keys.signing_key)) + "\n"
    )


@router.get("/proof/inclusion", response_model=InclusionProof, responses={
    **problem_responses(422, s422="Schema errors, a tree_size beyond the latest checkpoint, or a "
                                  "log_index not below tree_size."),
    **_NOT_SIGNED_YET,
}, summary="RFC 6962 inclusion proof of a leaf in a tree size")
async def inclusion(database: DatabaseDep, log_index: LogIndex, tree_size: TreeSize) -> JSONBody:
    return _json(await database.on_replica(lambda session: service.inclusion(session, log_index, tree_size)))


@router.get("/proof/consistency", response_model=ConsistencyProof, responses={
    **problem_responses(422, s422="Schema errors, a second beyond the latest checkpoint, or a first "
                                  "greater than second."),
    **_NOT_SIGNED_YET,
}, summary="RFC 6962 consistency proof between two tree sizes")
async def consistency(database: DatabaseDep, first: TreeSize, second: TreeSize) -> JSONBody:
    return _json(await database.on_replica(lambda session: service.consistency(session, first, second)))


@router.get("/tile/{tile_path:path}", response_class=Response, responses={
    200: {"description": "The tile's hashes, 32 bytes each.",
          "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
    **problem_responses(404, s404="Not a tile path (C2SP tlog-tiles), or a tile the tree does not have."),
    **_NOT_SIGNED_YET,
}, summary="A C2SP tlog-tiles hash tile, e.g. /v1/log/tile/0/x001/234 or .../067.p/12")
async def tile(tile_path: str, database: DatabaseDep) -> Response:
    data, full = await database.on_replica(lambda session: service.tile(session, f"tile/{tile_path}"))
    cache = "public, max-age=31536000, immutable" if full else "no-cache"
    return Response(data, media_type="application/octet-stream", headers={"Cache-Control": cache})


def _json(body: dict[str, Any]) -> JSONBody:
    return JSONBody(body)
