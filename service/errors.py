"""The error tree and its single problem+json (RFC 9457) rendering.

    SeenbyError                 any error a client can be told about
    ├── BadRequest              400  a URL no identifier can match (it holds a NUL character)
    ├── Unauthorized            401  no usable token (always with WWW-Authenticate: Bearer)
    ├── Forbidden               403  a valid token whose role may not do this
    │   └── AccessRefused       403  no access ticket: the access's flags refuse it (flags, entry_hash)
    ├── NotFound                404  absent, or not the caller's to see (existence is not leaked)
    ├── MethodNotAllowed        405  a path that exists, asked with a method it does not answer
    ├── Conflict                409  an event_id replayed with another body; a request in the wrong state
    ├── PayloadTooLarge         413  a body over SEENBY_MAX_BODY_BYTES
    ├── Unprocessable           422  input the schema or the business rules reject (a cursor this
    │                                service did not issue, a tree size beyond the latest checkpoint)
    ├── TooManyRequests         429  a caller over its rate (always with Retry-After)
    └── ServiceUnavailable      503  the database cannot be reached (always with Retry-After)

Services and middleware raise these (or render them, outside the app); one function, `render`,
turns any of them into problem+json, and `problem_responses` documents them in OpenAPI.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, NotRequired, Self

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope
from typing_extensions import TypedDict

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

    def __init__(self, detail: str, *, token_sent: bool = True) -> None:
        super().__init__(detail)
        # RFC 6750 §3.1: a request that sent no bearer token gets the bare challenge, no error code.
        self.headers = {"WWW-Authenticate": 'Bearer error="invalid_token"' if token_sent else "Bearer"}


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


class MethodNotAllowed(SeenbyError):
    status, title, slug = 405, "Method Not Allowed", "method-not-allowed"


class Conflict(SeenbyError):
    status, title, slug = 409, "Conflict", "conflict"


class PayloadTooLarge(SeenbyError):
    status, title, slug = 413, "Payload Too Large", "payload-too-large"


class Unprocessable(SeenbyError):
    status, title, slug = 422, "Unprocessable Content", "validation"

    @classmethod
    def at(cls, field: str, detail: str, message: str | None = None, kind: str = "value_error") -> Self:
        """A 422 for one field (`query.cursor`, `body.events`), its `errors` naming it."""
        return cls(detail, errors=[{"field": field, "message": message or detail, "type": kind}])


class AheadOfThisDatabase(SeenbyError):
    """Asked for a tree size (or a tile of one) beyond the latest checkpoint this database holds:
    on a standby, possibly one the primary has signed and the standby has not replayed yet."""


class BeyondLatestCheckpoint(Unprocessable, AheadOfThisDatabase):
    pass


class TileBeyondLatestCheckpoint(NotFound, AheadOfThisDatabase):
    pass


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
DATABASE_ERRORS = (OSError, asyncpg.PostgresConnectionError, asyncpg.OperatorInterventionError, DBAPIError)
# 53300: too many connections; 40001: also a standby cancelling a read that conflicts with what it
# replays (retrying answers it).
_UNREACHABLE_SQLSTATES = ("08", "57P", "53300", "40001")


def argument_never_sent(dbapi_error: BaseException | None) -> bool:
    """Whether asyncpg refused, before the server saw it, an argument it could not encode (a lone
    surrogate, an integer past its type): a DataError of its own, without the server's fields. The
    server's errors of that class carry a severity."""
    cause = getattr(dbapi_error, "__cause__", None)
    return type(cause) is asyncpg.DataError and getattr(cause, "severity", None) is None


def _database_unreachable(exc: Exception) -> bool:
    if not isinstance(exc, DBAPIError):
        return True
    sqlstate = str(getattr(exc.orig, "sqlstate", "") or "")
    # A connection closed after an argument never sent (service.db) is a bug of ours, not an outage.
    invalidated = exc.connection_invalidated and not argument_never_sent(exc.orig)
    return invalidated or sqlstate.startswith(_UNREACHABLE_SQLSTATES)


class FieldError(TypedDict):
    field: str
    message: str
    type: str


class Problem(TypedDict):
    """An RFC 9457 problem: every error seenby answers, as application/problem+json."""

    type: str
    title: str
    status: int
    detail: str
    errors: NotRequired[list[FieldError]]


def render(error: SeenbyError) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://seenby.dev/problems/{error.slug}",
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
    }
    if error.errors is not None:
        body["errors"] = error.errors
    body.update(error.extensions)
    return JSONResponse(body, status_code=error.status, media_type=PROBLEM_JSON, headers=error.headers)


_BY_STATUS: dict[int, type[SeenbyError]] = {
    cls.status: cls
    for cls in (BadRequest, Unauthorized, Forbidden, NotFound, MethodNotAllowed, Conflict,
                PayloadTooLarge, Unprocessable, TooManyRequests, ServiceUnavailable)
}

_PROBLEM_DESCRIPTIONS = {
    400: "The URL holds a NUL character, which no identifier can; or the body cannot be read as text.",
    401: "No usable bearer token: missing, malformed, expired, wrongly signed or addressed.",
    403: "The token's role may not use this operation.",
    404: "Absent, or not the caller's to see.",
    409: "Conflicts with what is already recorded.",
    413: "The body exceeds SEENBY_MAX_BODY_BYTES.",
    422: "The request does not match the schema or the rules the operation states; `errors` lists "
         "each field at fault.",
    429: "The caller is over its rate; retry after Retry-After seconds.",
    503: "The database cannot be reached or has no connection free (or the log has not signed its "
         "first checkpoint yet); retry after Retry-After seconds.",
}
_PROBLEM_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "Always `Bearer ...`.", "schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
    503: {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
}
PROBLEM_SCHEMA_REF = "#/components/schemas/Problem"


def problem_responses(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these statuses, each problem+json; `descriptions` (by "s404" and so on)
    say what the operation means by one."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        response: dict[str, Any] = {
            "description": descriptions.get(f"s{status}", _PROBLEM_DESCRIPTIONS[status]),
            "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}},
        }
        if status in _PROBLEM_HEADERS:
            response["headers"] = _PROBLEM_HEADERS[status]
        responses[status] = response
    return responses


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {
            "field": ".".join(str(part) for part in error.get("loc", ())),
            "message": error.get("msg", "invalid"),
            "type": error.get("type", "invalid"),
        }
        for error in exc.errors()
    ]


def install_error_handlers(
    app: FastAPI, allowed_methods: Callable[[Scope], Iterable[str]] | None = None
) -> None:
    """`allowed_methods`: every method the request's path answers, for a 405's Allow header
    (Starlette names only those of the first route whose path matched)."""

    @app.exception_handler(SeenbyError)
    async def _seenby_error(_: Request, exc: SeenbyError) -> JSONResponse:
        return render(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return render(Unprocessable("the request does not match the schema", errors=_field_errors(exc)))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Starlette's own: no route (404), a method the route does not answer (405), a body that is
        # not text (400, from FastAPI), and the body cap (413, raised while FastAPI reads a body).
        error = from_http(exc)
        if exc.status_code == 405 and allowed_methods is not None:
            error.headers["Allow"] = ", ".join(sorted(allowed_methods(request.scope)))
        return render(error)

    async def _database_error(request: Request, exc: Exception) -> JSONResponse:
        if not _database_unreachable(exc):
            return await _unexpected(request, exc)
        logger.warning("the database cannot be reached: %s", exc)
        unavailable = ServiceUnavailable("the database cannot be reached; retry shortly")
        return await _seenby_error(request, unavailable)

    # Handlers for these classes, not checks in the catch-all below: Starlette answers with the
    # catch-all's response and then raises the exception again, to the server.
    for error in DATABASE_ERRORS:
        app.add_exception_handler(error, _database_error)

    @app.exception_handler(PoolTimeout)
    async def _pool_exhausted(request: Request, exc: PoolTimeout) -> JSONResponse:
        logger.warning("no database connection came free in time: %s", exc)
        busy = ServiceUnavailable("every database connection of this server is in use; retry shortly", 5)
        return await _seenby_error(request, busy)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        return render(SeenbyError("an unexpected error occurred; it has been logged"))


def from_http(exc: StarletteHTTPException) -> SeenbyError:
    """The error of the tree that a Starlette HTTPException stands for, its headers kept."""
    error = _http_error_class(exc.status_code)(str(exc.detail))
    error.headers = {**error.headers, **dict(exc.headers or {})}
    return error


@functools.cache
def _http_error_class(status: int) -> type[SeenbyError]:
    known = _BY_STATUS.get(status)
    if known is not None and known.__init__ is SeenbyError.__init__:
        return known
    return type(f"HTTP{status}", (SeenbyError,), {"status": status, "title": "Error", "slug": "http"})
