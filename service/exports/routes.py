"""HTTP for regulators' exports: GET /v1/exports/accesses and its manifest, streamed."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from enum import StrEnum
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from starlette.types import Send

from service.auth import RegulatorPrincipal
from service.db import DatabaseDep
from service.exports import formats, service
from service.exports.service import ExportFilter
from service.types import Moment, Period

router = APIRouter(prefix="/v1/exports", tags=["exports"])

TREE_SIZE_HEADER = "Seenby-Tree-Size"


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


async def export_filter(
    customer_id: Annotated[str | None, Query(min_length=1, max_length=128,
                                             description="One customer's entries only.")] = None,
    since: Annotated[Moment | None, Query(description="recorded_at >= since")] = None,
    until: Annotated[Moment | None, Query(description="recorded_at < until")] = None,
    kind: Annotated[str, Query(pattern=r"^[a-z_]{1,40}$",
                               description="A kind of entry (access, consent_changed, ...) or all.")]
    = "access",
    format: Annotated[ExportFormat, Query(description="jsonl (one JSON object a line) or csv.")]
    = ExportFormat.JSONL,
) -> ExportFilter:
    return ExportFilter(customer_id=customer_id, recorded=Period.of(since, until), kind=kind,
                        format=format.value)


Filter = Annotated[ExportFilter, Depends(export_filter)]
TreeSize = Annotated[int | None, Query(ge=0, le=2**63 - 1, description=(
    "Cut the export at this signed tree size (default: the latest checkpoint), so that data and "
    "manifest agree."))]


class _ClosingStream(StreamingResponse):
    """Closes its generator (and so the database cursor) even when the client goes away mid-stream."""

    body_iterator: AsyncGenerator[bytes, None]

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.body_iterator.aclose()


_EXPORT_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "description": "The entries, in log order, streamed. Each JSONL line (or CSV record) is the "
                       "regulator's view of an entry plus entry_hash, log_index and canonical (base64).",
        "headers": {TREE_SIZE_HEADER: {"description": "The checkpoint the export was cut against.",
                                       "schema": {"type": "integer"}}},
        "content": {formats.MEDIA_TYPES["jsonl"]: {}, "text/csv": {}},
    },
}


@router.get("/accesses", response_class=StreamingResponse, responses=_EXPORT_RESPONSES,
            summary="Export entries in log order, cut against a signed checkpoint")
async def export_accesses(
    principal: RegulatorPrincipal, database: DatabaseDep, wanted: Filter, tree_size: TreeSize = None,
    after_log_index: Annotated[int | None, Query(ge=0, le=2**63 - 1, description=(
        "Resume a download: only entries after this log_index (and, in CSV, no header row)."))] = None,
) -> StreamingResponse:
    cut = await service.cut(database, principal, wanted, tree_size)
    return _ClosingStream(
        service.export_bytes(database, principal, wanted, cut, after_log_index),
        media_type=formats.MEDIA_TYPES[wanted.format],
        headers={TREE_SIZE_HEADER: str(cut.tree_size), "Content-Disposition":
                 f'attachment; filename="seenby-export-{cut.tree_size}.{wanted.format}"'},
    )


@router.get(
    "/accesses/manifest", response_class=StreamingResponse,
    responses={200: {"description": "The signed checkpoint, count, first and last log_index, SHA-256 of "
                                    "the export's bytes and an inclusion proof for every entry.",
                     "content": {"application/json": {}}}},
    summary="The manifest of the export with the same parameters",
)
async def export_manifest(
    principal: RegulatorPrincipal, database: DatabaseDep, wanted: Filter, tree_size: TreeSize = None,
) -> StreamingResponse:
    cut = await service.cut(database, principal, wanted, tree_size)
    return _ClosingStream(
        service.manifest_bytes(database, principal, wanted, cut), media_type="application/json",
        headers={TREE_SIZE_HEADER: str(cut.tree_size), "Content-Disposition":
                 f'attachment; filename="seenby-export-{cut.tree_size}.manifest.json"'},
    )
