"""Request and response bodies for recording accesses."""

from __future__ import annotations

from typing import Annotated, Any, NotRequired

from pydantic import ConfigDict, Field, StringConstraints, with_config
from typing_extensions import TypedDict

from service.types import CustomerIdText, Id, Text, Timestamp
from service.vocabulary import EVENT_CONFIG, Action, Actor, Medium, Purpose

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


@with_config(ConfigDict(
    **EVENT_CONFIG,
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
        }]
    },
))
class AccessEvent(TypedDict):
    event_id: Annotated[str, StringConstraints(pattern=UUID_PATTERN)]
    customer_id: CustomerIdText
    clip_id: Id
    occurred_at: Timestamp
    actor: Actor
    action: Action
    media: Annotated[list[Medium], Field(min_length=1, max_length=4)]
    purpose: Purpose
    justification: NotRequired[Annotated[Text, StringConstraints(max_length=1000)] | None]
    authorization_id: NotRequired[Id | None]


@with_config(EVENT_CONFIG)
class AccessBatch(TypedDict):
    events: Annotated[list[AccessEvent], Field(min_length=1)]


def as_sent(event: AccessEvent) -> dict[str, Any]:
    """The event as its digest and entry see it: an explicit null equals an absent field."""
    body: dict[str, Any] = {k: v for k, v in event.items() if v is not None}
    body["actor"] = {k: v for k, v in event["actor"].items() if v is not None}
    return body


# A plain dict of strings and integers, which the garbage collector does not track while a
# 1,000-event batch waits for its answer (a docstring here would land in the API description).
class Receipt(TypedDict):
    event_id: str
    entry_hash: str
    customer_seq: int
    recorded_at: str
    log_index: NotRequired[int | None]


class BatchReceipts(TypedDict):
    receipts: list[Receipt]
