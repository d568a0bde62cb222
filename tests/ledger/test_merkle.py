"""Merkle tree: the shared RFC 6962 vectors, and store-built proofs against the RFC and pymerkle."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache
from itertools import pairwise
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymerkle import InmemoryTree

from service.ledger.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    MAX_TILE_LEVEL,
    TILE_WIDTH,
    CompactRange,
    InclusionChecker,
    MissingNodeError,
    NodeId,
    ProofError,
    TileRef,
    consistency_proof,
    consistency_ranges,
    hash_range,
    inclusion_proof,
    inclusion_ranges,
    leaf_hash,
    node_hash,
    nodes_for_consistency,
    nodes_for_inclusion,
    parse_tile_index,
    parse_tile_path,
    partial_tile_width,
    perfect_subtrees,
    proof_blocks,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
    root_hash,
    tile_in_tree,
    tile_node_range,
    tile_path,
    verify_consistency,
    verify_inclusion,
)

MAX_SIZE = 300  # property tests draw tree sizes from 1..MAX_SIZE
TILE_TREE_SIZE = 600  # enough for two full level-0 tiles and a level-1 partial tile
PROPERTIES = settings(max_examples=300, deadline=None)

# The classic Certificate Transparency test tree behind the shared vectors.
CT_LEAVES = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
CT_ROOT_8 = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"


# --- Reference: the RFC 9162 §2.1 definitions, recursive, as written in the RFC -----------


def _k(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def mth(leaves: Sequence[bytes]) -> bytes:
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = _k(len(leaves))
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def rfc_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = _k(len(leaves))
    if m < k:
        return [*rfc_path(m, leaves[:k]), mth(leaves[k:])]
    return [*rfc_path(m - k, leaves[k:]), mth(leaves[:k])]


def rfc_subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    if m == len(leaves):
        return [] if complete else [mth(leaves)]
    k = _k(len(leaves))
    if m <= k:
        return [*rfc_subproof(m, leaves[:k], complete), mth(leaves[k:])]
    return [*rfc_subproof(m - k, leaves[k:], False), mth(leaves[:k])]


# --- What the property tests draw: trees of 1..MAX_SIZE leaves -------------------------------


@st.composite
def leaf_positions(draw: st.DrawFn) -> tuple[int, int]:
    """A leaf's index, and the size of a tree that holds it."""
    size = draw(st.integers(1, MAX_SIZE))
    return draw(st.integers(0, size - 1)), size


@st.composite
def size_pairs(draw: st.DrawFn) -> tuple[int, int]:
    """Two sizes of the same growing tree, the first no larger than the second."""
    second = draw(st.integers(1, MAX_SIZE))
    return draw(st.integers(1, second)), second


# --- A store, filled the way the ledger fills it: every node CompactRange completes ----------


def build_store(leaves: Iterable[bytes]) -> dict[NodeId, bytes]:
    compact, nodes = CompactRange(), {}
    for leaf in leaves:
        for node, value in compact.append(leaf):
            assert node not in nodes, f"{node} completed twice"
            nodes[node] = value
    return nodes


@cache
def entry_leaves() -> tuple[bytes, ...]:
    return tuple(leaf_hash(b"entry %d" % i) for i in range(TILE_TREE_SIZE))


@cache
def stored_nodes(size: int) -> Mapping[NodeId, bytes]:
    return MappingProxyType(build_store(entry_leaves()[:size]))


def fetch(needed: set[NodeId], size: int) -> dict[NodeId, bytes]:
    """What one `WHERE (level, index) IN needed` query against the store returns."""
    store = stored_nodes(size)
    return {node: store[node] for node in needed}


def tree_root(size: int) -> bytes:
    return CompactRange.from_nodes(size, stored_nodes(size)).root()


@cache
def pymerkle_tree() -> InmemoryTree:
    # pymerkle's default "security" mode is what gives the RFC 6962 0x00 / 0x01 prefixes.
    tree = InmemoryTree(algorithm="sha256")
    for i in range(MAX_SIZE):
        tree.append_entry(b"entry %d" % i)
    return tree


@cache
def ct_leaves() -> tuple[bytes, ...]:
    return tuple(leaf_hash(bytes.fromhex(data)) for data in CT_LEAVES)


def flip_bit(value: bytes, bit: int) -> bytes:
    flipped = bytearray(value)
    flipped[bit // 8] ^= 1 << (bit % 8)
    return bytes(flipped)


def b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


# --- The shared vectors (transparency-dev/merkle testdata) -----------------------------------


def test_ct_tree_root_at_size_8() -> None:
    assert root_from_leaf_hashes(ct_leaves()).hex() == CT_ROOT_8
    assert mth(ct_leaves()).hex() == CT_ROOT_8


def check_vector(case: dict[str, Any], size: int, root: bytes, verify: Callable[[list[bytes]], None],
                 prove: Callable[[Mapping[NodeId, bytes]], list[bytes]]) -> None:
    """The vector's proof verifies, or is refused where the vector wants an error; and where the
    vector's tree (`size`, `root`) is the CT test tree's, a store of that tree proves the same."""
    proof = [b64(value) for value in case["proof"] or []]
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify(proof)
        return

    verify(proof)
    if size <= len(CT_LEAVES) and root == mth(ct_leaves()[:size]):
        assert prove(build_store(ct_leaves()[:size])) == proof


def test_inclusion_vector(inclusion_vector: Path) -> None:
    case = json.loads(inclusion_vector.read_text())
    index, size = case["leafIdx"], case["treeSize"]
    leaf, root = b64(case["leafHash"]), b64(case["root"])
    check_vector(case, size, root, verify=lambda proof: verify_inclusion(leaf, index, size, proof, root),
                 prove=lambda store: inclusion_proof(index, size, store))


def test_consistency_vector(consistency_vector: Path) -> None:
    case = json.loads(consistency_vector.read_text())
    first, second = case["size1"], case["size2"]
    first_root, second_root = b64(case["root1"]), b64(case["root2"])
    check_vector(case, second, second_root,
                 verify=lambda proof: verify_consistency(first, second, proof, first_root, second_root),
                 prove=lambda store: consistency_proof(first, second, store))


# --- Building the tree -------------------------------------------------------------------------


@PROPERTIES
@given(size=st.integers(0, MAX_SIZE))
def test_compact_range_root_matches_the_references(size: int) -> None:
    leaves = entry_leaves()[:size]
    compact = CompactRange()
    for leaf in leaves:
        compact.append(leaf)

    assert compact.size == size
    assert compact.root() == root_from_leaf_hashes(leaves) == mth(leaves)
    assert compact.root() == pymerkle_tree().get_root(size)
    assert root_hash(size, stored_nodes(size)) == compact.root()


@PROPERTIES
@given(size=st.integers(0, MAX_SIZE - 1))
def test_compact_range_restored_from_the_store_continues_the_tree(size: int) -> None:
    edge = set(perfect_subtrees(0, size))
    restored = CompactRange.from_nodes(size, fetch(edge, size))
    assert restored.root() == tree_root(size)

    completed = dict(restored.append(entry_leaves()[size]))
    grown = stored_nodes(size + 1)
    assert completed == {node: grown[node] for node in grown.keys() - stored_nodes(size).keys()}
    assert restored.root() == tree_root(size + 1)


def test_every_stored_node_is_the_hash_of_its_leaves() -> None:
    leaves, store = entry_leaves(), stored_nodes(TILE_TREE_SIZE)
    for (level, index), value in store.items():
        assert value == mth(leaves[index << level : (index + 1) << level]), (level, index)
    # A tree of n leaves has floor(n / 2**level) perfect subtrees at each level.
    assert len(store) == 2 * TILE_TREE_SIZE - TILE_TREE_SIZE.bit_count()


def test_compact_range_rejects_what_is_not_a_leaf_hash() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        CompactRange().append(b"entry 0")


def test_restoring_without_the_stored_edge_fails_clearly() -> None:
    with pytest.raises(MissingNodeError, match=r"\(2, 2\)"):
        CompactRange.from_nodes(12, {(3, 0): bytes(HASH_SIZE)})


def test_empty_tree() -> None:
    assert CompactRange().root() == EMPTY_ROOT == root_from_leaf_hashes([])
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@PROPERTIES
@given(start=st.integers(0, 5000), width=st.integers(0, 5000))
def test_perfect_subtrees_tile_the_range_with_maximal_aligned_subtrees(
    start: int, width: int
) -> None:
    nodes = perfect_subtrees(start, start + width)

    position = start
    for level, index in nodes:
        assert index << level == position
        position += 1 << level
    assert position == start + width
    for (left_level, left_index), (right_level, _) in pairwise(nodes):
        assert not (left_level == right_level and left_index % 2 == 0), "siblings not merged"
    assert len(nodes) <= 2 * width.bit_length()


def test_hash_range_refuses_ranges_that_are_not_subtrees() -> None:
    with pytest.raises(ValueError, match="not the leaf range"):
        hash_range(1, 4, stored_nodes(8))


def stored_proof(leaves: list[bytes], needed: set[tuple[int, int]],
                 prove: Callable[[Mapping[NodeId, bytes]], list[bytes]], reference: list[bytes],
                 ranges: list[tuple[int, int]]) -> list[bytes]:
    """A proof built from the nodes it says it needs (at most two a level) is the RFC's recursive
    one, hash by hash the MTH of its ranges."""
    proof = prove(fetch(needed, len(leaves)))
    assert proof == reference
    assert [mth(leaves[a:b]) for a, b in ranges] == proof
    assert len(needed) <= 2 * len(leaves).bit_length()
    return proof


def one_bit_flipped(proof: list[bytes], data: st.DataObject) -> list[bytes]:
    """The proof with one bit of one of its hashes flipped, both drawn."""
    target = data.draw(st.integers(0, len(proof) - 1), label="tampered hash")
    bit = data.draw(st.integers(0, 8 * HASH_SIZE - 1), label="flipped bit")
    return [*proof[:target], flip_bit(proof[target], bit), *proof[target + 1 :]]


# --- Inclusion ---------------------------------------------------------------------------------


@PROPERTIES
@given(size=st.integers(1, TILE_TREE_SIZE), data=st.data())
def test_the_inclusion_checker_accepts_exactly_what_verify_inclusion_accepts(
    size: int, data: st.DataObject
) -> None:
    """Runs of neighbours and random leaves, some proofs tampered with (any hash, any byte, one hash
    too many or too few, another leaf's proof): the checker, which compares where it can instead of
    hashing, agrees with the plain verification on each."""
    leaves, store, root = entry_leaves()[:size], stored_nodes(size), tree_root(size)
    checker = InclusionChecker(size, root)
    start = data.draw(st.integers(0, size - 1))
    run = [*range(start, min(size, start + data.draw(st.integers(1, 80)))),
           *data.draw(st.lists(st.integers(0, size - 1), max_size=20))]
    for index in run:
        proof = inclusion_proof(index, size, store)
        leaf = leaves[index]
        change = data.draw(st.sampled_from(["none", "none", "hash", "longer", "shorter", "other leaf"]))
        if change == "hash" and proof:
            at, byte = data.draw(st.integers(0, len(proof) - 1)), data.draw(st.integers(0, HASH_SIZE - 1))
            proof[at] = proof[at][:byte] + bytes([proof[at][byte] ^ 1]) + proof[at][byte + 1:]
        elif change == "longer":
            proof.append(proof[-1] if proof else leaf)
        elif change == "shorter" and proof:
            proof.pop()
        elif change == "other leaf" and size > 1:
            leaf = leaves[(index + 1) % size]
        try:
            verify_inclusion(leaf, index, size, proof, root)
        except ProofError as plain:
            with pytest.raises(ProofError) as shared:
                checker.verify(leaf, index, proof)
            assert str(shared.value) == str(plain)
        else:
            checker.verify(leaf, index, proof)


@PROPERTIES
@given(position=leaf_positions())
def test_inclusion_proofs_from_the_store_verify(position: tuple[int, int]) -> None:
    index, size = position
    leaves = entry_leaves()[:size]
    proof = stored_proof(leaves, nodes_for_inclusion(index, size),
                         lambda nodes: inclusion_proof(index, size, nodes),
                         rfc_path(index, leaves), inclusion_ranges(index, size))
    verify_inclusion(leaves[index], index, size, proof, tree_root(size))
    assert root_from_inclusion_proof(leaves[index], index, size, proof) == tree_root(size)


@given(size=st.integers(1, 1 << 40), data=st.data())
def test_a_leafs_proof_is_its_path_in_its_block_then_the_blocks_ranges_above(
    size: int, data: st.DataObject
) -> None:
    """What an export's manifest relies on to write proofs of neighbours from the nodes they share."""
    blocks = proof_blocks(size)
    assert [block.start for block in blocks] == sorted(block.start for block in blocks)
    assert sum(1 << block.height for block in blocks) == size
    for index in (0, size - 1, data.draw(st.integers(0, size - 1))):
        block = [block for block in blocks if block.start <= index][-1]
        assert index < block.start + (1 << block.height)
        path = [(node << level, (node + 1) << level) for level, node in block.path(index, block.height)]
        assert path + list(block.above) == inclusion_ranges(index, size), (size, index)


@PROPERTIES
@given(position=leaf_positions())
def test_inclusion_proofs_agree_with_pymerkle(position: tuple[int, int]) -> None:
    index, size = position
    theirs = pymerkle_tree().prove_inclusion(index + 1, size)  # pymerkle counts from 1

    # pymerkle's path starts with the leaf itself; the rest is the RFC 6962 audit path.
    assert theirs.path[0] == entry_leaves()[index]
    assert theirs.path[1:] == inclusion_proof(index, size, stored_nodes(size))
    assert pymerkle_tree().get_root(size) == tree_root(size)


@PROPERTIES
@given(position=leaf_positions(), data=st.data())
def test_tampered_inclusion_proofs_fail(position: tuple[int, int], data: st.DataObject) -> None:
    index, size = position
    leaf, root = entry_leaves()[index], tree_root(size)
    proof = inclusion_proof(index, size, stored_nodes(size))

    if proof:
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index, size, one_bit_flipped(proof, data), root)

    with pytest.raises(ProofError):
        verify_inclusion(flip_bit(leaf, 0), index, size, proof, root)
    if size > 1:
        other_index = (index + data.draw(st.integers(1, size - 1), label="shift")) % size
        with pytest.raises(ProofError):
            verify_inclusion(leaf, other_index, size, proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(leaf, size, size, proof, root)
    other_size = data.draw(st.integers(1, MAX_SIZE).filter(lambda s: s != size), label="size")
    with pytest.raises(ProofError):
        verify_inclusion(leaf, index, other_size, proof, tree_root(other_size))
    with pytest.raises(ProofError):
        verify_inclusion(leaf, index, size, [*proof, proof[-1] if proof else root], root)
    if proof:
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index, size, proof[:-1], root)


@pytest.mark.parametrize(
    ("leaf", "index", "size", "proof", "message"),
    [
        (bytes(31), 0, 1, [], "leaf hash is 31 bytes"),
        (bytes(32), 1, 1, [], "outside a tree of size 1"),
        (bytes(32), 0, 0, [], "outside a tree of size 0"),
        (bytes(32), -1, 4, [], "outside"),
        (bytes(32), 0, 2, [], "has 0 hashes, expected 1"),
        (bytes(32), 0, 2, [bytes(33)], "proof hash 0 is 33 bytes"),
    ],
)
def test_impossible_inclusion_proofs_are_refused(
    leaf: bytes, index: int, size: int, proof: list[bytes], message: str
) -> None:
    with pytest.raises(ProofError, match=message):
        verify_inclusion(leaf, index, size, proof, bytes(32))


def test_no_inclusion_proof_outside_the_tree() -> None:
    with pytest.raises(ValueError, match="outside"):
        inclusion_proof(5, 5, stored_nodes(5))


# --- Consistency -------------------------------------------------------------------------------


@PROPERTIES
@given(sizes=size_pairs())
def test_consistency_proofs_from_the_store_verify(sizes: tuple[int, int]) -> None:
    first, second = sizes
    leaves = entry_leaves()[:second]
    reference = rfc_subproof(first, leaves, True)  # SUBPROOF(m, D[n], true)
    proof = stored_proof(leaves, nodes_for_consistency(first, second),
                         lambda nodes: consistency_proof(first, second, nodes), reference,
                         consistency_ranges(first, second))
    verify_consistency(first, second, proof, tree_root(first), tree_root(second))


@PROPERTIES
@given(sizes=size_pairs(), data=st.data())
def test_tampered_consistency_proofs_fail(sizes: tuple[int, int], data: st.DataObject) -> None:
    first, second = sizes
    first_root, second_root = tree_root(first), tree_root(second)
    proof = consistency_proof(first, second, stored_nodes(second))

    if proof:
        with pytest.raises(ProofError):
            verify_consistency(first, second, one_bit_flipped(proof, data), first_root, second_root)

    other_first = data.draw(st.integers(1, second).filter(lambda s: s != first), label="first")
    with pytest.raises(ProofError):
        verify_consistency(other_first, second, proof, tree_root(other_first), second_root)
    other_second = data.draw(
        st.integers(first, MAX_SIZE).filter(lambda s: s != second), label="second"
    )
    with pytest.raises(ProofError):
        verify_consistency(first, other_second, proof, first_root, tree_root(other_second))
    with pytest.raises(ProofError):
        verify_consistency(first, second, proof, flip_bit(first_root, 0), second_root)
    with pytest.raises(ProofError):
        verify_consistency(first, second, proof, first_root, flip_bit(second_root, 0))
    with pytest.raises(ProofError):
        verify_consistency(first, second, [*proof, first_root], first_root, second_root)


@pytest.mark.parametrize(
    ("first", "second", "proof", "message"),
    [
        (0, 0, [], "non-empty first tree"),
        (0, 5, [], "non-empty first tree"),
        (5, 4, [], "from size 5 to size 4"),
        (4, 4, [bytes(32)], "empty consistency proof"),
        (3, 4, [], "has 0 hashes, expected 3"),
        (3, 4, [bytes(32), bytes(32), bytes(31)], "proof hash 2 is 31 bytes"),
    ],
)
def test_impossible_consistency_proofs_are_refused(
    first: int, second: int, proof: list[bytes], message: str
) -> None:
    with pytest.raises(ProofError, match=message):
        verify_consistency(first, second, proof, EMPTY_ROOT, EMPTY_ROOT)


def test_equal_sizes_need_equal_roots() -> None:
    verify_consistency(7, 7, [], tree_root(7), tree_root(7))
    with pytest.raises(ProofError, match="different roots"):
        verify_consistency(7, 7, [], tree_root(7), tree_root(8))


@pytest.mark.parametrize(("first", "second"), [(0, 0), (0, 3), (4, 3)])
def test_no_consistency_proof_for_impossible_sizes(first: int, second: int) -> None:
    with pytest.raises(ValueError, match="no consistency proof"):
        consistency_proof(first, second, stored_nodes(3))


# --- C2SP tlog-tiles -----------------------------------------------------------------------------

TILE_PATHS = [
    (0, 1234067, None, "tile/0/x001/x234/067"),
    (0, 1234067, 12, "tile/0/x001/x234/067.p/12"),
    (1, 0, None, "tile/1/000"),
    (2, 999, None, "tile/2/999"),
    (0, 1000, None, "tile/0/x001/000"),
    (0, 5, TILE_WIDTH, "tile/0/005"),
    (MAX_TILE_LEVEL, 1, 255, "tile/63/001.p/255"),
]


@pytest.mark.parametrize(("level", "index", "width", "path"), TILE_PATHS)
def test_tile_paths(level: int, index: int, width: int | None, path: str) -> None:
    assert tile_path(level, index, width) == path
    assert parse_tile_path(path) == TileRef(level, index, width or TILE_WIDTH)


@PROPERTIES
@given(
    level=st.integers(0, MAX_TILE_LEVEL),
    index=st.integers(0, 10**15),
    width=st.integers(1, TILE_WIDTH),
)
def test_tile_paths_round_trip(level: int, index: int, width: int) -> None:
    assert parse_tile_path(tile_path(level, index, width)) == TileRef(level, index, width)


@pytest.mark.parametrize(
    "path",
    [
        "tile/0",
        "tile/0/",
        "tiles/0/000",
        "tile/00/000",
        "tile/01/000",
        "tile/64/000",
        "tile/-1/000",
        "tile/entries/000",
        "tile/0/67",
        "tile/0/0067",
        "tile/0/x067",
        "tile/0/06a",
        "tile/0/\u0660\u0661\u0662",  # Arabic-Indic digits: int() would take them
        "tile/0/1234067",
        "tile/0/001/x234/067",
        "tile/0/x001/234/067",
        "tile/0/x000/067",
        "tile/0/x1/067",
        "tile/0/067.p/0",
        "tile/0/067.p/256",
        "tile/0/067.p/012",
        "tile/0/067.p/",
        "tile/0/067.p",
        "tile/0/067.p/12/",
        "tile/0/.p/12",
    ],
)
def test_malformed_tile_paths_are_refused(path: str) -> None:
    with pytest.raises(ValueError):
        parse_tile_path(path)


def test_parse_tile_index() -> None:
    assert parse_tile_index(["x001", "x234", "067"]) == 1234067
    assert parse_tile_index(["000"]) == 0
    with pytest.raises(ValueError):
        parse_tile_index([])


@pytest.mark.parametrize(
    ("level", "index", "width"), [(64, 0, None), (-1, 0, None), (0, -1, None), (0, 0, 0), (0, 0, 257)]
)
def test_tile_path_refuses_impossible_tiles(level: int, index: int, width: int | None) -> None:
    with pytest.raises(ValueError):
        tile_path(level, index, width)


def test_tile_node_range() -> None:
    assert tile_node_range(0, 3, TILE_WIDTH) == (0, 768, 256)
    assert tile_node_range(2, 1, 17) == (16, 256, 17)


def test_tile_widths_of_the_spec_example() -> None:
    # tlog-tiles: size 70,000 is 273 full level-0 tiles and partial tiles of widths
    # 112 (level 0), 17 (level 1) and 1 (level 2); size 256 has a level-1 partial of width 1.
    assert [partial_tile_width(level, 70_000) for level in range(4)] == [112, 17, 1, 0]
    assert [partial_tile_width(level, 256) for level in range(3)] == [0, 1, 0]
    assert tile_in_tree(0, 272, TILE_WIDTH, 70_000)
    assert not tile_in_tree(0, 273, TILE_WIDTH, 70_000)
    assert tile_in_tree(0, 273, 112, 70_000)
    assert not tile_in_tree(0, 273, 113, 70_000)
    assert tile_in_tree(2, 0, 1, 70_000)
    assert not tile_in_tree(2, 0, 2, 70_000)


@pytest.mark.parametrize(
    ("level", "index"), [(0, 0), (0, 1), (0, 2), (1, 0)], ids=["0/000", "0/001", "0/002", "1/000"]
)
def test_tile_hashes_from_the_store_follow_the_spec(level: int, index: int) -> None:
    size, leaves, store = TILE_TREE_SIZE, entry_leaves(), stored_nodes(TILE_TREE_SIZE)
    full_tiles = size >> (8 * (level + 1))
    width = TILE_WIDTH if index < full_tiles else partial_tile_width(level, size)
    node_level, first, count = tile_node_range(level, index, width)
    hashes = [store[(node_level, first + i)] for i in range(count)]

    # tlog-tiles: hash i of tile n at level l is MTH(D[(n*256+i)*256**l : (n*256+i+1)*256**l]).
    span = TILE_WIDTH**level
    expected = [
        mth(leaves[(index * TILE_WIDTH + i) * span : (index * TILE_WIDTH + i + 1) * span])
        for i in range(width)
    ]
    assert hashes == expected
    assert tile_in_tree(level, index, width, size)
