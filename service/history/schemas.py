"""What histories, chains and entries answer: the recorded entry's fields at top level, plus where
it sits in the chain and the log. Documentation only: routes send the entries' dicts as they are,
so an entry keeps every field it was recorded with (each kind has its own)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from service.vocabulary import Action, ActorType, Medium, Purpose

Hash = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]

ENTRY_KINDS = ("access, access_decision, consent_changed, troubleshooting_granted, "
               "troubleshooting_withdrawn, deletion_requested, deletion_task_completed, "
               "deletion_completed, deletion_rejected, ...")


class _Open(BaseModel):
    # An entry's kind brings fields of its own: they are part of the answer, not an error.
    model_config = ConfigDict(extra="allow")


class RecordedActor(_Open):
    """As recorded: a human's employee id is replaced by `pseudonym` and `id_commitment`; a
    regulator also reads the human's `id` and `id_salt`."""

    type: ActorType
    role: str
    id: str | None = Field(None, description="An algorithm's id; a human's only for regulators.")
    organization: str | None = None
    country: str | None = None
    version: str | None = None
    pseudonym: str | None = Field(None, description="Humans: stable per customer.")
    id_commitment: str | None = Field(None, description="Humans: SHA-256 over a salt and the employee id.")
    id_salt: str | None = Field(None, description="Humans, for regulators only.")


class RecordedEntry(_Open):
    """An entry exactly as hashed (its canonical bytes are the RFC 8785 encoding of this object)."""

    kind: str = Field(description=f"The kind of entry: {ENTRY_KINDS}.")
    customer_id: str
    customer_seq: int = Field(ge=0)
    prev_hash: Hash
    recorded_at: str
    recorded_by: str
    nonce: str = Field(description="16 random bytes, base64.")
    flags: list[str] = Field(description="access_after_deletion, unconsented, needs_review, ...")
    # Present on accesses (and, but for media, on access decisions):
    event_id: str | None = None
    clip_id: str | None = None
    occurred_at: str | None = None
    actor: RecordedActor | None = None
    action: Action | None = None
    media: list[Medium] | None = None
    purpose: Purpose | None = None
    justification: str | None = None
    authorization_id: str | None = None


class EntryView(RecordedEntry):
    """One history item: the entry's fields, and where it sits in the log."""

    entry_hash: Hash
    log_index: int | None = Field(ge=0, description="Null until the entry is in the Merkle log.")


class AccessView(EntryView):
    """An access entry as a history item."""

    event_id: str
    clip_id: str
    occurred_at: str
    actor: RecordedActor
    action: Action
    media: list[Medium]
    purpose: Purpose


class ChainItem(EntryView):
    entry: RecordedEntry = Field(description="The entry exactly as hashed.")
    canonical: str = Field(description="Base64 of the entry's canonical (RFC 8785) bytes.")


class ListedChainItem(ChainItem):
    inclusion: list[Hash] | None = Field(default=None, description=(
        "Only with `tree_size`: the entry's inclusion proof in the tree of that size (lowercase hex), "
        "or null while the entry is not in it."))


class EntryProof(BaseModel):
    tree_size: int = Field(ge=1)
    leaf_hash: Hash
    hashes: list[Hash] = Field(description="The inclusion proof, lowercase hex.")
    checkpoint: str = Field(description="The signed checkpoint the proof is against.")


class EntryDetail(ChainItem):
    proof: EntryProof | None = Field(description="Inclusion in the latest checkpoint; null until the "
                                                 "entry is in the log.")


class Summary(BaseModel):
    total: int = Field(ge=0)
    by_actor_type: dict[str, int]
    by_purpose: dict[str, int]
    by_action: dict[str, int]
    by_actor_country: dict[str, int] = Field(description="Actors with no country are left out.")
    by_clip: dict[str, int]
    refused: int = Field(ge=0, description="Attempts refused an access ticket (access_refused entries) "
                                           "within the filters; not counted in the other numbers.")
