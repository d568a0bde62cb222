"""The ticket check as a FastAPI dependency, for a clip store that is a FastAPI app.

    ticket_problems(app)                 # once: renders the refusals as problem+json
    ViewTicket = Annotated[dict[str, Any], Depends(ticket_dependency(checker, action="view"))]

    @app.get("/clips/{clip_id}")
    async def clip(clip_id: str, ticket: ViewTicket) -> FileResponse: ...

No `Authorization: Ticket <jws>` header answers 401 with `WWW-Authenticate: Ticket`; a ticket that
fails a check answers 403 whose body names the check. Both are HTTPExceptions, so without
ticket_problems() the status codes are the same and only the body is FastAPI's plain one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Path, Request
from fastapi.responses import JSONResponse

from service.tickets.check import TicketChecker, TicketRefused

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://seenby.dev/problems/"
SCHEME = "Ticket"


class TicketProblem(HTTPException):
    def __init__(self, status: int, slug: str, title: str, detail: str, **members: str) -> None:
        super().__init__(status, detail, headers={"WWW-Authenticate": SCHEME} if status == 401 else None)
        self.slug = slug
        self.title = title
        self.members = members


def problem(
    status: int, slug: str, title: str, detail: str, *, headers: Mapping[str, str] | None = None,
    **members: Any,
) -> JSONResponse:
    """An RFC 9457 problem+json answer."""
    body = {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail, **members}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def ticket_problems(app: FastAPI) -> None:
    async def render(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, TicketProblem)
        return problem(exc.status_code, exc.slug, exc.title, exc.detail, headers=exc.headers, **exc.members)

    app.add_exception_handler(TicketProblem, render)


def ticket_dependency(
    checker: TicketChecker, *, action: str
) -> Callable[[Request, str], Awaitable[dict[str, Any]]]:
    """A dependency that answers with the ticket's claims when it allows `action` on the path's
    `clip_id`, and raises TicketProblem (401, 403) otherwise."""

    async def ticket_claims(request: Request, clip_id: Annotated[str, Path()]) -> dict[str, Any]:
        ticket = _ticket(request.headers.get("authorization"))
        try:
            return await checker.check(ticket, clip_id=clip_id, action=action)
        except TicketRefused as refused:
            raise TicketProblem(403, "ticket-refused", "Ticket refused", refused.detail,
                                check=refused.check) from refused

    return ticket_claims


def _ticket(authorization: str | None) -> str:
    scheme, _, ticket = (authorization or "").partition(" ")
    ticket = ticket.strip()
    # RFC 9110 §11.1: the scheme is case-insensitive. Another scheme (a Bearer API token) is no ticket.
    if scheme.lower() != SCHEME.lower() or not ticket:
        raise TicketProblem(401, "ticket-required", "Ticket required",
                            f"a clip is served only with an 'Authorization: {SCHEME} <ticket>' header")
    return ticket
