"""Offline checks anyone can run with only the verifier key: checkpoints, inclusion, consistency, chains.

Each check raises VerificationError naming what is wrong; the CLI turns that into a verdict.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from service.exports.check import verify_export
from service.ledger import merkle
from service.ledger.canonical import chain_breaks, decode, entry_hash
from service.ledger.checkpoint import (
    Checkpoint,
    CheckpointError,
    NoteError,
    Verifier,
    open_checkpoint,
    parse_verifier_key,
)


class VerificationError(Exception):
    pass


def load_verifier(key_text: str) -> Verifier:
    try:
        return parse_verifier_key(key_text.strip())
    except ValueError as exc:
        raise VerificationError(f"not a note verifier key: {exc}") from exc


def checkpoint(note: str, verifier: Verifier) -> Checkpoint:
    try:
        return open_checkpoint(note, verifier)
    except (NoteError, CheckpointError) as exc:
        raise VerificationError(f"checkpoint does not verify: {exc}") from exc


def _hashes(values: Sequence[str], what: str) -> list[bytes]:
    try:
        return [bytes.fromhex(v) for v in values]
    except (ValueError, TypeError) as exc:
        raise VerificationError(f"{what} holds a hash that is not hex") from exc


def entry(document: dict[str, Any], verifier: Verifier) -> Checkpoint:
    """An entry as served by /v1/customers/{id}/entries/{hash}: bytes, hash, and inclusion proof."""
    try:
        canonical = base64.b64decode(document["canonical"], validate=True)
        claimed_hash = document["entry_hash"]
        log_index = document["log_index"]
        proof = document["proof"]
    except (KeyError, TypeError, binascii.Error) as exc:
        raise VerificationError(f"not an entry document: {exc}") from exc
    if entry_hash(canonical) != claimed_hash:
        raise VerificationError(f"entry {claimed_hash}: canonical bytes hash to {entry_hash(canonical)}")
    if "entry" in document and decode(canonical) != document["entry"]:
        raise VerificationError(f"entry {claimed_hash}: the shown entry differs from its canonical bytes")
    if proof is None or log_index is None:
        raise VerificationError(f"entry {claimed_hash} is not in the log yet (no proof)")
    signed = checkpoint(proof["checkpoint"], verifier)
    if proof["tree_size"] != signed.size:
        raise VerificationError("the proof is for another tree size than its checkpoint")
    leaf = merkle.leaf_hash(canonical)
    if proof.get("leaf_hash") not in (None, leaf.hex()):
        raise VerificationError(f"entry {claimed_hash}: leaf_hash does not match its bytes")
    try:
        merkle.verify_inclusion(leaf, log_index, signed.size, _hashes(proof["hashes"], "the proof"),
                                signed.root_hash)
    except merkle.ProofError as exc:
        raise VerificationError(f"entry {claimed_hash} (log_index {log_index}): {exc}") from exc
    return signed


def consistency(old: Checkpoint, new: Checkpoint, hashes: Sequence[str]) -> None:
    if old.origin != new.origin:
        raise VerificationError("the checkpoints are of different logs")
    if old.size > new.size:
        raise VerificationError(f"the new checkpoint ({new.size}) is smaller than the old ({old.size})")
    if old.size == 0:
        return  # every tree extends the empty one
    try:
        merkle.verify_consistency(old.size, new.size, _hashes(hashes, "the proof"),
                                  old.root_hash, new.root_hash)
    except merkle.ProofError as exc:
        raise VerificationError(
            f"checkpoint {new.size} does not extend checkpoint {old.size}: {exc}"
        ) from exc


def chain(items: Sequence[dict[str, Any]]) -> int:
    """A customer's saved chain (items of /entries), from customer_seq 0: every hash and link."""
    for item in items:
        canonical = base64.b64decode(item["canonical"])
        if entry_hash(canonical) != item["entry_hash"]:
            raise VerificationError(f"entry {item['entry_hash']}: canonical bytes do not match its hash")
        recorded = decode(canonical)
        if (recorded["customer_seq"], recorded["prev_hash"]) != (item["customer_seq"], item["prev_hash"]):
            raise VerificationError(f"entry {item['entry_hash']}: fields differ from its canonical bytes")
    breaks = chain_breaks([(i["customer_seq"], i["prev_hash"], i["entry_hash"]) for i in items])
    if breaks:
        raise VerificationError("; ".join(breaks))
    return len(items)


SHOWN_FAULTS = 50


def export(data: Path, manifest: Path, verifier: Verifier,
           progress: Callable[[int], None] = lambda _: None) -> str:
    """An export and its manifest (`seenby export`): the checkpoint's signature, every entry's hash,
    shown fields and inclusion, the count and digest, and, for one customer's export of every kind
    with no period, that the chain is complete from customer_seq 0. Raises naming every fault."""
    verdict = verify_export(data, manifest, verifier, progress)
    if not verdict.ok:
        total = len(verdict.faults) + verdict.more_faults
        shown = verdict.faults[:SHOWN_FAULTS]
        hidden = f"\n  ... and {total - len(shown)} more" if total > len(shown) else ""
        raise VerificationError(f"{total} fault(s) in {data}:\n  " + "\n  ".join(shown) + hidden)
    assert verdict.checkpoint is not None
    summary = (f"{verdict.count} entries, cut at tree size {verdict.checkpoint.size} of "
               f"{verdict.checkpoint.origin}: signature, hashes, shown fields, inclusion proofs, count "
               "and SHA-256 all check out")
    return f"{summary}; {verdict.chain}" if verdict.chain else summary
