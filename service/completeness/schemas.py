"""What GET /v1/customers/{id}/completeness answers (CONTRACT "Completeness: the customer index")."""

from __future__ import annotations

from pydantic import BaseModel, Field

from service.history.schemas import Hash


class IndexLeafProof(BaseModel):
    log_index: int = Field(ge=0, description="The index leaf's place in the log; it covers the entries "
                                             "below it.")
    canonical: str = Field(description='Base64 of the leaf\'s RFC 8785 bytes: {"kind": "customer_index", '
                                       '"covers", "root", "customers"}.')
    hashes: list[Hash] = Field(description="The index leaf's inclusion proof in the checkpoint's tree.")


class HeadProof(BaseModel):
    customer_seq: int = Field(ge=0)
    entry_hash: Hash
    log_index: int = Field(ge=0)
    hashes: list[Hash] = Field(description="The head's inclusion proof in the checkpoint's tree.")


class IndexEntry(BaseModel):
    key: Hash
    value: Hash


class IndexLookup(BaseModel):
    leaf: IndexEntry | None = Field(description="The leaf found on the key's path: the customer's own, "
                                                "another key's (absence), or null for an empty subtree.")
    siblings: list[Hash] = Field(description="From the found leaf's depth up to the root, deepest first.")


class CompletenessProof(BaseModel):
    checkpoint: str = Field(description="The signed note (C2SP signed-note) both inclusion proofs are in.")
    index: IndexLeafProof
    key: Hash = Field(description='SHA-256("seenby/customer-index/v1" || 0x00 || the customer id).')
    head: HeadProof | None = Field(description="The customer's last entry below index.log_index, or null.")
    proof: IndexLookup
