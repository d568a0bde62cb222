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
import multiprocessing
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import IO, Any

import orjson

from service.actors import id_commitment
from service.clock import to_micros
from service.collector import collect_rarely
from service.completeness.check import CompletenessError
from service.completeness.check import check as check_completeness
from service.exports import formats
from service.ledger import merkle
from service.ledger.canonical import ChainLinks, decode, entry_hash
from service.ledger.checkpoint import Checkpoint, CheckpointError, NoteError, Verifier, open_checkpoint
from service.ledger.kinds import EntryKind

MAX_FAULTS = 1_000
MAX_UNMATCHED = 100_000  # proofs skipped while matching out-of-order lines; beyond it, reported missing
PROGRESS_STEP = 1 << 20  # bytes read between two progress reports


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


# --- A shown entry against its canonical bytes (every `seenby verify` command uses these) ----

NOT_OF_THE_ENTRY = frozenset({"entry_hash", "log_index", "canonical", "proof"})
KEPT_APART = frozenset({"id", "id_salt"})  # a human actor's, shown to regulators, committed to in the entry
IDENTITY_FAULT = "actor.id and actor.id_salt do not match actor.id_commitment"


def open_canonical(canonical_b64: Any) -> tuple[bytes, dict[str, Any]] | None:
    """The canonical bytes a shown item carries as base64, and the entry they encode; None if they
    are not the base64 of a JSON object."""
    try:
        canonical = base64.b64decode(canonical_b64 if isinstance(canonical_b64, str) else "", validate=True)
        recorded = decode(canonical)
    except (binascii.Error, ValueError):
        return None
    return (canonical, recorded) if isinstance(recorded, dict) else None


def commitment_holds(recorded: Mapping[str, Any], employee_id: Any, salt: Any) -> bool:
    actor = recorded.get("actor")
    if not (isinstance(actor, dict) and isinstance(employee_id, str) and isinstance(salt, str)):
        return False
    try:
        return id_commitment(bytes.fromhex(salt), employee_id) == actor.get("id_commitment")
    except (ValueError, UnicodeEncodeError):
        return False


def is_committed(recorded: Mapping[str, Any]) -> bool:
    """A human actor: its id is not in the entry, only a commitment to it."""
    actor = recorded.get("actor")
    return isinstance(actor, dict) and "id_commitment" in actor


def shown_identity(shown: Mapping[str, Any], recorded: Mapping[str, Any]) -> tuple[str, str] | None:
    """A human actor's (id, id_salt) as a regulator's view shows them, whether or not they match."""
    actor = shown.get("actor")
    if not (is_committed(recorded) and isinstance(actor, dict)):
        return None
    employee_id, salt = actor.get("id"), actor.get("id_salt")
    return (employee_id, salt) if isinstance(employee_id, str) and isinstance(salt, str) else None


def shown_faults(shown: Mapping[str, Any], recorded: Mapping[str, Any]) -> list[str]:
    """What a shown item (a history item, an entry document, an export line) says that its canonical
    bytes do not. Every field but those NOT_OF_THE_ENTRY must equal the recorded entry's, nothing
    missing and nothing added; a human actor's id and id_salt, when shown, must match its
    id_commitment; `entry`, when shown, is the recorded entry whole."""
    faults = []
    view = {k: v for k, v in shown.items() if k not in NOT_OF_THE_ENTRY and k != "entry"}
    actor = view.get("actor")
    if is_committed(recorded) and isinstance(actor, dict) and actor.keys() & KEPT_APART:
        if not commitment_holds(recorded, actor.get("id"), actor.get("id_salt")):
            faults.append(IDENTITY_FAULT)
        view["actor"] = {k: v for k, v in actor.items() if k not in KEPT_APART}
    differing = _differences(dict(recorded), view)
    if "entry" in shown and not _same(shown["entry"], recorded):
        differing.append("entry")
    if differing:
        faults.insert(0, f"shown field(s) {', '.join(differing)} differ from its canonical bytes")
    return faults


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON: unlike ==, true is not 1 and 1 is not 1.0."""
    return orjson.dumps(a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(b, option=orjson.OPT_SORT_KEYS)


def _differences(expected: Mapping[str, Any], shown: Mapping[str, Any], prefix: str = "") -> list[str]:
    names = []
    for key in sorted(expected.keys() | shown.keys()):
        want, got = expected.get(key, _ABSENT), shown.get(key, _ABSENT)
        if want is not _ABSENT and got is not _ABSENT and _same(want, got):
            continue
        if isinstance(want, dict) and isinstance(got, dict):
            names += _differences(want, got, f"{prefix}{key}.")
        else:
            names.append(f"{prefix}{key}")
    return names


_ABSENT: Any = object()


# --- The manifest ---------------------------------------------------------------------------


def manifest_checkpoint(path: Path) -> str:
    """The signed checkpoint a manifest names (empty if it names none)."""
    with path.open("rb") as file:
        try:
            checkpoint = _Manifest(file).head.get("checkpoint")
        except ManifestError:
            return ""
    return checkpoint if isinstance(checkpoint, str) else ""


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
            self.line_by_line = first.endswith(formats.PROOFS_OPENING)
            if self.line_by_line:
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
    not_included: str | None  # why the proof does not put leaf_hash at log_index, when it does not


def _parts(raw: dict[str, Any]) -> tuple[int, str, list[bytes]]:
    index, leaf, hashes = raw.get("log_index"), raw.get("leaf_hash"), raw.get("hashes")
    not_a_proof = f"a proof is not {{log_index, leaf_hash, hashes}}: {str(raw)[:200]}"
    if not isinstance(index, int) or isinstance(index, bool) or not isinstance(leaf, str) or not (
        isinstance(hashes, list)
    ):
        raise ManifestError(not_a_proof)
    try:
        return index, leaf, [bytes.fromhex(h) for h in hashes]
    except TypeError as exc:  # a hash that is not a string
        raise ManifestError(not_a_proof) from exc
    except ValueError as exc:
        raise ManifestError(f"the proof of log_index {index} holds a hash that is not hex") from exc


def _checked(manifest: _Manifest, size: int, root: bytes) -> Iterator[_Proof]:
    """The manifest's proofs in its order, each checked against the checkpoint's tree."""
    inclusion = merkle.InclusionChecker(size, root)
    for raw in manifest.proofs():
        index, leaf, hashes = _parts(raw)
        try:
            inclusion.verify(bytes.fromhex(leaf), index, hashes)
        except ValueError as exc:  # a ProofError, or a leaf_hash no data line can match
            yield _Proof(index, leaf, str(exc))
        else:
            yield _Proof(index, leaf, None)


class _CheckedHere:
    """The manifest's proofs checked in this process, as the data's lines ask for them."""

    def __init__(self, manifest: _Manifest) -> None:
        self._manifest = manifest

    def proofs(self, size: int, root: bytes) -> Iterator[_Proof]:
        return _checked(self._manifest, size, root)

    @property
    def trailer(self) -> dict[str, Any]:
        return self._manifest.trailer

    def close(self) -> None:
        pass


# A manifest this large, as seenby writes it (a proof a line), has its proofs read and checked by a
# second process while this one checks the data: the two take about as long, on a core each.
BESIDE_FROM_BYTES = 32 << 20
BESIDE_BATCH = 4_096  # proofs a message from the second process


class BesideError(RuntimeError):
    """The second process stopped for a reason that is not the manifest's: it could not read the
    file, ran out of memory, was killed."""


class _CheckedBeside:
    """The manifest's proofs checked by a second process (spawned: a caller's script needs the usual
    `if __name__ == "__main__":` guard), in its order, as _checked checks them here."""

    def __init__(self, manifest: _Manifest, path: Path, batch: int) -> None:
        self._head, self._path, self._batch = manifest.head, path, batch
        self.trailer: dict[str, Any] = {}
        self._helper: BaseProcess | None = None
        self._receiving: Connection | None = None
        self._ended = False

    def proofs(self, size: int, root: bytes) -> Iterator[_Proof]:
        context = multiprocessing.get_context("spawn")
        self._receiving, sending = context.Pipe(duplex=False)
        try:
            self._helper = context.Process(target=_check_for, daemon=True,
                                           args=(str(self._path), size, root, self._batch, sending))
            self._helper.start()
        finally:
            sending.close()
        return self._received(self._receiving)

    def _received(self, receiving: Connection) -> Iterator[_Proof]:
        while True:
            try:
                kind, payload = receiving.recv()
            except EOFError:
                raise BesideError("the process checking the manifest's proofs stopped early") from None
            if kind == "head" and payload != self._head:
                raise ManifestError("it changed while it was being read")
            if kind == "proofs":
                yield from (_Proof(*proof) for proof in payload)
            elif kind == "invalid":
                raise ManifestError(payload)
            elif kind == "failed":
                raise BesideError(f"the process checking the manifest's proofs failed: {payload}")
            elif kind == "trailer":
                self.trailer.update(payload)
                self._ended = True
                return

    def close(self) -> None:
        """Wait for a second process that has sent everything; stop one that has not."""
        if self._helper is not None:
            if not self._ended:
                self._helper.kill()
            self._helper.join()
        if self._receiving is not None:
            self._receiving.close()


def _check_for(manifest_path: str, size: int, root: bytes, batch_size: int, sending: Connection) -> None:
    """The second process: the manifest's head, every proof checked and sent in batches, then its
    trailer, or what is wrong with it after the proofs before that."""
    collect_rarely()
    batch: list[tuple[int, str, str | None]] = []
    try:
        with Path(manifest_path).open("rb") as file:
            manifest = _Manifest(file)
            sending.send(("head", manifest.head))
            for proof in _checked(manifest, size, root):
                batch.append((proof.log_index, proof.leaf_hash, proof.not_included))
                if len(batch) == batch_size:
                    sending.send(("proofs", batch))
                    batch = []
            sending.send(("proofs", batch))
            sending.send(("trailer", manifest.trailer))
    except ManifestError as exc:
        sending.send(("proofs", batch))
        sending.send(("invalid", str(exc)))
    except Exception as exc:  # not the manifest's fault: the first process says so
        sending.send(("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        sending.close()


class _Proofs:
    """The manifest's proofs, matched to the data's lines by log_index."""

    def __init__(self, checked: Iterator[_Proof], verdict: ExportVerdict) -> None:
        self._source = checked
        self._verdict = verdict
        self._skipped: dict[int, _Proof] = {}
        self._last = -1
        self._head: _Proof | None = self._next()

    def _next(self) -> _Proof | None:
        proof = next(self._source, None)
        if proof is None:
            return None
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


def _lines(file: IO[bytes], digest: Any, progress: Callable[[int], None]) -> Iterator[bytes]:
    """The data's lines, each added to its digest; the bytes read reported a step at a time."""
    unreported = 0
    for raw in file:
        digest.update(raw)
        unreported += len(raw)
        if unreported >= PROGRESS_STEP:
            progress(unreported)
            unreported = 0
        yield raw
    progress(unreported)


def _jsonl(file: IO[bytes], digest: Any, verdict: ExportVerdict,
           progress: Callable[[int], None]) -> Iterator[_Shown]:
    for number, raw in enumerate(_lines(file, digest, progress), start=1):
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
        identity = shown_identity(shown, entry.recorded)
        expected = formats.jsonl_line(
            formats.export_view(entry.canonical, entry.entry_hash, entry.log_index, identity))
        # A line written exactly as seenby writes this entry shows nothing the entry does not say,
        # but for a human actor's id and salt: only a line that differs needs telling apart.
        if expected != raw or (identity is not None and not commitment_holds(entry.recorded, *identity)):
            faults = shown_faults(shown, entry.recorded)
            for fault in faults:
                verdict.fault(f"{entry.label}: {fault}")
            if not faults and expected != raw:
                verdict.fault(f"{entry.label}: not written as seenby writes it (spacing, key order or "
                              "line end changed)")
        yield entry


def _csv(file: IO[bytes], digest: Any, verdict: ExportVerdict,
         progress: Callable[[int], None]) -> Iterator[_Shown]:
    source = (raw.decode("utf-8", errors="replace") for raw in _lines(file, digest, progress))
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
            shown = cells["log_index"]
            log_index = int(shown) if shown.isascii() and shown.isdigit() else shown
            entry = _entry(f"row {number}", cells["canonical"], cells["entry_hash"], log_index, verdict)
            if entry is None:
                continue
            identity = None
            if is_committed(entry.recorded) and cells["actor_id_salt"]:
                identity = (cells["actor_id"], cells["actor_id_salt"])
                if not commitment_holds(entry.recorded, *identity):
                    verdict.fault(f"{entry.label}: {IDENTITY_FAULT}")
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
    opened = open_canonical(canonical_b64)
    if opened is None:
        verdict.fault(f"{label}: its canonical field is not the base64 of an entry")
        return None
    canonical, recorded = opened
    if entry_hash(canonical) != shown_hash:
        verdict.fault(f"{label}: its canonical bytes hash to {entry_hash(canonical)}, not to its entry_hash")
    return _Shown(label, canonical, shown_hash, log_index, recorded)


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
                  progress: Callable[[int], None] = lambda _: None,
                  completeness_proof: Any = None) -> ExportVerdict:
    """`completeness_proof` (GET /v1/customers/{id}/completeness), for a customer's export of every
    kind with no period: checked against the exported chain, it says whether the export is complete."""
    verdict = ExportVerdict()
    with manifest_path.open("rb") as manifest_file, data.open("rb") as data_file:
        try:
            manifest = _Manifest(manifest_file)
            beside = manifest.line_by_line and manifest_path.stat().st_size >= BESIDE_FROM_BYTES
            source = (_CheckedBeside(manifest, manifest_path, BESIDE_BATCH) if beside
                      else _CheckedHere(manifest))
            with closing(source):
                _check(manifest.head, source, data_file, verifier, verdict, progress, completeness_proof)
        except ManifestError as exc:
            verdict.fault(f"the manifest is not valid: {exc}")
    return verdict


def _check(head: dict[str, Any], source: _CheckedHere | _CheckedBeside, data_file: IO[bytes],
           verifier: Verifier, verdict: ExportVerdict, progress: Callable[[int], None],
           completeness_proof: Any) -> None:
    try:
        checkpoint = open_checkpoint(head.get("checkpoint") or "", verifier)
    except (NoteError, CheckpointError) as exc:
        verdict.fault(f"the manifest's checkpoint does not verify with this key: {exc}")
        return
    verdict.checkpoint = checkpoint
    if head.get("tree_size") != checkpoint.size:
        verdict.fault(f"the manifest says tree_size {head.get('tree_size')}, "
                      f"its checkpoint {checkpoint.size}")
    parameters: dict[str, Any] = head["parameters"] if isinstance(head.get("parameters"), dict) else {}
    export_format = parameters.get("format")
    if export_format not in formats.FORMATS:
        raise ManifestError(f"its format {export_format!r} is not one of {', '.join(formats.FORMATS)}")
    customer_id, kind = parameters.get("customer_id"), parameters.get("kind", EntryKind.ACCESS)
    since, until = _micros(parameters.get("since")), _micros(parameters.get("until"))
    whole_chain = customer_id is not None and kind == "all" and since is None and until is None
    if completeness_proof is not None and not whole_chain:
        verdict.fault("a completeness proof applies to one customer's export of every kind, with no period")
    head_seq = _head_seq(completeness_proof)
    at_head: dict[int, bytes] = {}
    proofs = _Proofs(source.proofs(checkpoint.size, checkpoint.root_hash), verdict)
    digest = hashlib.sha256()
    read = _csv if export_format == "csv" else _jsonl
    previous, first, last = -1, None, None
    links = ChainLinks()
    for entry in read(data_file, digest, verdict, progress):
        recorded, label = entry.recorded, entry.label
        first = entry.log_index if first is None else first
        last = entry.log_index
        proof = proofs.take(entry.log_index)
        if entry.log_index <= previous and (proof is not None or entry.log_index == previous):
            verdict.fault(f"{label}: out of log order or repeated (it comes after log_index {previous})")
        if proof is not None or entry.log_index != previous:
            _check_inclusion(entry, proof, checkpoint.size, verdict)
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
            for fault in links.follow(recorded, entry_hash(entry.canonical)):
                verdict.fault(f"{label}: {fault}")
            if head_seq is not None and recorded.get("customer_seq") == head_seq:
                at_head[head_seq] = entry.canonical
    proofs.finish()
    _check_trailer(source.trailer, verdict, digest.hexdigest(), first, last)
    if whole_chain and not links.broken:
        verdict.chain = (f"customer {customer_id}'s chain is complete from customer_seq 0 to "
                         f"{links.next_seq - 1}" if links.next_seq
                         else f"customer {customer_id} has no entries in this cut")
        if completeness_proof is not None:
            try:
                complete = check_completeness(completeness_proof, verifier, str(customer_id), links.next_seq,
                                              at_head)
            except CompletenessError as exc:
                verdict.fault(f"the completeness proof: {exc}")
            else:
                verdict.chain += f"; the export is {complete}"


def _head_seq(completeness_proof: Any) -> int | None:
    head = completeness_proof.get("head") if isinstance(completeness_proof, dict) else None
    seq = head.get("customer_seq") if isinstance(head, dict) else None
    return seq if isinstance(seq, int) else None


def _check_inclusion(entry: _Shown, proof: _Proof | None, size: int, verdict: ExportVerdict) -> None:
    if proof is None:
        verdict.fault(f"{entry.label}: the manifest has no proof for it (not part of this export)")
        return
    leaf = merkle.leaf_hash(entry.canonical)
    if proof.leaf_hash != leaf.hex():
        verdict.fault(f"{entry.label}: its canonical bytes are not the leaf the manifest proves at "
                      f"log_index {proof.log_index}")
        return
    if proof.not_included is not None:
        verdict.fault(f"{entry.label}: not included in the signed checkpoint of {size}: {proof.not_included}")


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
