"""Constrained field types shared by request schemas, and periods of time."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints
from sqlalchemy import ColumnElement

from service.clock import format_micros, to_micros
from service.customers.countries import ASSIGNED, is_country
from service.errors import Unprocessable


def valid_unicode(value: str) -> str:
    # JSON "\ud800" escapes decode to lone surrogates, which no canonical encoding can carry;
    # PostgreSQL text cannot hold NUL.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode (no lone surrogates)") from exc
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


# RFC 3339's date-time (the zone optional here, required where a validator says so), in years 0002
# to 9998 so that any offset still lands in 1..9999 once in UTC. Python's fromisoformat alone would
# also take ISO 8601's other forms (week dates, the basic format), which browsers do not read.
MOMENT_PATTERN = (r"^(000[2-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]"
                  r"|999[0-8])-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|z|[+-][0-9]{2}:[0-9]{2})?$")
_MOMENT = re.compile(MOMENT_PATTERN)


def path_segment(value: str) -> str:
    if "/" in value or value in (".", ".."):
        raise ValueError("must be usable as one segment of a URL path (/v1/customers/{customer_id}): "
                         "no '/', and neither '.' nor '..'")
    return value


def _rfc3339(value: str) -> str:
    if not _MOMENT.fullmatch(value):
        raise ValueError("must be an RFC 3339 timestamp, e.g. 2026-11-24T09:15:02.120Z")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError("must be an RFC 3339 timestamp, e.g. 2026-11-24T09:15:02.120Z") from exc
    if parsed.tzinfo is None or "T" not in value:
        raise ValueError("must be an RFC 3339 timestamp with a time zone")
    return value


def assigned_country(code: str) -> str:
    if not is_country(code):
        raise ValueError("must be an ISO 3166-1 alpha-2 country code in capitals, e.g. DE")
    return code


# The schema says what valid_unicode checks (JSON Schema cannot name a lone surrogate).
_NO_NUL = Field(json_schema_extra={"pattern": r"^[^\x00]*$"})
Text = Annotated[str, AfterValidator(valid_unicode), _NO_NUL]
Id = Annotated[str, StringConstraints(min_length=1, max_length=128), AfterValidator(valid_unicode), _NO_NUL]
# A customer is read back at /v1/customers/{customer_id}/...: its id is one path segment, without
# "/" and other than "." and "..", which clients resolve away before sending (RFC 3986, 5.2.4).
CUSTOMER_ID_PATTERN = r"^(?:[^./\x00][^/\x00]*|\.[^./\x00][^/\x00]*|\.\.[^/\x00]+)$"
CustomerIdText = Annotated[
    str, StringConstraints(min_length=1, max_length=128), AfterValidator(valid_unicode),
    AfterValidator(path_segment), Field(json_schema_extra={"pattern": CUSTOMER_ID_PATTERN}),
]
# The schema lists the codes themselves: a client (or a fuzzer) reads which two capitals are one.
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$"),
                    Field(examples=["DE"], json_schema_extra={"enum": sorted(ASSIGNED)}),
                    AfterValidator(assigned_country)]
Timestamp = Annotated[str, StringConstraints(max_length=40), AfterValidator(_rfc3339),
                      Field(json_schema_extra={"format": "date-time"})]


def _representable(moment: datetime) -> datetime:
    """Within years 1..9999 once in UTC, so that it can be written back as an RFC 3339 time."""
    try:
        utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except OverflowError as exc:
        raise ValueError("must be between years 1 and 9999 in UTC") from exc
    return utc


Moment = Annotated[datetime, AfterValidator(_representable)]


@dataclass(frozen=True)
class Period:
    """[since, until) in microseconds since the epoch; either end may be open."""

    since_us: int | None = None
    until_us: int | None = None

    @classmethod
    def of(cls, since: datetime | None, until: datetime | None) -> Period:
        """422 for a period that ends before it starts."""
        period = cls(None if since is None else to_micros(since), None if until is None else to_micros(until))
        if period.since_us is not None and period.until_us is not None and period.since_us > period.until_us:
            raise Unprocessable.at("query.since", "since must not be after until", "since is after until")
        return period

    def conditions(self, column: Any) -> list[ColumnElement[bool]]:
        """`column` (microseconds) within the period."""
        conditions = []
        if self.since_us is not None:
            conditions.append(column >= self.since_us)
        if self.until_us is not None:
            conditions.append(column < self.until_us)
        return conditions

    def bounds(self) -> dict[str, str | None]:
        """As the ledger writes times (RFC 3339, microseconds, Z)."""
        return {"since": None if self.since_us is None else format_micros(self.since_us),
                "until": None if self.until_us is None else format_micros(self.until_us)}
