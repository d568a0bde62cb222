"""Checking an export offline against its manifest, with only the log's verifier key.

Reads the data and the manifest a line at a time, side by side (both are in log order), so an
export of any size is checked in constant memory. Every fault is named by the data's line (or CSV
row) and the entry's log_index and hash.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson

from service.exports import formats
from service.ledger import merkle
from service.ledger.canonical import GENESIS_HASH, decode, entry_hash
from service.ledger.checkpoint import Checkpoint, CheckpointError, NoteError, Verifier, open_checkpoint
from service.types import to_micros

MAX_FAULTS = 1_000
MAX_UNMATCHED = 100_000  # proofs skipped while matching out-of-order lines; beyond it, reported missing


class ManifestError(ValueError):
    pass


@dataclass
class ExportVerdict:
    count: int = 0
    checkpoint: Checkpoint | None = None
    chain: str | None = None  # what the completeness check of a customer's chain found, when it applies
    faults: list[str] = field(default_factory=list)
    more_faults: int = 0

    def fault(self, message: str) -> None:
        if len(self.faults) < MAX_FAULTS:
            self.faults.append(message)
        else:
            self.more_faults += 1

    @property
    def ok(self) -> bool:
        return not self.faults


# --- The manifest ---------------------------------------------------------------------------


class _Manifest:
    """The manifest's head, its proofs one at a time, and its trailer once the proofs are read.

    seenby writes a manifest one proof a line (formats.manifest_*); any other layout of the same JSON
    (say, pretty-printed) is read whole.
    """

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self.trailer: dict[str, Any] = {}
        self._line = 1
        first = file.readline()
        try:
            if first.endswith(formats.PROOFS_OPENING):
                self.head = _object(orjson.loads(first[: -len(formats.PROOFS_OPENING)] + b"}"))
                self._whole: list[Any] | None = None
            else:
                document = _object(orjson.loads(first + file.read()))
                self._whole = document.pop("proofs", None)
                if not isinstance(self._whole, list):
                    raise ManifestError("it has no list of proofs")
                self.head = {k: document.pop(k) for k in ("checkpoint", "tree_size", "parameters")
                             if k in document}
                self.trailer = document
        except orjson.JSONDecodeError as exc:
            raise ManifestError(f"it is not JSON: {exc}") from exc

    def proofs(self) -> Iterator[dict[str, Any]]:
        if self._whole is not None:
            for proof in self._whole:
                yield _object(proof)
            return
        for line in self._file:
            self._line += 1
            try:
                if line.startswith(formats.PROOFS_CLOSING):
                    self.trailer = _object(orjson.loads(b"{" + line[len(formats.PROOFS_CLOSING):]))
                    return
                yield _object(orjson.loads(line.rstrip(b"\r\n").rstrip(b",")))
            except orjson.JSONDecodeError as exc:
                raise ManifestError(f"line {self._line} is not JSON: {exc}") from exc
        raise ManifestError("it ends before its list of proofs is closed")


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ManifestError("it holds something other than a JSON object where one belongs")
    return value


@dataclass(frozen=True)
class _Proof:
    log_index: int
    leaf_hash: str
    hashes: list[bytes]


def _proof(raw: dict[str, Any]) -> _Proof:
    index, leaf, hashes = raw.get("log_index"), raw.get("leaf_hash"), raw.get("hashes")
    if not isinstance(index, int) or isinstance(index, bool) or not isinstance(leaf, str) or not (
        isinstance(hashes, list) and all(isinstance(h, str) for h in hashes)
    ):
        raise ManifestError(f"a proof is not {{log_index, leaf_hash, hashes}}: {str(raw)[:200]}")
    try:
        return _Proof(index, leaf, [bytes.fromhex(h) for h in hashes])
    except ValueError as exc:
        raise ManifestError(f"the proof of log_index {index} holds a hash that is not hex") from exc


class _Proofs:
    """The manifest's proofs, matched to the data's lines by log_index."""

    def __init__(self, manifest: _Manifest, verdict: ExportVerdict) -> None:
        self._source = manifest.proofs()
        self._verdict = verdict
        self._skipped: dict[int, _Proof] = {}
        self._last = -1
        self._head: _Proof | None = self._next()

    def _next(self) -> _Proof | None:
        raw = next(self._source, None)
        if raw is None:
            return None
        proof = _proof(raw)
        if proof.log_index <= self._last:
            raise ManifestError(f"its proofs are not in log order at log_index {proof.log_index}")
        self._last = proof.log_index
        return proof

    def take(self, log_index: int) -> _Proof | None:
        while self._head is not None and self._head.log_index < log_index:
            if len(self._skipped) >= MAX_UNMATCHED:
                self._missing(self._skipped.pop(min(self._skipped)).log_index)
            self._skipped[self._head.log_index] = self._head
            self._head = self._next()
        if self._head is not None and self._head.log_index == log_index:
            proof, self._head = self._head, self._next()
            return proof
        return self._skipped.pop(log_index, None)

    def finish(self) -> None:
        """Every proof no line claimed: entries the data should hold and does not."""
        while self._head is not None:
            self._skipped[self._head.log_index] = self._head
            self._head = self._next()
        for log_index in sorted(self._skipped):
            self._missing(log_index)

    def _missing(self, log_index: int) -> None:
        self._verdict.fault(f"log_index {log_index}: in the manifest, but missing from the data")


# --- The data -------------------------------------------------------------------------------


@dataclass
class _Shown:
    """One line (or CSV row) of the data, reduced to what the checks need."""

    label: str
    canonical: bytes
    entry_hash: Any
    log_index: int
    recorded: dict[str, Any]


def _jsonl(file: IO[bytes], digest: Any, verdict: ExportVerdict,
           progress: Callable[[int], None]) -> Iterator[_Shown]:
    for number, raw in enumerate(file, start=1):
        digest.update(raw)
        progress(len(raw))
        verdict.count += 1
        try:
            shown = orjson.loads(raw)
        except orjson.JSONDecodeError:
            verdict.fault(f"line {number}: not valid JSON")
            continue
        if not isinstance(shown, dict):
            verdict.fault(f"line {number}: not a JSON object")
            continue
        entry = _entry(f"line {number}", shown.get("canonical"), shown.get("entry_hash"),
                       shown.get("log_index"), verdict)
        if entry is None:
            continue
        actor = shown.get("actor") if isinstance(shown.get("actor"), dict) else {}
        identity = _identity(entry, actor.get("id"), actor.get("id_salt"), verdict)
        expected = formats.export_view(entry.canonical, entry.entry_hash, entry.log_index, identity)
        if formats.jsonl_line(expected) != raw:
            differing = _differences(expected, shown)
            verdict.fault(f"{entry.label}: " + (
                f"shown field(s) {', '.join(differing)} differ from its canonical bytes" if differing
                else "not written as seenby writes it (spacing, key order or line end changed)"))
        yield entry


def _csv(file: IO[bytes], digest: Any, verdict: ExportVerdict,
         progress: Callable[[int], None]) -> Iterator[_Shown]:
    def lines() -> Iterator[str]:
        for raw in file:
            digest.update(raw)
            progress(len(raw))
            yield raw.decode("utf-8", errors="replace")

    source = lines()
    reader = csv.reader(source, strict=True)
    try:
        header = next(reader, None)
        if header != list(formats.CSV_COLUMNS):
            verdict.fault("row 1: not seenby's CSV header")
        for number, row in enumerate(reader, start=2):
            verdict.count += 1
            if len(row) != len(formats.CSV_COLUMNS):
                verdict.fault(f"row {number}: {len(row)} columns, not {len(formats.CSV_COLUMNS)}")
                continue
            cells = dict(zip(formats.CSV_COLUMNS, row, strict=True))
            log_index = int(cells["log_index"]) if cells["log_index"].isdigit() else cells["log_index"]
            entry = _entry(f"row {number}", cells["canonical"], cells["entry_hash"], log_index, verdict)
            if entry is None:
                continue
            identity = _identity(entry, cells["actor_id"], cells["actor_id_salt"] or None, verdict)
            expected = formats.csv_row(
                formats.export_view(entry.canonical, cells["entry_hash"], entry.log_index, identity)
            )
            differing = [name for name, want, got in zip(formats.CSV_COLUMNS, expected, row, strict=True)
                         if want != got]
            if differing:
                verdict.fault(f"{entry.label}: shown column(s) {', '.join(differing)} differ from its "
                              "canonical bytes")
            yield entry
    except csv.Error as exc:
        verdict.fault(f"row {reader.line_num}: not valid CSV ({exc}); the rest was not read")
        for _ in source:
            pass


def _entry(where: str, canonical_b64: Any, shown_hash: Any, log_index: Any,
           verdict: ExportVerdict) -> _Shown | None:
    if not isinstance(log_index, int) or isinstance(log_index, bool) or log_index < 0:
        verdict.fault(f"{where}: log_index {log_index!r} is not a log index")
        return None
    label = f"{where} (log_index {log_index}, entry {shown_hash})"
    try:
        canonical = base64.b64decode(canonical_b64 if isinstance(canonical_b64, str) else "", validate=True)
        recorded = decode(canonical)
    except (binascii.Error, ValueError):
        verdict.fault(f"{label}: its canonical field is not the base64 of an entry")
        return None
    if not isinstance(recorded, dict):
        verdict.fault(f"{label}: its canonical bytes are not an entry")
        return None
    if entry_hash(canonical) != shown_hash:
        verdict.fault(f"{label}: its canonical bytes hash to {entry_hash(canonical)}, not to its entry_hash")
    return _Shown(label, canonical, shown_hash, log_index, recorded)


def _identity(entry: _Shown, employee_id: Any, salt: Any, verdict: ExportVerdict) -> tuple[str, str] | None:
    """A human actor's id and salt as shown, once checked against the commitment in the entry."""
    actor = entry.recorded.get("actor")
    if not isinstance(actor, dict) or "id_commitment" not in actor:
        return None
    if not (isinstance(employee_id, str) and isinstance(salt, str)):
        return None
    try:
        matches = hashlib.sha256(bytes.fromhex(salt) + employee_id.encode()).hexdigest() == actor[
            "id_commitment"]
    except (ValueError, UnicodeEncodeError):
        matches = False
    if not matches:
        verdict.fault(f"{entry.label}: actor.id and actor.id_salt do not match actor.id_commitment")
    return employee_id, salt


def _differences(expected: dict[str, Any], shown: dict[str, Any]) -> list[str]:
    def same(a: Any, b: Any) -> bool:
        return orjson.dumps(a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(b, option=orjson.OPT_SORT_KEYS)

    names = []
    for key in sorted(expected.keys() | shown.keys()):
        want, got = expected.get(key), shown.get(key)
        if same(want, got):
            continue
        if isinstance(want, dict) and isinstance(got, dict):
            names += [f"{key}.{k}" for k in sorted(want.keys() | got.keys())
                      if not same(want.get(k), got.get(k))]
        else:
            names.append(key)
    return names


# --- The whole check ------------------------------------------------------------------------


def _micros(text: Any) -> int | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return to_micros(moment) if moment.tzinfo else None


def verify_export(data: Path, manifest_path: Path, verifier: Verifier,
                  progress: Callable[[int], None] = lambda _: None) -> ExportVerdict:
    verdict = ExportVerdict()
    with manifest_path.open("rb") as manifest_file, data.open("rb") as data_file:
        try:
            manifest = _Manifest(manifest_file)
            _check(manifest, data_file, verifier, verdict, progress)
        except ManifestError as exc:
            verdict.fault(f"the manifest is not valid: {exc}")
    return verdict


def _check(manifest: _Manifest, data_file: IO[bytes], verifier: Verifier, verdict: ExportVerdict,
           progress: Callable[[int], None]) -> None:
    head = manifest.head
    try:
        checkpoint = open_checkpoint(head.get("checkpoint") or "", verifier)
    except (NoteError, CheckpointError) as exc:
        verdict.fault(f"the manifest's checkpoint does not verify with this key: {exc}")
        return
    verdict.checkpoint = checkpoint
    if head.get("tree_size") != checkpoint.size:
        verdict.fault(f"the manifest says tree_size {head.get('tree_size')}, "
                      f"its checkpoint {checkpoint.size}")
    parameters = head.get("parameters") if isinstance(head.get("parameters"), dict) else {}
    export_format = parameters.get("format")
    if export_format not in formats.FORMATS:
        raise ManifestError(f"its format {export_format!r} is not one of {', '.join(formats.FORMATS)}")
    customer_id, kind = parameters.get("customer_id"), parameters.get("kind", "access")
    since, until = _micros(parameters.get("since")), _micros(parameters.get("until"))
    whole_chain = customer_id is not None and kind == "all" and since is None and until is None
    proofs = _Proofs(manifest, verdict)
    digest = hashlib.sha256()
    read = _csv if export_format == "csv" else _jsonl
    previous, first, last = -1, None, None
    seq, prev_hash, chain_faults = 0, GENESIS_HASH, 0
    for entry in read(data_file, digest, verdict, progress):
        recorded, label = entry.recorded, entry.label
        first = entry.log_index if first is None else first
        last = entry.log_index
        proof = proofs.take(entry.log_index)
        if entry.log_index <= previous and (proof is not None or entry.log_index == previous):
            verdict.fault(f"{label}: out of log order or repeated (it comes after log_index {previous})")
        if proof is not None or entry.log_index != previous:
            _check_inclusion(entry, proof, checkpoint, verdict)
        if proof is not None:  # a stray line is named as such; it does not move the order on
            previous = max(previous, entry.log_index)
        if customer_id is not None and recorded.get("customer_id") != customer_id:
            verdict.fault(f"{label}: an entry of customer {recorded.get('customer_id')}, "
                          f"not of {customer_id}")
        if kind != "all" and recorded.get("kind") != kind:
            verdict.fault(f"{label}: a {recorded.get('kind')} entry in an export of {kind} entries")
        recorded_at = _micros(recorded.get("recorded_at"))
        if (since is not None and (recorded_at is None or recorded_at < since)) or (
            until is not None and (recorded_at is None or recorded_at >= until)
        ):
            verdict.fault(f"{label}: recorded_at {recorded.get('recorded_at')} is outside the period")
        if whole_chain:
            if recorded.get("customer_seq") != seq:
                verdict.fault(f"{label}: customer_seq {recorded.get('customer_seq')} where {seq} was "
                              "expected: the customer's chain is not complete")
                chain_faults += 1
            if recorded.get("prev_hash") != prev_hash:
                verdict.fault(f"{label}: prev_hash does not link to the entry before it")
                chain_faults += 1
            seq = (recorded["customer_seq"] + 1) if isinstance(recorded.get("customer_seq"), int) else seq + 1
            prev_hash = entry_hash(entry.canonical)
    proofs.finish()
    _check_trailer(manifest.trailer, verdict, digest.hexdigest(), first, last)
    if whole_chain and not chain_faults:
        verdict.chain = (f"customer {customer_id}'s chain is complete from customer_seq 0 to {seq - 1}"
                         if seq else f"customer {customer_id} has no entries in this cut")


def _check_inclusion(entry: _Shown, proof: _Proof | None, checkpoint: Checkpoint,
                     verdict: ExportVerdict) -> None:
    if proof is None:
        verdict.fault(f"{entry.label}: the manifest has no proof for it (not part of this export)")
        return
    leaf = merkle.leaf_hash(entry.canonical)
    if proof.leaf_hash != leaf.hex():
        verdict.fault(f"{entry.label}: its canonical bytes are not the leaf the manifest proves at "
                      f"log_index {proof.log_index}")
        return
    try:
        merkle.verify_inclusion(leaf, entry.log_index, checkpoint.size, proof.hashes, checkpoint.root_hash)
    except merkle.ProofError as exc:
        verdict.fault(f"{entry.label}: not included in the signed checkpoint of {checkpoint.size}: {exc}")


def _check_trailer(trailer: dict[str, Any], verdict: ExportVerdict, sha256: str, first: int | None,
                   last: int | None) -> None:
    if trailer.get("count") != verdict.count:
        verdict.fault(f"the data holds {verdict.count} entries; the manifest says {trailer.get('count')}")
    if (trailer.get("first_log_index"), trailer.get("last_log_index")) != (first, last):
        verdict.fault(f"the data runs from log_index {first} to {last}; the manifest says "
                      f"{trailer.get('first_log_index')} to {trailer.get('last_log_index')}")
    if trailer.get("sha256") != sha256:
        verdict.fault(f"the data's SHA-256 is {sha256}; the manifest says {trailer.get('sha256')} "
                      "(bytes were changed, added, dropped or reordered)")


def read_trailer(manifest_path: Path) -> dict[str, Any]:
    """The manifest's count, first and last log_index and digest, from its last line when seenby wrote
    it (no need to read a large manifest whole), else from the whole document."""
    with manifest_path.open("rb") as file:
        file.seek(0, 2)
        size = file.tell()
        file.seek(max(0, size - 4096))
        tail = file.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
        if tail.startswith(formats.PROOFS_CLOSING):
            try:
                return _object(orjson.loads(b"{" + tail[len(formats.PROOFS_CLOSING):]))
            except orjson.JSONDecodeError:
                pass
        file.seek(0)
        manifest = _Manifest(file)
        for _ in manifest.proofs():
            pass
        return manifest.trailer
