"""Request and response bodies for consent, troubleshooting grants and access decisions."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, model_validator

from service.types import CustomerIdText, Id, Text
from service.vocabulary import Action, Actor, Purpose


class ConsentChange(BaseModel):
    """Either field may be left out to keep its current value."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"human_review": False, "model_training": False}],
            # What _something_to_change checks, so that the schema says it too.
            "anyOf": [{"required": [name], "properties": {name: {"type": "boolean"}}}
                      for name in ("human_review", "model_training")],
        },
    )

    human_review: StrictBool | None = None
    model_training: StrictBool | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> ConsentChange:
        if self.human_review is None and self.model_training is None:
            raise ValueError("give 'human_review' and/or 'model_training'")
        return self


class GrantRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"clip_id": "clip-77a1", "note": "doorbell audio cuts out"}]},
    )

    clip_id: Id
    note: Annotated[Text, StringConstraints(max_length=1000)] | None = None


class Withdrawal(BaseModel):
    """Withdrawing a grant takes no fields: an empty object, or no body at all."""

    model_config = ConfigDict(extra="forbid")


class DecisionRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{
            "customer_id": "cust-1042", "clip_id": "clip-77a1",
            "actor": {"type": "human", "id": "emp-55812", "role": "Support agent",
                      "organization": "Support vendor A", "country": "PT"},
            "action": "view", "purpose": "troubleshooting",
        }]},
    )

    customer_id: CustomerIdText
    clip_id: Id
    actor: Actor
    action: Action
    purpose: Purpose


class Consent(BaseModel):
    human_review: bool
    model_training: bool


class Grant(BaseModel):
    id: str
    clip_id: str
    note: str | None
    granted_at: str
    expires_at: str
    withdrawn_at: str | None
    status: Literal["live", "withdrawn", "expired"]


class Decision(BaseModel):
    id: str = Field(description="Cite it as an access's authorization_id.")
    decision: Literal["allow", "deny"]
    reason: str
    entry_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
