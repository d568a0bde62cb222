"""What covers an access (the contract's rules), as pure functions over the facts of the moment."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

NEEDS_REVIEW_PURPOSES = frozenset({"security", "legal_request"})

ACCESS_AFTER_DELETION = "access_after_deletion"
UNCONSENTED = "unconsented"
NEEDS_REVIEW = "needs_review"
AUTHORIZATION_INVALID = "authorization_invalid"
# An access flagged with any of these gets no access ticket (CONTRACT.md, "Refusal").
REFUSING_FLAGS = frozenset({UNCONSENTED, AUTHORIZATION_INVALID, ACCESS_AFTER_DELETION})


@dataclass(frozen=True)
class ConsentState:
    human_review: bool
    model_training: bool


@dataclass(frozen=True)
class CitedDecision:
    customer_id: str
    clip_id: str
    action: str
    purpose: str
    decision: str


class Facts(NamedTuple):  # a NamedTuple: built for every access recorded, and cheap to build
    """Everything the rules read about one customer's clip, as things stand now."""

    consent: ConsentState
    live_grant: bool
    deletion_requested: bool
    cited: CitedDecision | None = None


class Access(NamedTuple):
    customer_id: str
    clip_id: str
    actor_type: str
    action: str
    purpose: str
    authorization_id: str | None = None


@dataclass(frozen=True)
class Verdict:
    allow: bool
    reason: str
    flags: list[str] = field(default_factory=list)


def _consent_verdict(access: Access, facts: Facts) -> Verdict:
    if access.purpose in NEEDS_REVIEW_PURPOSES:
        return Verdict(True, f"purpose {access.purpose} is not judged by consent; flagged for review")
    if access.purpose == "model_training" or access.action == "train":
        if facts.consent.model_training:
            return Verdict(True, "the customer consented to model training")
        return Verdict(False, "model training needs the customer's model_training consent")
    if access.actor_type == "human":
        if facts.consent.human_review:
            return Verdict(True, "the customer consented to human review")
        if facts.live_grant:
            return Verdict(True, "a live troubleshooting grant covers this clip")
        return Verdict(False, "human access needs human_review consent or a troubleshooting grant")
    return Verdict(True, "an algorithm's access for this purpose needs no consent")


def decide(access: Access, facts: Facts) -> Verdict:
    """The answer to an access decision request."""
    if facts.deletion_requested:
        return Verdict(False, "the customer asked for this clip to be deleted")
    return _consent_verdict(access, facts)


def _cited_allow_matches(access: Access, cited: CitedDecision) -> bool:
    return cited.decision == "allow" and (
        cited.customer_id, cited.clip_id, cited.action, cited.purpose
    ) == (access.customer_id, access.clip_id, access.action, access.purpose)


def flags(access: Access, facts: Facts) -> list[str]:
    """The flags an access is recorded with; nothing is ever refused logging."""
    found = []
    if facts.deletion_requested:
        found.append(ACCESS_AFTER_DELETION)
    cited_covers = facts.cited is not None and _cited_allow_matches(access, facts.cited)
    if access.purpose in NEEDS_REVIEW_PURPOSES:
        found.append(NEEDS_REVIEW)  # not judged by consent, so never unconsented
    elif not _consent_verdict(access, facts).allow and not cited_covers:
        found.append(UNCONSENTED)
    if access.authorization_id is not None and not cited_covers:
        found.append(AUTHORIZATION_INVALID)
    return found
