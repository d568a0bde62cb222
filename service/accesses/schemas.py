"""Request and response bodies for recording accesses."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from service.types import Country, Id, Text, Timestamp


class Action(StrEnum):
    VIEW = "view"
    LISTEN = "listen"
    DOWNLOAD = "download"
    ANNOTATE = "annotate"
    TRAIN = "train"
    INFER = "infer"
    SHARE = "share"
    EXPORT = "export"
    DELETE = "delete"


class Purpose(StrEnum):
    TROUBLESHOOTING = "troubleshooting"
    CUSTOMER_SUPPORT = "customer_support"
    QUALITY_REVIEW = "quality_review"
    MODEL_TRAINING = "model_training"
    SECURITY = "security"
    LEGAL_REQUEST = "legal_request"
    OTHER = "other"


class Medium(StrEnum):
    VIDEO = "video"
    AUDIO = "audio"
    THUMBNAIL = "thumbnail"
    METADATA = "metadata"


class ActorType(StrEnum):
    HUMAN = "human"
    ALGORITHM = "algorithm"


UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Actor(Strict):
    type: ActorType
    id: Id
    role: Annotated[Text, StringConstraints(min_length=1, max_length=128)]
    organization: Annotated[Text, StringConstraints(min_length=1, max_length=128)] | None = None
    country: Country | None = None
    version: Annotated[Text, StringConstraints(min_length=1, max_length=128)] | None = None

    @model_validator(mode="after")
    def _human_needs_organization_and_country(self) -> Actor:
        if self.type is ActorType.HUMAN:
            if self.organization is None or self.country is None:
                raise ValueError("a human actor needs 'organization' and 'country'")
            if self.version is not None:
                raise ValueError("'version' is for algorithm actors")
        return self


class AccessEvent(Strict):
    event_id: Annotated[str, StringConstraints(pattern=UUID_PATTERN)]
    customer_id: Id
    clip_id: Id
    occurred_at: Timestamp
    actor: Actor
    action: Action
    media: list[Medium] = Field(min_length=1, max_length=4)
    purpose: Purpose
    justification: Annotated[Text, StringConstraints(max_length=1000)] | None = None
    authorization_id: Id | None = None

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{
                "event_id": "6f1c2a9e-3b0d-4c8e-9a57-0c1d2e3f4a5b",
                "customer_id": "cust-1042",
                "clip_id": "clip-77a1",
                "occurred_at": "2026-11-24T09:15:02.120Z",
                "actor": {
                    "type": "human", "id": "emp-55812", "role": "Quality reviewer",
                    "organization": "Annotation vendor B", "country": "IN",
                },
                "action": "view",
                "media": ["video", "audio"],
                "purpose": "model_training",
                "justification": "labelling batch 2026-11-24/17",
                "authorization_id": None,
            }]
        },
    )


class AccessBatch(Strict):
    events: list[AccessEvent] = Field(min_length=1)


class Receipt(BaseModel):
    event_id: str
    entry_hash: str
    customer_seq: int
    recorded_at: str
    log_index: int | None = None


class BatchReceipts(BaseModel):
    receipts: list[Receipt]
