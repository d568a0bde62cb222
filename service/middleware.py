"""Pure ASGI middleware: body-size cap (and NUL-free URLs) and per-route request metrics."""

from __future__ import annotations

import time

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import BadRequest, PayloadTooLarge, SeenbyError, render
from service.metrics import REQUEST_SECONDS, REQUESTS


class BodyTooLarge(HTTPException):
    # An HTTPException, so FastAPI's body parsing re-raises it instead of answering 400; the error
    # handlers render it as the tree's PayloadTooLarge (errors.from_http).
    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, _too_large(max_bytes).detail)


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body exceeds {max_bytes} bytes")


class BodySizeLimit:
    """413 for a body over the limit, by Content-Length up front or by counting a streamed body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or b"%00" in scope["query_string"]:
            # No identifier holds NUL, and PostgreSQL text cannot: refuse it before it reaches a query.
            await _answer(BadRequest("the URL contains a NUL character"), scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _answer(_too_large(self.max_bytes), scope, receive, send)
            return
        seen = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if response_started:
                raise
            await _answer(_too_large(self.max_bytes), scope, receive, send)


async def _answer(error: SeenbyError, scope: Scope, receive: Receive, send: Send) -> None:
    """Outside the app its exception handlers cannot answer: the same rendering, called directly."""
    await render(error)(scope, receive, send)


class RequestMetrics:
    """Counts and times every request under its route template, never its raw path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            REQUESTS.labels(template, method, str(status)).inc()
            REQUEST_SECONDS.labels(template, method, str(status)).observe(time.perf_counter() - started)
