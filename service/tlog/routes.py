"""HTTP for the public log: /v1/log/checkpoint, key, proofs and tiles (no token needed)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response

from service.db import ReadSessionDep
from service.ledger.checkpoint import raw_public_key, verifier_key
from service.tlog import service

router = APIRouter(prefix="/v1/log", tags=["log"])

Size = Annotated[int, Query(ge=0, le=2**63 - 1)]


@router.get("/checkpoint", response_class=PlainTextResponse,
            summary="The latest signed checkpoint (C2SP tlog-checkpoint in a signed note)")
async def checkpoint(session: ReadSessionDep) -> PlainTextResponse:
    latest = await service.latest(session)
    return PlainTextResponse(latest.note, headers={"Cache-Control": "no-cache"})


@router.get("/key", response_class=PlainTextResponse, summary="The note verifier key")
async def key(request: Request) -> PlainTextResponse:
    settings, keys = request.app.state.settings, request.app.state.keys
    return PlainTextResponse(
        verifier_key(settings.log_origin, raw_public_key(keys.signing_key)) + "\n"
    )


@router.get("/proof/inclusion", summary="RFC 6962 inclusion proof of a leaf in a tree size")
async def inclusion(session: ReadSessionDep, log_index: Size, tree_size: Size) -> dict[str, Any]:
    return await service.inclusion(session, log_index, tree_size)


@router.get("/proof/consistency", summary="RFC 6962 consistency proof between two tree sizes")
async def consistency(session: ReadSessionDep, first: Size, second: Size) -> dict[str, Any]:
    return await service.consistency(session, first, second)


@router.get("/tile/{tile_path:path}", response_class=Response,
            summary="A C2SP tlog-tiles hash tile, e.g. /v1/log/tile/0/x001/234 or .../067.p/12")
async def tile(tile_path: str, session: ReadSessionDep) -> Response:
    data, full = await service.tile(session, f"tile/{tile_path}")
    cache = "public, max-age=31536000, immutable" if full else "no-cache"
    return Response(data, media_type="application/octet-stream", headers={"Cache-Control": cache})
