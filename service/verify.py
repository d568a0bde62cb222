"""Offline checks anyone can run with only the verifier key: checkpoints, inclusion, consistency, chains.

Each check raises VerificationError naming what is wrong; the CLI turns that into a verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from service.completeness.check import CompletenessError
from service.completeness.check import check as check_completeness
from service.exports.check import open_canonical, shown_faults, verify_export
from service.ledger import merkle
from service.ledger.canonical import ChainLinks, entry_hash
from service.ledger.checkpoint import (
    Checkpoint,
    CheckpointError,
    NoteError,
    Verifier,
    open_checkpoint,
    parse_verifier_key,
)
from service.witness.policy import Policy

SHOWN_FAULTS = 50


class VerificationError(Exception):
    pass


def load_verifier(key_text: str) -> Verifier:
    try:
        return parse_verifier_key(key_text.strip())
    except ValueError as exc:
        raise VerificationError(f"not a note verifier key: {exc}") from exc


def witnessed(note: str, policy: Policy) -> str:
    """`--policy`: the note carries valid cosignatures by the policy's quorum of witnesses."""
    try:
        cosigned = policy.cosigned(note)
    except NoteError as exc:
        raise VerificationError(f"a witness cosignature does not verify: {exc}") from exc
    signed = ", ".join(sorted(cosigned)) or "none"
    missing = ", ".join(sorted(policy.witnesses.keys() - cosigned.keys())) or "none"
    if not policy.satisfied_by(cosigned):
        raise VerificationError(f"the checkpoint lacks the policy's witness quorum ({policy.quorum}): "
                                f"cosigned by {signed}; missing {missing}")
    return f"witnessed by {signed} (quorum {policy.quorum}; missing {missing})"


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


def _label(recorded: dict[str, Any], claimed_hash: Any) -> str:
    return f"customer_seq {recorded.get('customer_seq')} (entry {claimed_hash})"


def _opened(document: Any) -> tuple[bytes, dict[str, Any], list[str]]:
    """An entry as shown by the API: its canonical bytes, the entry they encode, and every way the
    shown item disagrees with them (its hash, any shown field)."""
    if not isinstance(document, dict):
        raise VerificationError(f"not an entry as the API shows it: {str(document)[:200]}")
    opened = open_canonical(document.get("canonical"))
    claimed_hash = document.get("entry_hash")
    if opened is None:
        raise VerificationError(f"entry {claimed_hash}: its canonical field is not the base64 of an entry")
    canonical, recorded = opened
    faults = shown_faults(document, recorded)
    if entry_hash(canonical) != claimed_hash:
        faults.insert(0, f"its canonical bytes hash to {entry_hash(canonical)}, not to its entry_hash")
    return canonical, recorded, [f"{_label(recorded, claimed_hash)}: {fault}" for fault in faults]


def _failed(faults: Sequence[str], what: str, more: int = 0) -> VerificationError:
    """Every fault, one a line, the first SHOWN_FAULTS of them named; `more` were only counted."""
    total = len(faults) + more
    shown = faults[:SHOWN_FAULTS]
    hidden = f"\n  ... and {total - len(shown)} more" if total > len(shown) else ""
    return VerificationError(f"{total} fault(s) in {what}:\n  " + "\n  ".join(shown) + hidden)


def entry(document: dict[str, Any], verifier: Verifier) -> Checkpoint:
    """An entry as served by /v1/customers/{id}/entries/{hash}: bytes, hash, every shown field, and
    inclusion in the signed checkpoint it carries."""
    canonical, recorded, faults = _opened(document)
    if faults:
        raise _failed(faults, "the entry")
    label = _label(recorded, document["entry_hash"])
    log_index, proof = document.get("log_index"), document.get("proof")
    if proof is None or log_index is None:
        raise VerificationError(f"{label} is not in the log yet (no proof)")
    try:
        signed = checkpoint(proof["checkpoint"], verifier)
        if proof["tree_size"] != signed.size:
            raise VerificationError("the proof is for another tree size than its checkpoint")
        leaf = merkle.leaf_hash(canonical)
        if proof.get("leaf_hash") not in (None, leaf.hex()):
            raise VerificationError(f"{label}: leaf_hash does not match its bytes")
        merkle.verify_inclusion(leaf, log_index, signed.size, _hashes(proof["hashes"], "the proof"),
                                signed.root_hash)
    except (KeyError, TypeError) as exc:
        raise VerificationError(f"{label}: its proof is not {{tree_size, leaf_hash, hashes, "
                                f"checkpoint}} ({exc!r})") from exc
    except merkle.ProofError as exc:
        raise VerificationError(f"{label} (log_index {log_index}): {exc}") from exc
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


def chain(items: Sequence[Any]) -> int:
    """A customer's saved chain (items of /entries), from customer_seq 0: every hash, every shown
    field, every link."""
    faults: list[str] = []
    links = ChainLinks()
    for item in items:
        canonical, recorded, item_faults = _opened(item)
        faults += item_faults
        this_hash = entry_hash(canonical)
        faults += [f"{_label(recorded, item.get('entry_hash'))}: {fault}"
                   for fault in links.follow(recorded, this_hash)]
    if faults:
        raise _failed(faults, "the chain")
    return len(items)


def completeness(document: Any, items: Sequence[Any], verifier: Verifier, customer_id: str | None) -> str:
    """A completeness proof (GET /v1/customers/{id}/completeness) against the customer's saved chain:
    the chain itself first (as `chain` checks it), then the proof in the contract's order."""
    chain(items)
    entries: dict[int, bytes] = {}
    customers = set()
    for item in items:
        canonical, recorded, _ = _opened(item)
        customers.add(recorded.get("customer_id"))
        entries[recorded["customer_seq"]] = canonical
    if customer_id is not None:
        customers.add(customer_id)
    if len(customers) != 1:
        raise VerificationError("whose completeness? The chain is empty: name the customer with --customer"
                                if not customers else f"the chain and --customer name several customers: "
                                f"{sorted(map(str, customers))}")
    (customer,) = customers
    if not isinstance(customer, str):
        raise VerificationError("the chain's entries carry no customer_id")
    try:
        return str(check_completeness(document, verifier, customer, len(items), entries))
    except CompletenessError as exc:
        raise VerificationError(str(exc)) from exc


def export(data: Path, manifest: Path, verifier: Verifier,
           progress: Callable[[int], None] = lambda _: None, completeness_proof: Any = None) -> str:
    """An export and its manifest (`seenby export`): the checkpoint's signature, every entry's hash,
    shown fields and inclusion, the count and digest, and, for one customer's export of every kind
    with no period, that the chain is complete from customer_seq 0. Raises naming every fault."""
    verdict = verify_export(data, manifest, verifier, progress, completeness_proof)
    if not verdict.ok:
        raise _failed(verdict.faults, str(data), verdict.more_faults)
    assert verdict.checkpoint is not None
    summary = (f"{verdict.count} entries, cut at tree size {verdict.checkpoint.size} of "
               f"{verdict.checkpoint.origin}: signature, hashes, shown fields, inclusion proofs, count "
               "and SHA-256 all check out")
    return f"{summary}; {verdict.chain}" if verdict.chain else summary
