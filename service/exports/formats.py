"""The exact bytes of an export (JSONL or CSV) and of its manifest: pure, shared by server and verifier.

An export's bytes are a function of the entries alone, so the server can hash them for the manifest
without sending them, and `seenby verify export` can re-render every line from its canonical bytes
and compare.

CSV columns, in order (lists are joined with ";", absent values are empty; `details` holds, as
compact JSON, the entry's fields that have no column of their own, e.g. a consent change's):

    log_index, entry_hash, kind, customer_id, customer_seq, prev_hash, recorded_at, recorded_by, flags,
    event_id, clip_id, occurred_at, action, purpose, media, justification, authorization_id,
    actor_type, actor_id, actor_id_salt, actor_pseudonym, actor_id_commitment, actor_role,
    actor_organization, actor_country, actor_version, details, nonce, canonical

The manifest is one JSON object, written so that a verifier can read it a line at a time: a first
line with the checkpoint and parameters that opens "proofs", one proof per line, and a last line
with the count, the first and last log_index and the SHA-256 of the export's bytes.
"""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from service.history.views import entry_view

FORMATS = ("jsonl", "csv")
MEDIA_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8; header=present"}

_ENTRY_COLUMNS = (
    "kind", "customer_id", "customer_seq", "prev_hash", "recorded_at", "recorded_by", "flags",
    "event_id", "clip_id", "occurred_at", "action", "purpose", "media", "justification",
    "authorization_id",
)
_ACTOR_COLUMNS = ("type", "id", "id_salt", "pseudonym", "id_commitment", "role", "organization",
                  "country", "version")
CSV_COLUMNS: tuple[str, ...] = (
    "log_index", "entry_hash", *_ENTRY_COLUMNS, *(f"actor_{name}" for name in _ACTOR_COLUMNS),
    "details", "nonce", "canonical",
)
_OWN_COLUMNS = frozenset({"log_index", "entry_hash", *_ENTRY_COLUMNS, "actor", "nonce", "canonical"})


def export_view(
    canonical: bytes, entry_hash: str, log_index: int, identity: tuple[str, str] | None
) -> dict[str, Any]:
    """A regulator's view of the entry (with a human actor's id and id_salt) plus its canonical bytes."""
    item = entry_view(canonical, entry_hash, log_index, identity, with_identity=True)
    item["canonical"] = base64.b64encode(canonical).decode("ascii")
    return item


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def jsonl_line(view: Mapping[str, Any]) -> bytes:
    return _dumps(view) + b"\n"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str) and ";" not in v for v in value):
        return ";".join(value)
    return _dumps(value).decode()


def csv_row(view: Mapping[str, Any]) -> list[str]:
    actor = view.get("actor")
    actor = actor if isinstance(actor, dict) else {}
    details = {k: v for k, v in view.items() if k not in _OWN_COLUMNS}
    if "actor" in view and not isinstance(view["actor"], dict):
        details["actor"] = view["actor"]
    extra_actor = {k: v for k, v in actor.items() if k not in _ACTOR_COLUMNS}
    if extra_actor:
        details["actor"] = extra_actor
    return [
        _cell(view.get("log_index")), _cell(view.get("entry_hash")),
        *(_cell(view.get(name)) for name in _ENTRY_COLUMNS),
        *(_cell(actor.get(name)) for name in _ACTOR_COLUMNS),
        _dumps(details).decode() if details else "", _cell(view.get("nonce")), _cell(view.get("canonical")),
    ]


def csv_records(rows: Iterable[Sequence[str]]) -> bytes:
    """RFC 4180 records (CRLF line ends, quoted only when needed), as Python's csv module writes them."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def csv_header() -> bytes:
    return csv_records([CSV_COLUMNS])


def render(views: Iterable[Mapping[str, Any]], export_format: str) -> bytes:
    if export_format == "csv":
        return csv_records(csv_row(view) for view in views)
    return b"".join(jsonl_line(view) for view in views)


# --- The manifest ---------------------------------------------------------------------------

PROOFS_OPENING = b',"proofs":[\n'
PROOFS_CLOSING = b"],"


def manifest_head(header: Mapping[str, Any]) -> bytes:
    return _dumps(header)[:-1] + PROOFS_OPENING


def manifest_proof(proof: Mapping[str, Any], *, first: bool) -> bytes:
    return (b"" if first else b",\n") + _dumps(proof)


def manifest_tail(trailer: Mapping[str, Any], *, any_proofs: bool) -> bytes:
    return (b"\n" if any_proofs else b"") + PROOFS_CLOSING + _dumps(trailer)[1:] + b"\n"
