"""HTTP for event streams: GET /v1/me/events."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask

from service.auth import CustomerPrincipal
from service.db import DatabaseDep
from service.errors import problem_responses
from service.events.hub import EventHub
from service.events.stream import entry_events, head_seq
from service.paging import MAX_SEQ

router = APIRouter(prefix="/v1", tags=["events"])

# One event of the stream (OpenAPI 3.1: the schema of an event-stream describes each event).
EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "The entry's customer_seq."},
        "event": {"type": "string", "const": "message"},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "description": "The entry, as an item of `/v1/me/entries`."},
        "retry": {"type": "integer", "minimum": 0},
    },
}

@router.get(
    "/me/events",
    response_class=EventSourceResponse,
    responses={
        200: {"description": "`text/event-stream`: one event per new entry of the calling customer, in "
                             "customer_seq order; `id` is the entry's customer_seq, `data` the entry as "
                             "`/v1/me/entries` gives it. Comments keep the connection alive. The stream "
                             "ends when the token expires or after SEENBY_EVENT_STREAM_MAX_SECONDS; "
                             "reconnect with `Last-Event-ID`.",
              "content": {"text/event-stream": {"schema": EVENT_SCHEMA}}},
        **problem_responses(422, 429, s422="`Last-Event-ID` is not a customer_seq.",
                            s429="This customer, or this server, has as many streams open as it allows."),
    },
    summary="Server-Sent Events of the calling customer's new entries",
)
async def my_events(
    request: Request, principal: CustomerPrincipal, database: DatabaseDep,
    last_event_id: Annotated[int | None, Header(ge=-1, le=MAX_SEQ, description=(
        "Resume after this customer_seq: the id of the last event received."))] = None,
    after: Annotated[int | None, Query(ge=-1, le=MAX_SEQ, description=(
        "The same as `Last-Event-ID`, for clients that cannot set it (the header wins)."))] = None,
) -> EventSourceResponse:
    hub: EventHub = request.app.state.event_hub
    subscription = hub.open(principal.subject)
    try:
        start = last_event_id if last_event_id is not None else after
        if start is None:
            start = await head_seq(database, principal.subject)
    except BaseException:
        hub.close(subscription)
        raise
    ends_at = time.time() + hub.max_seconds
    if principal.expires_at is not None:
        ends_at = min(ends_at, principal.expires_at)

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            async for event in entry_events(database, subscription, start, ends_at):
                yield event
        finally:
            hub.close(subscription)

    return EventSourceResponse(
        events(), ping=hub.keepalive_seconds, background=BackgroundTask(hub.close, subscription),
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
