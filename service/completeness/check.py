"""Checking a completeness proof offline, with only the log's verifier key (CONTRACT "Completeness").

In the contract's order: the checkpoint's signature; the index leaf's inclusion and what it says
it covers; the index proof for the customer's key against the leaf's root (compact, on the key's
path); the head's inclusion; and that the customer's chain, already checked dense and linked from
customer_seq 0 by the caller, ends at the head. Each failure raises CompletenessError naming it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.ledger import merkle
from service.ledger.canonical import decode, entry_hash
from service.ledger.checkpoint import Checkpoint, CheckpointError, NoteError, Verifier, open_checkpoint
from service.ledger.customer_index import tree

INDEX_KIND = "customer_index"


class CompletenessError(ValueError):
    pass


@dataclass(frozen=True)
class Complete:
    entries: int  # the chain's entries up to the head
    covers: int  # every entry of the log below this log_index is accounted for
    checkpoint: Checkpoint
    later: int  # entries of the chain past the head, which the index does not cover yet

    def __str__(self) -> str:
        later = f"; {_entries(self.later)} after it not covered yet" if self.later else ""
        return f"complete: {_entries(self.entries)} up to log size {self.covers}{later}"


def _entries(count: int) -> str:
    return f"{count} {'entry' if count == 1 else 'entries'}"


def check(document: Any, verifier: Verifier, customer_id: str, length: int,
          chain: Mapping[int, bytes]) -> Complete:
    """For a chain of `length` entries the caller verified dense and linked from customer_seq 0;
    `chain` maps customer_seq to canonical bytes for (at least) the head's entry."""
    try:
        return _check(document, verifier, customer_id, length, chain)
    except (KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise CompletenessError(f"not a completeness proof as the API serves it ({exc!r})") from exc


def _check(document: Any, verifier: Verifier, customer_id: str, length: int,
           chain: Mapping[int, bytes]) -> Complete:
    try:
        signed = open_checkpoint(document["checkpoint"], verifier)
    except (NoteError, CheckpointError) as exc:
        raise CompletenessError(f"the checkpoint does not verify: {exc}") from exc

    index = document["index"]
    covers, root, canonical = _index_leaf(index)
    _included(merkle.leaf_hash(canonical), covers, signed, index["hashes"], "the index leaf")

    key = tree.index_key(customer_id)
    if document["key"] != key.hex():
        raise CompletenessError(f"the proof is for key {document['key']}, not customer {customer_id}'s")
    value = _index_value(document["proof"], root, key)

    head = document["head"]
    if head is None:
        if value is not None:
            raise CompletenessError("the index holds a head for the customer, but the proof shows none")
        return Complete(0, covers, signed, length)
    seq, head_hash, head_index = head["customer_seq"], head["entry_hash"], head["log_index"]
    if not isinstance(seq, int) or not isinstance(head_index, int) or not isinstance(head_hash, str):
        raise CompletenessError("the head's customer_seq, entry_hash or log_index is malformed")
    if value is None:
        raise CompletenessError("the proof shows the customer absent from the index, yet gives a head")
    if value != tree.index_value(seq, head_hash):
        raise CompletenessError(f"the index holds another head for the customer than customer_seq {seq} "
                                f"(entry {head_hash}): an entry is missing or was changed")
    if head_index >= covers:
        raise CompletenessError(f"the head's log_index {head_index} is not below what the index covers")
    shown = chain.get(seq) if seq < length else None
    if shown is None:
        raise CompletenessError(f"the chain ends before the head (customer_seq {seq}, entry {head_hash}): "
                                f"{seq + 1 - length} entries are missing")
    if (shown_hash := entry_hash(shown)) != head_hash:
        raise CompletenessError(f"the chain's customer_seq {seq} is entry {shown_hash}, not the "
                                f"head {head_hash}")
    _included(merkle.leaf_hash(shown), head_index, signed, head["hashes"], "the head")
    return Complete(seq + 1, covers, signed, length - seq - 1)


def _index_leaf(index: Mapping[str, Any]) -> tuple[int, bytes, bytes]:
    log_index = index["log_index"]
    canonical = base64.b64decode(index["canonical"], validate=True)
    try:
        body = decode(canonical)
        root = bytes.fromhex(body["root"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CompletenessError("the index leaf is not {kind, covers, root, customers}") from exc
    if body.get("kind") != INDEX_KIND or len(root) != tree.HASH_SIZE:
        raise CompletenessError("the index leaf is not a customer index leaf")
    if body.get("covers") != log_index or not isinstance(log_index, int):
        raise CompletenessError(f"the index leaf says it covers {body.get('covers')}, but sits at "
                                f"log_index {log_index}")
    return log_index, root, canonical


def _index_value(proof: Mapping[str, Any], root: bytes, key: bytes) -> bytes | None:
    leaf = proof["leaf"]
    try:
        lookup = tree.Lookup(
            None if leaf is None else (bytes.fromhex(leaf["key"]), bytes.fromhex(leaf["value"])),
            tuple(bytes.fromhex(sibling) for sibling in proof["siblings"]),
        )
        return tree.verify_lookup(root, key, lookup)
    except tree.IndexProofError as exc:
        raise CompletenessError(f"the index proof fails: {exc}") from exc
    except ValueError as exc:
        raise CompletenessError("the index proof holds a hash that is not hex") from exc


def _included(leaf: bytes, log_index: int, signed: Checkpoint, hashes: Any, what: str) -> None:
    try:
        proof = [bytes.fromhex(h) for h in hashes]
        merkle.verify_inclusion(leaf, log_index, signed.size, proof, signed.root_hash)
    except ValueError as exc:  # merkle.ProofError is one
        raise CompletenessError(f"{what} (log_index {log_index}) is not in the signed tree of size "
                                f"{signed.size}: {exc}") from exc
