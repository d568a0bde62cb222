"""The export manifest's shape (the manifest itself is streamed, never built as one object)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from service.history.schemas import Hash


class ManifestParameters(BaseModel):
    customer_id: str | None
    since: str | None
    until: str | None
    kind: str
    format: str


class ManifestProof(BaseModel):
    log_index: int = Field(ge=0)
    leaf_hash: Hash
    hashes: list[Hash]


class Manifest(BaseModel):
    checkpoint: str = Field(description="The signed checkpoint the export was cut against.")
    tree_size: int = Field(ge=0)
    parameters: ManifestParameters
    proofs: list[ManifestProof] = Field(description="An inclusion proof for every exported entry.")
    count: int = Field(ge=0)
    first_log_index: int | None
    last_log_index: int | None
    sha256: Hash = Field(description="Of the export's bytes with the same parameters.")
