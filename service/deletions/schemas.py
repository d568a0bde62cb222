"""Request and response bodies for deletion requests and tasks."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from service.types import Id, Text
from service.vocabulary import DeletionStatus, TaskStatus


class FileDeletion(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"clip_ids": ["clip-77a1", "clip-77a2"]}, {"scope": "all"}],
            # What _one_of_clips_or_all checks, so that the schema says it too.
            "oneOf": [{"required": ["clip_ids"], "properties": {"clip_ids": {"type": "array"}}},
                      {"required": ["scope"], "properties": {"scope": {"const": "all"}}}],
        },
    )

    clip_ids: list[Id] | None = Field(default=None, min_length=1, max_length=1000,
                                      json_schema_extra={"uniqueItems": True})
    scope: Literal["all"] | None = None

    @model_validator(mode="after")
    def _one_of_clips_or_all(self) -> FileDeletion:
        if (self.clip_ids is None) == (self.scope is None):
            raise ValueError("give either 'clip_ids' or 'scope': 'all', not both")
        if self.clip_ids is not None and len(set(self.clip_ids)) != len(self.clip_ids):
            raise ValueError("'clip_ids' must be distinct")
        return self


class CompleteTask(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"evidence": "deleted 2 objects from s3://clips-eu/ at 10:02Z"}]},
    )

    evidence: Annotated[Text, StringConstraints(min_length=1, max_length=4000)]


class RejectDeletion(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "legal hold"}]})

    reason: Annotated[Text, StringConstraints(min_length=1, max_length=1000)]


class DeletionTask(BaseModel):
    """One service's part of a deletion request."""

    id: str
    request_id: str
    service: str
    status: TaskStatus
    evidence: str | None
    completed_at: str | None
    customer_id: str
    due_at: str
    clip_ids: list[str] | None = Field(None, description="The clips, for a request of some clips.")
    scope: Literal["all"] | None = Field(None, description="For a request of every clip.")


class DeletionRequestView(BaseModel):
    id: str
    customer_id: str
    scope: Literal["clips", "all"]
    clip_ids: list[str] | None = Field(description="Null for scope all.")
    status: DeletionStatus
    filed_at: str
    due_at: str
    completed_at: str | None
    rejected_at: str | None
    reason: str | None = Field(description="Why it was rejected.")
    overdue: bool = Field(description="Pending or in progress, and past due_at.")
    tasks: list[DeletionTask]
