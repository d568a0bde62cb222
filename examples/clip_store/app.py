"""An example clip store: streams clip files from a folder, each request against one seenby ticket.

    CLIP_STORE_NAME=clip-store-eu CLIP_STORE_DIR=./clips \\
    CLIP_STORE_SEENBY_URL=http://127.0.0.1:8000 uvicorn examples.clip_store.app:app --port 8100

    GET /clips/{clip_id}            the clip, inline     (a ticket with action "view")
    GET /clips/{clip_id}/download   the clip, attachment (a ticket with action "download")

Settings (environment): CLIP_STORE_NAME, its name and so the audience its tickets must carry;
CLIP_STORE_DIR, the folder of clips, each file named by its clip id; CLIP_STORE_SEENBY_URL (the
JWKS is read from /v1/tickets/jwks.json there) or CLIP_STORE_JWKS_FILE; CLIP_STORE_ISSUER
(default seenby.dev/log). Without a ticket: 401; a ticket that fails a check: 403 naming the check;
a clip this store does not hold (asked for with a good ticket): 404.
"""

# No `from __future__ import annotations`: the routes' Annotated dependencies name a checker built
# inside create_app, which FastAPI could not find again from a string annotation.
import logging
import mimetypes
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Self

from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse, Response

from service.tickets.check import Jwks, MemoryReplayStore, TicketChecker
from service.tickets.clip_store import problem, ticket_dependency, ticket_problems

JWKS_PATH = "/v1/tickets/jwks.json"
# A clip id this store can hold is one plain file name: no separator, no "..", nothing hidden.
CLIP_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

logger = logging.getLogger("examples.clip_store")


@dataclass(frozen=True)
class ClipStoreSettings:
    name: str
    clip_dir: Path
    issuer: str = "seenby.dev/log"
    seenby_url: str | None = None
    jwks_file: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Self:
        missing = [name for name in ("CLIP_STORE_NAME", "CLIP_STORE_DIR") if not environ.get(name)]
        if missing:
            raise RuntimeError(f"set {' and '.join(missing)}")
        jwks_file = environ.get("CLIP_STORE_JWKS_FILE")
        return cls(
            name=environ["CLIP_STORE_NAME"], clip_dir=Path(environ["CLIP_STORE_DIR"]),
            issuer=environ.get("CLIP_STORE_ISSUER") or cls.issuer,
            seenby_url=environ.get("CLIP_STORE_SEENBY_URL") or None,
            jwks_file=Path(jwks_file) if jwks_file else None,
        )

    def jwks(self) -> Jwks:
        if (self.seenby_url is None) == (self.jwks_file is None):
            raise RuntimeError("set one of CLIP_STORE_SEENBY_URL and CLIP_STORE_JWKS_FILE")
        if self.jwks_file is not None:
            return Jwks.from_file(self.jwks_file)
        assert self.seenby_url is not None
        return Jwks(url=self.seenby_url.rstrip("/") + JWKS_PATH)


def create_app(settings: ClipStoreSettings | None = None) -> FastAPI:
    settings = settings or ClipStoreSettings.from_env()
    clip_dir = settings.clip_dir.resolve(strict=True)
    if not clip_dir.is_dir():
        raise RuntimeError(f"CLIP_STORE_DIR {clip_dir} is not a folder")
    checker = TicketChecker(settings.issuer, settings.name, settings.jwks(), MemoryReplayStore())
    view_claims = ticket_dependency(checker, action="view")
    download_claims = ticket_dependency(checker, action="download")

    app = FastAPI(title=f"clip store {settings.name}", docs_url=None, redoc_url=None, openapi_url=None)
    ticket_problems(app)

    @app.get("/clips/{clip_id}")
    async def view(clip_id: str, ticket: Annotated[dict[str, Any], Depends(view_claims)]) -> Response:
        return _serve(clip_dir, clip_id, ticket, disposition="inline")

    @app.get("/clips/{clip_id}/download")
    async def download(clip_id: str, ticket: Annotated[dict[str, Any], Depends(download_claims)]) -> Response:
        return _serve(clip_dir, clip_id, ticket, disposition="attachment")

    return app


def _serve(clip_dir: Path, clip_id: str, ticket: dict[str, Any], *, disposition: str) -> Response:
    path = _clip_path(clip_dir, clip_id)
    if path is None:
        return problem(404, "not-found", "Not Found", "this store holds no such clip")
    logger.info("served clip %s (%s) for ticket %s, entry %s, customer %s",
                clip_id, ticket["action"], ticket["jti"], ticket["entry_hash"], ticket["sub"])
    return FileResponse(
        path, media_type=mimetypes.guess_type(clip_id)[0] or "application/octet-stream",
        filename=clip_id, content_disposition_type=disposition,
        headers={"Cache-Control": "no-store"},  # each ticket is single use: no cache may serve it again
    )


def _clip_path(clip_dir: Path, clip_id: str) -> Path | None:
    """The clip's file, only when the id is a plain name and the file (symlinks followed) is in the
    folder: the ticket names the clip, but seenby accepts any clip id up to 128 characters."""
    if not CLIP_FILE_NAME.fullmatch(clip_id):
        return None
    path = (clip_dir / clip_id).resolve()
    if not path.is_relative_to(clip_dir) or not path.is_file():
        return None
    return path


@cache
def _app_from_env() -> FastAPI:
    if not logger.handlers:  # uvicorn sets up its own loggers only: show what was served beside them
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    return create_app()


def __getattr__(name: str) -> Any:
    """`app`, built from the environment on first use (uvicorn examples.clip_store.app:app), so that
    importing this module reads no setting."""
    if name == "app":
        return _app_from_env()
    raise AttributeError(name)
