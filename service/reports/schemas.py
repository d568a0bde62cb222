"""The transparency report's shape, as the contract gives it."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Period(BaseModel):
    since: str | None = Field(description="Inclusive; null for the beginning.")
    until: str | None = Field(description="Exclusive; null for now.")


class AccessCounts(BaseModel):
    total: int
    by_purpose: dict[str, int]
    by_action: dict[str, int]
    by_actor_type: dict[str, int]
    by_organization: dict[str, int] = Field(description="Actors with no organization are left out.")
    by_actor_country: dict[str, int] = Field(description="Actors with no country are left out.")
    flagged: dict[str, int] = Field(description="Accesses per flag; unconsented and "
                                                "access_after_deletion always present.")
    distinct_customers: int
    distinct_clips_seen_by_humans: int
    refused: int = Field(description="Attempts refused an access ticket (access_refused entries), "
                                     "not counted in the other numbers.")


class DeletionCounts(BaseModel):
    filed: int
    by_status: dict[str, int]
    overdue: int = Field(description="Pending or in progress, and past due_at.")
    median_days_to_complete: float | None = Field(description="Of those completed; null if none.")


class ObjectionCounts(BaseModel):
    total: int = Field(description="Objections filed in the period.")
    by_purpose: dict[str, int] = Field(description="By the objected access's purpose.")
    by_organization: dict[str, int] = Field(description="By the objected access's actor organization "
                                                        "(accesses with none are left out).")


class TransparencyReport(BaseModel):
    period: Period
    accesses: AccessCounts
    deletion_requests: DeletionCounts
    objections: ObjectionCounts
