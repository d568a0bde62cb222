"""HTTP for regulators' exports: GET /v1/exports/accesses and its manifest, streamed."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from enum import StrEnum
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from service.auth import Principal, RegulatorPrincipal
from service.db import Database, DatabaseDep
from service.errors import TooManyRequests, Unprocessable, problem_responses
from service.exports import formats, service
from service.exports.schemas import Manifest
from service.exports.service import ExportFilter
from service.ledger.kinds import EntryKind
from service.metrics import EXPORT_STREAMS
from service.tlog.service import Witnessing, WitnessingDep
from service.types import Period
from service.vocabulary import MAX_INDEX, NO_NUL, RecordedSince, RecordedUntil

router = APIRouter(prefix="/v1/exports", tags=["exports"])
logger = logging.getLogger("seenby.exports")

TREE_SIZE_HEADER = "Seenby-Tree-Size"
EXPORT_KINDS = ["all", *(kind.value for kind in EntryKind)]


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


async def export_filter(
    customer_id: Annotated[str | None, Query(min_length=1, max_length=128, pattern=NO_NUL,
                                             description="One customer's entries only.")] = None,
    since: RecordedSince = None,
    until: RecordedUntil = None,
    kind: Annotated[str, Query(description="A kind of entry, or all.",
                               json_schema_extra={"enum": EXPORT_KINDS})] = "access",
    format: Annotated[ExportFormat, Query(description="jsonl (one JSON object a line) or csv.")]
    = ExportFormat.JSONL,
) -> ExportFilter:
    if kind not in EXPORT_KINDS:  # a typo would otherwise export nothing, as if nothing were recorded
        raise Unprocessable.at("query.kind", f"kind must be one of: {', '.join(EXPORT_KINDS)}", kind="enum")
    return ExportFilter(customer_id=customer_id, recorded=Period.of(since, until), kind=kind,
                        format=format.value)


Filter = Annotated[ExportFilter, Depends(export_filter)]
TreeSize = Annotated[int | None, Query(ge=0, le=MAX_INDEX, description=(
    "Cut the export at this signed tree size (default: the latest checkpoint), so that data and "
    "manifest agree; a size no checkpoint was signed at answers 422."))]


class ExportSlots:
    """The exports (and manifests) a process streams at once: each holds a database connection for
    as long as its client takes to read it, so that a few stalled downloads would otherwise take
    every connection from every other request. A client that takes nothing for
    `send_timeout_seconds` is cut off, so that stalled downloads do not keep the slots either."""

    def __init__(self, limit: int, send_timeout_seconds: float) -> None:
        self.limit = limit
        self.send_timeout_seconds = send_timeout_seconds
        self.taken = 0

    def take(self) -> None:
        if self.taken >= self.limit:
            raise TooManyRequests(f"this server streams {self.limit} exports at once already; retry "
                                  "shortly", retry_after_seconds=5)
        self.taken += 1
        EXPORT_STREAMS.set(self.taken)

    def give_back(self) -> None:
        self.taken -= 1
        EXPORT_STREAMS.set(self.taken)


async def _slots(request: Request) -> ExportSlots:
    slots: ExportSlots = request.app.state.export_slots
    return slots


Slots = Annotated[ExportSlots, Depends(_slots)]


async def _cut_in_a_slot(slots: ExportSlots, database: Database, principal: Principal, wanted: ExportFilter,
                         tree_size: int | None, witnessing: Witnessing) -> service.Cut:
    """A slot taken first (a refused export runs no query), then the cut; the slot goes with the
    response that _ClosingStream makes of it, or back at once if there is none."""
    slots.take()
    try:
        return await service.cut(database, principal, wanted, tree_size, witnessing)
    except BaseException:
        slots.give_back()
        raise


class _ClosingStream(StreamingResponse):
    """Streams its generator in the export slot it is given, and gives the slot back when the
    response ends however it ends; closes the generator (and so the database cursor) even when
    the client goes away, or takes nothing for the slots' send timeout, mid-stream."""

    body_iterator: AsyncGenerator[bytes, None]

    def __init__(self, slots: ExportSlots, content: AsyncGenerator[bytes, None], **options: Any) -> None:
        super().__init__(content, **options)
        self._slots: ExportSlots | None = slots
        self._send_timeout = slots.send_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self._slots is not None:
                self._slots.give_back()
                self._slots = None

    async def stream_response(self, send: Send) -> None:
        async def send_in_time(message: Message) -> None:
            with anyio.fail_after(self._send_timeout):
                await send(message)

        try:
            await super().stream_response(send_in_time)
        except TimeoutError:
            logger.warning("an export's client took nothing for %g s: the export was cut short",
                           self._send_timeout)
        finally:
            with anyio.CancelScope(shield=True):
                await self.body_iterator.aclose()


_TREE_SIZE = {TREE_SIZE_HEADER: {"description": "The checkpoint the export was cut against.",
                                 "schema": {"type": "integer", "minimum": 0}}}
_PROBLEMS = problem_responses(
    404, 422, 429, 503,
    s404="customer_id names a customer outside the regulator's jurisdiction.",
    s422="Schema errors, a since after until, or a tree_size no checkpoint was signed at.",
    s429="The caller is over its rate, or this server streams SEENBY_EXPORT_STREAMS_PER_PROCESS exports "
         "and manifests at once already; retry after Retry-After seconds.",
    s503="The log has not signed its first checkpoint yet, or the database cannot be reached or has no "
         "connection free.",
)
_EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The entries, in log order, streamed. Each JSONL line (or CSV record) is the "
                       "regulator's view of an entry plus entry_hash, log_index and canonical (base64).",
        "headers": _TREE_SIZE,
        "content": {media: {"schema": {"type": "string"}} for media in formats.MEDIA_TYPES.values()},
    },
    **_PROBLEMS,
}


@router.get("/accesses", response_class=StreamingResponse, responses=_EXPORT_RESPONSES,
            summary="Export entries in log order, cut against a signed checkpoint")
async def export_accesses(
    principal: RegulatorPrincipal, database: DatabaseDep, wanted: Filter, witnessing: WitnessingDep,
    slots: Slots,
    tree_size: TreeSize = None, after_log_index: Annotated[int | None, Query(ge=0, le=MAX_INDEX, description=(
        "Resume a download: only entries after this log_index (and, in CSV, no header row)."))] = None,
) -> StreamingResponse:
    cut = await _cut_in_a_slot(slots, database, principal, wanted, tree_size, witnessing)
    return _ClosingStream(
        slots, service.export_bytes(database, principal, wanted, cut, after_log_index),
        media_type=formats.MEDIA_TYPES[wanted.format],
        headers={TREE_SIZE_HEADER: str(cut.tree_size), "Content-Disposition":
                 f'attachment; filename="seenby-export-{cut.tree_size}.{wanted.format}"'},
    )


@router.get(
    "/accesses/manifest", response_class=JSONResponse,
    response_model=Manifest,
    responses={200: {"description": "The signed checkpoint, count, first and last log_index, SHA-256 of "
                                    "the export's bytes and an inclusion proof for every entry.",
                     "headers": _TREE_SIZE}, **_PROBLEMS},
    summary="The manifest of the export with the same parameters",
)
async def export_manifest(
    principal: RegulatorPrincipal, database: DatabaseDep, wanted: Filter, witnessing: WitnessingDep,
    slots: Slots,
    tree_size: TreeSize = None,
) -> StreamingResponse:
    cut = await _cut_in_a_slot(slots, database, principal, wanted, tree_size, witnessing)
    return _ClosingStream(
        slots, service.manifest_bytes(database, principal, wanted, cut),
        media_type="application/json",
        headers={TREE_SIZE_HEADER: str(cut.tree_size), "Content-Disposition":
                 f'attachment; filename="seenby-export-{cut.tree_size}.manifest.json"'},
    )
