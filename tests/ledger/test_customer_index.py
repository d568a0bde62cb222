"""The customer index's tree against the shared known answers and against itself (hypothesis)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.ledger.customer_index import store as index_store
from service.ledger.customer_index import tree
from service.ledger.customer_index.tree import IndexProofError, Lookup

VECTORS = "customer-index/vectors.json"


def _cases(testdata_dir: Path) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((testdata_dir / VECTORS).read_text())["cases"]
    return cases


def _proof(raw: dict[str, Any]) -> Lookup:
    leaf = raw["leaf"]
    return Lookup(
        None if leaf is None else (bytes.fromhex(leaf["key"]), bytes.fromhex(leaf["value"])),
        tuple(bytes.fromhex(sibling) for sibling in raw["siblings"]),
    )


def _items(case: dict[str, Any]) -> dict[bytes, bytes]:
    return {
        tree.index_key(head["customer_id"]): tree.index_value(head["customer_seq"], head["entry_hash"])
        for head in case["customers"]
    }


def test_keys_values_and_roots_match_the_vectors(testdata_dir: Path) -> None:
    cases = _cases(testdata_dir)
    assert [len(case["customers"]) for case in cases] == [0, 1, 2, 3, 8, 100, 1000]
    for case in cases:
        heads = {head["customer_id"]: head for head in case["customers"]}
        for expected in case["keys"]:
            head = heads[expected["customer_id"]]
            assert tree.index_key(head["customer_id"]).hex() == expected["key"]
            assert tree.index_value(head["customer_seq"], head["entry_hash"]).hex() == expected["value"]
        root, _ = tree.build(_items(case))
        assert root.hex() == case["root"]
        incremental: dict[tree.NodeId, bytes] = {}
        items = list(_items(case).items())
        for start in range(0, len(items), 7):  # pass after pass, as the integrator builds it
            update = tree.update_in_memory(incremental, dict(items[start:start + 7]))
        assert (update.root if items else tree.EMPTY).hex() == case["root"]


def _as_served(key: bytes, nodes: dict[tree.NodeId, bytes]) -> tree.Lookup | None:
    """The lookup as the API serves it: from the stored nodes it reads, and nothing else."""
    stored = tree.stored_part(nodes)
    read = {node_id: stored[node_id] for node_id in tree.proof_reads(key, range(tree.KEY_BITS + 1))
            if node_id in stored}
    return tree.lookup(key, read, tree.KEY_BITS)


def test_every_lookup_is_served_and_verifies(testdata_dir: Path) -> None:
    for case in _cases(testdata_dir):
        root, nodes = tree.build(_items(case))
        for expected in case["lookups"]:
            key = bytes.fromhex(expected["key"])
            assert tree.index_key(expected["customer_id"]) == key
            served = tree.lookup(key, nodes, tree.KEY_BITS)
            assert served == _proof(expected["proof"]), expected["customer_id"]
            assert _as_served(key, nodes) == served
            value = tree.verify_lookup(root, key, served)
            assert (value is not None) == expected["present"]


def test_every_invalid_lookup_is_rejected(testdata_dir: Path) -> None:
    reasons = set()
    for case in _cases(testdata_dir):
        root = bytes.fromhex(case["root"])
        for invalid in case["invalid_lookups"]:
            reasons.add(invalid["why"])
            with pytest.raises(IndexProofError):
                value = tree.verify_lookup(root, bytes.fromhex(invalid["key"]), _proof(invalid["proof"]))
                # A proof that verifies but says otherwise than the case claims is as wrong.
                if (value is not None) == invalid["present"]:
                    raise IndexProofError("verified as claimed")
    assert len(reasons) >= 4


def test_a_leaf_beside_an_empty_sibling_is_not_compact() -> None:
    key = tree.index_key("only")
    value = tree.index_value(0, "00" * 32)
    root = tree.node_hash(tree.leaf_hash(key, value), tree.EMPTY) if key[0] < 0x80 else tree.node_hash(
        tree.EMPTY, tree.leaf_hash(key, value))
    with pytest.raises(IndexProofError, match="compact"):
        tree.verify_lookup(root, key, Lookup((key, value), (tree.EMPTY,)))


def test_a_leaf_off_the_keys_path_proves_nothing() -> None:
    items = {tree.index_key(f"c{n}"): tree.index_value(n, "11" * 32) for n in range(20)}
    root, nodes = tree.build(items)
    key = tree.index_key("absent")
    served = tree.lookup(key, nodes, tree.KEY_BITS)
    assert served is not None
    other = next(k for k in items if tree.path_of(k, 1) != tree.path_of(key, 1))
    with pytest.raises(IndexProofError):
        tree.verify_lookup(root, key, Lookup((other, items[other]), served.siblings))


def test_large_batches_into_a_large_index_in_place_or_aside_give_the_index_built_from_scratch() -> None:
    """Batches of hundreds over thousands of keys, as ingest and the audit apply them (paths of
    many levels under each shared branch, leaves pushed down, keys revalued): update() beside the
    index and update_in_memory() over it give the same nodes and root as build() from scratch."""
    rng = random.Random(20)
    aside: dict[tree.NodeId, bytes] = {}
    in_place: dict[tree.NodeId, bytes] = {}
    everything: dict[bytes, bytes] = {}
    customers = [tree.index_key(f"cust-{n}") for n in range(4_000)]
    for size in (500, 1_500, 300, 1, 2_000, 700):
        changes = {rng.choice(customers): rng.randbytes(32) for _ in range(size)}
        applied = tree.update(aside, changes)
        aside.update(applied.written)
        in_memory = tree.update_in_memory(in_place, changes)
        added = len(changes.keys() - everything.keys())
        everything.update(changes)
        root, scratch = tree.build(everything)
        assert (applied.root, applied.added) == (in_memory.root, in_memory.added) == (root, added)
        assert aside == in_place == scratch
        assert applied.written.items() <= scratch.items()


keys = st.binary(min_size=32, max_size=32)
values = st.binary(min_size=32, max_size=32)
passes = st.lists(st.dictionaries(keys, values, max_size=12), min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(passes=passes, probes=st.lists(keys, max_size=4))
def test_the_incremental_index_equals_one_built_from_scratch(
    passes: list[dict[bytes, bytes]], probes: list[bytes]
) -> None:
    incremental: dict[tree.NodeId, bytes] = {}
    everything: dict[bytes, bytes] = {}
    for changes in passes:
        added = len(changes.keys() - everything.keys())
        update = tree.update_in_memory(incremental, changes)
        everything.update(changes)
        assert update.added == added
        root, scratch = tree.build(everything)
        assert update.root == root
        assert incremental == scratch  # nothing stale is left behind
    stored = tree.stored_part(incremental)
    assert tree.complete(stored) == incremental  # what storage keeps is enough to have it all again
    for key in [*everything, *probes]:
        proof = tree.lookup(key, incremental, tree.KEY_BITS)
        assert proof is not None
        assert tree.verify_lookup(root, key, proof) == everything.get(key)
        assert _as_served(key, incremental) == proof


@settings(max_examples=50, deadline=None)
@given(prefix=st.binary(min_size=1, max_size=4), tails=st.lists(st.binary(min_size=28, max_size=28),
                                                                min_size=2, max_size=6, unique=True))
def test_keys_sharing_long_prefixes_still_give_compact_verifiable_proofs(
    prefix: bytes, tails: list[bytes]
) -> None:
    items = {(prefix + tail)[:32].ljust(32, b"\0"): bytes(32) for tail in tails}
    root, nodes = tree.build(items)
    for key in items:
        served = tree.lookup(key, nodes, 16)
        full = tree.lookup(key, nodes, tree.KEY_BITS)
        assert full is not None and (served is None or served == full)
        assert tree.verify_lookup(root, key, full) == items[key]


@settings(max_examples=100, deadline=None)
@given(key=keys, read_to=st.sampled_from([24, 48, 96, 192, 256]))
def test_a_proofs_prefix_ranges_read_exactly_the_nodes_a_lookup_wants(key: bytes, read_to: int) -> None:
    covered = set()
    for depth, low, high in index_store.path_ranges(key, read_to):
        first, last = int.from_bytes(low, "big"), int.from_bytes(high, "big")
        assert len(low) == len(high) == (depth + 7) // 8
        covered.update((1 << depth) | prefix for prefix in range(first, last + 1))
    assert covered == tree.proof_reads(key, range(read_to + 1))
