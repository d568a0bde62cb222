"""The error tree and its single problem+json (RFC 9457) rendering.

    SeenbyError                 any error a client can be told about
    ├── BadRequest              400  malformed but schema-valid input (a bad cursor)
    ├── Unauthorized            401  no usable token (always with WWW-Authenticate: Bearer)
    ├── Forbidden               403  a valid token whose role may not do this
    │   └── AccessRefused       403  no access ticket: the access's flags refuse it (flags, entry_hash)
    ├── NotFound                404  absent, or not the caller's to see (existence is not leaked)
    ├── Conflict                409  an event_id replayed with another body
    ├── PayloadTooLarge         413  a body over SEENBY_MAX_BODY_BYTES
    ├── Unprocessable           422  input the schema or the business rules reject
    ├── TooManyRequests         429  a caller over its rate (always with Retry-After)
    └── ServiceUnavailable      503  the database cannot be reached (always with Retry-After)

Services raise these; nothing else in the package builds error responses.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
logger = logging.getLogger("seenby")


class SeenbyError(Exception):
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal Server Error"
    slug: ClassVar[str] = "internal"

    def __init__(self, detail: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers: dict[str, str] = {}
        self.extensions: dict[str, Any] = {}  # RFC 9457 §3.2 extension members


class BadRequest(SeenbyError):
    status, title, slug = 400, "Bad Request", "bad-request"


class Unauthorized(SeenbyError):
    status, title, slug = 401, "Unauthorized", "unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class Forbidden(SeenbyError):
    status, title, slug = 403, "Forbidden", "forbidden"


class AccessRefused(Forbidden):
    slug = "access-refused"

    def __init__(self, flags: list[str], entry_hash: str) -> None:
        super().__init__(f"no access ticket: the access is flagged {', '.join(flags)}; the attempt is "
                         f"recorded as entry {entry_hash}")
        self.extensions = {"flags": flags, "entry_hash": entry_hash}


class NotFound(SeenbyError):
    status, title, slug = 404, "Not Found", "not-found"


class Conflict(SeenbyError):
    status, title, slug = 409, "Conflict", "conflict"


class PayloadTooLarge(SeenbyError):
    status, title, slug = 413, "Payload Too Large", "payload-too-large"


class Unprocessable(SeenbyError):
    status, title, slug = 422, "Unprocessable Content", "validation"


class TooManyRequests(SeenbyError):
    status, title, slug = 429, "Too Many Requests", "rate-limited"

    def __init__(self, detail: str, retry_after_seconds: int) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(retry_after_seconds)}


class ServiceUnavailable(SeenbyError):
    status, title, slug = 503, "Service Unavailable", "unavailable"

    def __init__(self, detail: str, retry_after_seconds: int = 1) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(retry_after_seconds)}


# Where a request can learn that PostgreSQL is down, restarting or gone: connecting fails in the
# socket layer (refused, a name that does not resolve, a timeout); asyncpg raises connection
# (08) and operator-intervention (57P: shutting down, starting up) errors itself, inside a COPY;
# SQLAlchemy wraps the same in a DBAPIError. Other DBAPIErrors are bugs: a 500.
_DATABASE_ERRORS = (OSError, asyncpg.PostgresConnectionError, asyncpg.OperatorInterventionError, DBAPIError)
_UNREACHABLE_SQLSTATES = ("08", "57P", "53300")  # 53300: too many connections


def _database_unreachable(exc: Exception) -> bool:
    if not isinstance(exc, DBAPIError):
        return True
    sqlstate = str(getattr(exc.orig, "sqlstate", "") or "")
    return exc.connection_invalidated or sqlstate.startswith(_UNREACHABLE_SQLSTATES)


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    extensions: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://seenby.dev/problems/{slug}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    body.update(extensions or {})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {
            "field": ".".join(str(part) for part in error.get("loc", ())),
            "message": error.get("msg", "invalid"),
            "type": error.get("type", "invalid"),
        }
        for error in exc.errors()
    ]


_HTTP_SLUGS = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large"}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SeenbyError)
    async def _seenby_error(_: Request, exc: SeenbyError) -> JSONResponse:
        return problem_response(
            exc.status, exc.title, exc.detail, slug=exc.slug, errors=exc.errors,
            headers=exc.headers, extensions=exc.extensions,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(
            422, "Unprocessable Content", "the request does not match the schema",
            slug="validation", errors=_field_errors(exc),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not Found", 405: "Method Not Allowed"}.get(exc.status_code, "Error")
        return problem_response(
            exc.status_code, title, str(exc.detail), slug=_HTTP_SLUGS.get(exc.status_code, "http"),
            headers=dict(exc.headers or {}),
        )

    async def _database_error(request: Request, exc: Exception) -> JSONResponse:
        if not _database_unreachable(exc):
            return await _unexpected(request, exc)
        logger.warning("the database cannot be reached: %s", exc)
        unavailable = ServiceUnavailable("the database cannot be reached; retry shortly")
        return await _seenby_error(request, unavailable)

    # Handlers for these classes, not checks in the catch-all below: Starlette answers with the
    # catch-all's response and then raises the exception again, to the server.
    for error in _DATABASE_ERRORS:
        app.add_exception_handler(error, _database_error)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        return problem_response(
            500, "Internal Server Error", "an unexpected error occurred; it has been logged",
            slug="internal",
        )
