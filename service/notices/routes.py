"""HTTP for notices: dead letters, listed and replayed by an admin."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, field_validator

from service.auth import AdminPrincipal
from service.db import DatabaseDep, ReadSessionDep
from service.errors import problem_responses
from service.notices import dead_letters
from service.paging import Page, page_response
from service.responses import JSONBody
from service.vocabulary import Cursor, Limit

router = APIRouter(prefix="/v1", tags=["notices"])

WebhookId = Annotated[str, StringConstraints(pattern=r"^[a-z.]+:[0-9a-f]{64}$")]


class DeadLetter(BaseModel):
    webhook_id: str
    type: str
    customer_id: str
    entry_hash: str
    customer_seq: int
    created_at: str
    attempts: int
    last_error: str | None


class ReplaySome(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"webhook_ids": ["access.human:" + "9f2c" * 16]}]})

    webhook_ids: list[WebhookId] = Field(min_length=1, max_length=1000)


class ReplayAll(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"all": True}]})

    all: StrictBool = Field(description="Every dead letter: `true` (nothing else is taken).",
                            json_schema_extra={"const": True})

    @field_validator("all")
    @classmethod
    def _only_true(cls, value: bool) -> bool:
        if not value:
            raise ValueError("`all` must be true; to replay some, give `webhook_ids`")
        return value


class Replayed(BaseModel):
    replayed: int = Field(description="Dead letters made pending again (ids that were not dead "
                                      "letters are left alone).")


@router.get("/notices/dead-letters", response_model=Page[DeadLetter],
            summary="Notices that failed for longer than SEENBY_WEBHOOK_RETRY_SECONDS (oldest first)")
async def list_dead_letters(principal: AdminPrincipal, session: ReadSessionDep, limit: Limit = 50,
                            cursor: Cursor = None) -> JSONBody:
    return page_response(await dead_letters.listed(session, limit=limit, cursor=cursor))


@router.post("/notices/dead-letters/replay", response_model=Replayed,
             responses=problem_responses(422, s422="Neither `webhook_ids` nor `all: true`, or both."),
             summary="Deliver dead letters again: pending, with a fresh retry period")
async def replay_dead_letters(body: ReplaySome | ReplayAll, principal: AdminPrincipal,
                              database: DatabaseDep) -> JSONBody:
    chosen = body.webhook_ids if isinstance(body, ReplaySome) else None
    return JSONBody({"replayed": await dead_letters.replay(database, chosen)})
