"""Request and response bodies for objections."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from service.types import Text

HexHash = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class FileObjection(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"entry_hash": "9f2c" + "0" * 60,
                                         "reason": "I never agreed to contractors watching my clips."}]},
    )

    entry_hash: HexHash = Field(description="The access objected to: one of the customer's own entries.")
    reason: Annotated[Text, StringConstraints(min_length=1, max_length=1000)] | None = None


class ObjectionView(BaseModel):
    customer_id: str
    entry_hash: str = Field(description="The objection's own entry in the customer's chain.")
    objected_entry_hash: str = Field(description="The entry objected to.")
    filed_at: str
    reason: str | None
    purpose: str | None = Field(description="The objected access's purpose.")
    organization: str | None = Field(description="The objected access's actor organization.")


class FiledObjection(ObjectionView):
    customer_seq: int = Field(description="The objection entry's place in the customer's chain.")
