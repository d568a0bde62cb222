"""What the public log's JSON endpoints answer: RFC 6962 proofs, hashes in lowercase hex."""

from __future__ import annotations

from pydantic import BaseModel, Field

from service.history.schemas import Hash


class InclusionProof(BaseModel):
    log_index: int = Field(ge=0)
    tree_size: int = Field(ge=1)
    leaf_hash: Hash
    hashes: list[Hash]


class ConsistencyProof(BaseModel):
    first: int = Field(ge=1)
    second: int = Field(ge=1)
    hashes: list[Hash]
