"""The words every domain shares: what an access is (actions, purposes, media, actors), the
statuses of deletion requests and tasks, and the path and query parameters that name a customer,
an entry, an object, a page, a period or a place in the log."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, NotRequired

from fastapi import Path, Query
from pydantic import AfterValidator, BeforeValidator, ConfigDict, StringConstraints, with_config
from pydantic.config import JsonDict
from typing_extensions import TypedDict

from service.types import CUSTOMER_ID_PATTERN, MOMENT_PATTERN, Country, Id, Moment, Text


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


class DeletionStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    REJECTED = "rejected"


OPEN_DELETION_STATUSES = (DeletionStatus.PENDING, DeletionStatus.IN_PROGRESS)


class TaskStatus(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"


# Events are validated into plain dicts, not models: a 1,000-event batch validates in about half the
# time (4.7 against 8.2 µs an event, with the dump the models then needed), and leaves about a third
# as many objects for the garbage collector to walk while it waits. Enum fields arrive as plain
# strings.
EVENT_CONFIG = ConfigDict(extra="forbid", use_enum_values=True)


# What _human_needs_organization_and_country checks, so that the schema says it too.
_ACTOR_RULE: JsonDict = {"anyOf": [
    {"properties": {"type": {"const": ActorType.ALGORITHM.value}}},
    {"required": ["organization", "country"],
     "properties": {"type": {"const": ActorType.HUMAN.value}, "organization": {"type": "string"},
                    "country": {"type": "string"}, "version": {"type": "null"}}},
]}


@with_config(ConfigDict(**EVENT_CONFIG, json_schema_extra=_ACTOR_RULE))
class Actor(TypedDict):
    type: ActorType
    id: Id
    role: Annotated[Text, StringConstraints(min_length=1, max_length=128)]
    organization: NotRequired[Annotated[Text, StringConstraints(min_length=1, max_length=128)] | None]
    country: NotRequired[Country | None]
    version: NotRequired[Annotated[Text, StringConstraints(min_length=1, max_length=128)] | None]


def _human_needs_organization_and_country(actor: dict[str, Any]) -> dict[str, Any]:
    if actor["type"] == ActorType.HUMAN:
        if actor.get("organization") is None or actor.get("country") is None:
            raise ValueError("a human actor needs 'organization' and 'country'")
        if actor.get("version") is not None:
            raise ValueError("'version' is for algorithm actors")
    return actor


# The name now stands for the actor with its rule, wherever a schema takes one (the schema keeps
# the class's name): an unchecked Actor cannot be picked by mistake.
Actor = Annotated[Actor, AfterValidator(_human_needs_organization_and_country)]  # type: ignore[misc,assignment]


# No identifier holds NUL (PostgreSQL text cannot): the middleware answers 400 for a URL with one.
NO_NUL = r"^[^\x00]*$"
MAX_INDEX = 2**63 - 1  # a BIGINT
# What decode_cursor accepts: unpadded base64url. Which of those strings name a page is known only to
# the service that issued them; the format says so, and the 422 answers any other.
CURSOR_FORMAT = "seenby-cursor"

CustomerId = Annotated[str, Path(min_length=1, max_length=128, pattern=CUSTOMER_ID_PATTERN,
                                 examples=["cust-1042"])]
EntryHash = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")]
ObjectId = Annotated[str, Path(min_length=1, max_length=64, pattern=NO_NUL)]
Limit = Annotated[int, Query(ge=1, le=500, description="Page size (at most 500).")]
Cursor = Annotated[str | None, Query(
    min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_-]+$",
    description="next_cursor of the previous page; any other string answers 422.",
    json_schema_extra={"format": CURSOR_FORMAT},
)]
ClipFilter = Annotated[str | None, Query(max_length=128, pattern=NO_NUL)]


# Periods: `since` inclusive, `until` exclusive, RFC 3339 (a time without a zone is read as UTC).
_MOMENT = re.compile(MOMENT_PATTERN)


def _rfc3339_text(value: Any) -> Any:
    # Without this, pydantic would also take numbers (Unix time) and bare dates.
    if not isinstance(value, str) or not (match := _MOMENT.fullmatch(value)):
        raise ValueError("must be an RFC 3339 date-time, e.g. 2026-11-24T09:15:02Z")
    fraction = match.group(2) or ""
    if fraction[7:].strip("0"):
        # Times are kept in microseconds: a bound between two of them is met first by the later one
        # (since inclusive, until exclusive alike), where pydantic would cut it to the earlier.
        within = datetime.fromisoformat(value.replace(fraction, fraction[:7], 1).replace("z", "Z"))
        return within + timedelta(microseconds=1)
    return value


_PERIOD_SCHEMA = {"type": "string", "format": "date-time", "pattern": MOMENT_PATTERN}
Moment_ = Annotated[Moment, BeforeValidator(_rfc3339_text)]
OccurredSince = Annotated[Moment_ | None, Query(
    description="occurred_at >= since (RFC 3339).", json_schema_extra=_PERIOD_SCHEMA)]
OccurredUntil = Annotated[Moment_ | None, Query(description=(
    "occurred_at < until (RFC 3339); a since after until answers 422."), json_schema_extra=_PERIOD_SCHEMA)]
RecordedSince = Annotated[Moment_ | None, Query(
    description="recorded_at >= since (RFC 3339).", json_schema_extra=_PERIOD_SCHEMA)]
RecordedUntil = Annotated[Moment_ | None, Query(description=(
    "recorded_at < until (RFC 3339); a since after until answers 422."), json_schema_extra=_PERIOD_SCHEMA)]


# Places in the Merkle log.
LogIndex = Annotated[int, Query(ge=0, le=MAX_INDEX, description="A leaf's index, from 0.")]
TreeSize = Annotated[int, Query(ge=1, le=MAX_INDEX, description=(
    "A tree size at most the latest checkpoint's (beyond it: 422)."))]
