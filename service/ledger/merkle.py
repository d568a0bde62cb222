"""RFC 6962 / RFC 9162 Merkle tree: hashing, proofs from stored perfect subtrees, tile paths."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise
from typing import NamedTuple, TypeAlias

HASH_SIZE = 32

# (level, index): the perfect subtree of 2**level leaves starting at leaf index * 2**level.
# Level 0 nodes are leaf hashes. A perfect subtree's hash never changes once the tree has
# grown past it, so these are the only tree nodes a store ever needs to keep.
NodeId: TypeAlias = tuple[int, int]
NodeLookup: TypeAlias = Mapping[NodeId, bytes]

EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A proof that does not verify, or whose parameters no valid proof could have."""


class MissingNodeError(LookupError):
    """The lookup lacks a tree node that the computation needs."""


def leaf_hash(data: bytes) -> bytes:
    # RFC 9162 §2.1.1: the 0x00 / 0x01 prefixes keep leaves and interior nodes apart.
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(width: int) -> int:
    # RFC 9162 §2.1.1: k is the largest power of two smaller than n (n > 1).
    return 1 << ((width - 1).bit_length() - 1)


def _fetch(lookup: NodeLookup, node: NodeId) -> bytes:
    try:
        return lookup[node]
    except KeyError:
        raise MissingNodeError(f"tree node (level, index) {node} is not available") from None


def _same(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


# --- Addressing --------------------------------------------------------------------------


def perfect_subtrees(start: int, end: int) -> list[NodeId]:
    """Split leaves [start, end) into maximal aligned perfect subtrees, left to right."""
    if not 0 <= start <= end:
        raise ValueError(f"invalid leaf range [{start}, {end})")
    nodes: list[NodeId] = []
    while start < end:
        alignment = (start & -start).bit_length() - 1 if start else end.bit_length()
        level = min(alignment, (end - start).bit_length() - 1)
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


def hash_range(start: int, end: int, lookup: NodeLookup) -> bytes:
    """MTH(D[start:end]) from the stored perfect subtrees that cover the range."""
    nodes = perfect_subtrees(start, end)
    if not nodes:
        return EMPTY_ROOT
    levels = [level for level, _ in nodes]
    # MTH splits at the largest power of two, so folding the decomposition right to left
    # equals MTH only when the subtree sizes strictly decrease. Every range in an inclusion
    # or consistency proof has this shape; a range such as [1, 4) does not.
    if any(left <= right for left, right in pairwise(levels)):
        raise ValueError(f"[{start}, {end}) is not the leaf range of an RFC 6962 subtree")
    result = _fetch(lookup, nodes[-1])
    for node in reversed(nodes[:-1]):
        result = node_hash(_fetch(lookup, node), result)
    return result


# --- Proof layout (RFC 9162 §2.1.3.1 PATH and §2.1.4.1 SUBPROOF, unrolled) ----------------


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose subtree hashes form the inclusion proof, leaf to root."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        middle = start + _split(end - start)
        if index < middle:
            ranges.append((middle, end))
            end = middle
        else:
            ranges.append((start, middle))
            start = middle
    ranges.reverse()
    return ranges


def consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """Leaf ranges whose subtree hashes form the consistency proof, in proof order."""
    if not 0 < first <= second:
        raise ValueError(f"no consistency proof from size {first} to size {second}")
    ranges: list[tuple[int, int]] = []
    start, end = 0, second
    # SUBPROOF's flag b: whether the old tree is a whole subtree seen so far, in which case
    # the verifier already knows its hash and the proof leaves it out.
    old_root_is_subtree = True
    while first != end:
        middle = start + _split(end - start)
        if first <= middle:
            ranges.append((middle, end))
            end = middle
        else:
            ranges.append((start, middle))
            start = middle
            old_root_is_subtree = False
    if not old_root_is_subtree:
        ranges.append((start, end))
    ranges.reverse()
    return ranges


def _nodes_for(ranges: Iterable[tuple[int, int]]) -> set[NodeId]:
    return {node for start, end in ranges for node in perfect_subtrees(start, end)}


def nodes_for_inclusion(index: int, size: int) -> set[NodeId]:
    return _nodes_for(inclusion_ranges(index, size))


def nodes_for_consistency(first: int, second: int) -> set[NodeId]:
    return _nodes_for(consistency_ranges(first, second))


def inclusion_proof(index: int, size: int, lookup: NodeLookup) -> list[bytes]:
    return [hash_range(start, end, lookup) for start, end in inclusion_ranges(index, size)]


def consistency_proof(first: int, second: int, lookup: NodeLookup) -> list[bytes]:
    return [hash_range(start, end, lookup) for start, end in consistency_ranges(first, second)]


def root_hash(size: int, lookup: NodeLookup) -> bytes:
    return hash_range(0, size, lookup)


# --- Building the tree ---------------------------------------------------------------------


class CompactRange:
    """The right edge of a tree of `size` leaves: the roots of perfect_subtrees(0, size)."""

    __slots__ = ("_edge", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._edge: list[tuple[NodeId, bytes]] = []

    @classmethod
    def from_nodes(cls, size: int, lookup: NodeLookup) -> CompactRange:
        compact = cls()
        compact._edge = [(node, _fetch(lookup, node)) for node in perfect_subtrees(0, size)]
        compact._size = size
        return compact

    def copy(self) -> CompactRange:
        clone = CompactRange()
        clone._size, clone._edge = self._size, list(self._edge)
        return clone

    @property
    def size(self) -> int:
        return self._size

    @property
    def edge(self) -> list[tuple[NodeId, bytes]]:
        return list(self._edge)

    def append(self, leaf: bytes) -> list[tuple[NodeId, bytes]]:
        """Add a leaf hash; return every perfect subtree it completes, the leaf itself first."""
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes, got {len(leaf)}")
        node, value = (0, self._size), leaf
        completed = [(node, value)]
        while self._edge and self._edge[-1][0][0] == node[0]:
            _, left = self._edge.pop()
            node, value = (node[0] + 1, node[1] >> 1), node_hash(left, value)
            completed.append((node, value))
        self._edge.append((node, value))
        self._size += 1
        return completed

    def extend(self, leaves: Iterable[bytes]) -> list[tuple[NodeId, bytes]]:
        return [completed for leaf in leaves for completed in self.append(leaf)]

    def root(self) -> bytes:
        if not self._edge:
            return EMPTY_ROOT
        result = self._edge[-1][1]
        for _, value in reversed(self._edge[:-1]):
            result = node_hash(value, result)
        return result


def root_from_leaf_hashes(hashes: Iterable[bytes]) -> bytes:
    compact = CompactRange()
    for leaf in hashes:
        compact.append(leaf)
    return compact.root()


# --- Verification (RFC 9162 §2.1.3.2 and §2.1.4.2) ----------------------------------------


def _check_proof_hashes(proof: Sequence[bytes]) -> None:
    for position, value in enumerate(proof):
        if len(value) != HASH_SIZE:
            raise ProofError(f"proof hash {position} is {len(value)} bytes, expected {HASH_SIZE}")


def root_from_inclusion_proof(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    # With an empty proof the leaf hash is compared with the root as it is, so a value that is
    # not a hash at all could pass; the transparency-dev/merkle vectors require refusing it.
    if len(leaf) != HASH_SIZE:
        raise ProofError(f"leaf hash is {len(leaf)} bytes, expected {HASH_SIZE}")
    _check_proof_hashes(proof)
    expected = len(inclusion_ranges(index, size))
    if len(proof) != expected:
        raise ProofError(
            f"inclusion proof for leaf {index} of {size} has {len(proof)} hashes, expected {expected}"
        )
    fn, sn, result = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            result = node_hash(result, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the path to the root")
    return result


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    if not _same(root_from_inclusion_proof(leaf, index, size, proof), root):
        raise ProofError(f"inclusion proof for leaf {index} does not lead to the root of {size}")


def verify_consistency(
    first: int, second: int, proof: Sequence[bytes], first_root: bytes, second_root: bytes
) -> None:
    if first < 0 or second < first:
        raise ProofError(f"no consistency proof from size {first} to size {second}")
    if first == 0:
        # An empty tree is consistent with everything, so a "proof" from it proves nothing;
        # accepting one would only hide a caller's mistake (transparency-dev/merkle agrees).
        raise ProofError("a consistency proof needs a non-empty first tree")
    if first == second:
        if proof:
            raise ProofError("trees of equal size need an empty consistency proof")
        if not _same(first_root, second_root):
            raise ProofError(f"two different roots for the same tree size {first}")
        return
    _check_proof_hashes(proof)
    expected = len(consistency_ranges(first, second))
    if len(proof) != expected:
        raise ProofError(
            f"consistency proof {first} -> {second} has {len(proof)} hashes, expected {expected}"
        )
    path = list(proof)
    # §2.1.4.2 step 2: when the old tree is a perfect subtree its root is left out of the proof.
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    first_result = second_result = path[0]
    for value in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            first_result = node_hash(value, first_result)
            second_result = node_hash(value, second_result)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            second_result = node_hash(second_result, value)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than the path to the root")
    if not _same(first_result, first_root):
        raise ProofError(f"consistency proof does not lead to the root of size {first}")
    if not _same(second_result, second_root):
        raise ProofError(f"consistency proof does not lead to the root of size {second}")


# --- C2SP tlog-tiles -------------------------------------------------------------------------

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_TILE_LEVEL = 63

_TILE_LEVEL = re.compile(r"0|[1-9][0-9]?")
_PARTIAL_WIDTH = re.compile(r"[1-9][0-9]{0,2}")
_INDEX_LAST = re.compile(r"[0-9]{3}")
_INDEX_INNER = re.compile(r"x[0-9]{3}")


class TileRef(NamedTuple):
    level: int
    index: int
    width: int  # TILE_WIDTH for a full tile


def _check_tile(level: int, index: int, width: int) -> None:
    if not 0 <= level <= MAX_TILE_LEVEL:
        raise ValueError(f"tile level {level} is outside 0..{MAX_TILE_LEVEL}")
    if index < 0:
        raise ValueError(f"tile index {index} is negative")
    if not 1 <= width <= TILE_WIDTH:
        raise ValueError(f"tile width {width} is outside 1..{TILE_WIDTH}")


def tile_path(level: int, index: int, width: int | None = None) -> str:
    """`tile/<L>/<N>[.p/<W>]`, with N in 3-digit groups, all but the last prefixed by x."""
    width = TILE_WIDTH if width is None else width
    _check_tile(level, index, width)
    groups = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        groups.append(f"x{index % 1000:03d}")
        index //= 1000
    path = f"tile/{level}/{'/'.join(reversed(groups))}"
    return path if width == TILE_WIDTH else f"{path}.p/{width}"


def parse_tile_index(parts: Sequence[str]) -> int:
    """The N of a tile path from its path elements, e.g. ["x001", "x234", "067"] -> 1234067."""
    if not parts:
        raise ValueError("tile index is missing")
    if not all(_INDEX_INNER.fullmatch(part) for part in parts[:-1]):
        raise ValueError("every tile index element but the last must be x followed by 3 digits")
    if not _INDEX_LAST.fullmatch(parts[-1]):
        raise ValueError("the last tile index element must be exactly 3 digits")
    if len(parts) > 1 and parts[0] == "x000":
        # tile_path never writes a leading zero group; accepting one would give a tile
        # two names.
        raise ValueError("tile index has a leading zero group")
    index = 0
    for part in parts:
        index = index * 1000 + int(part.removeprefix("x"))
    return index


def parse_tile_path(path: str) -> TileRef:
    """Parse `tile/<L>/<N>[.p/<W>]` strictly, as tile_path writes it."""
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "tile":
        raise ValueError(f"not a tile path: {path!r}")
    if not _TILE_LEVEL.fullmatch(parts[1]) or int(parts[1]) > MAX_TILE_LEVEL:
        raise ValueError(f"tile level must be 0..{MAX_TILE_LEVEL} without leading zeros")
    level, index_parts, width = int(parts[1]), parts[2:], TILE_WIDTH
    if len(index_parts) >= 2 and index_parts[-2].endswith(".p"):
        width_text = index_parts[-1]
        # tlog-tiles: W is 1..255, no leading zeros; a full tile never carries .p.
        if not _PARTIAL_WIDTH.fullmatch(width_text) or int(width_text) >= TILE_WIDTH:
            raise ValueError(f"partial tile width must be 1..{TILE_WIDTH - 1}")
        width = int(width_text)
        index_parts = [*index_parts[:-2], index_parts[-2].removesuffix(".p")]
    return TileRef(level, parse_tile_index(index_parts), width)


def tile_node_range(level: int, index: int, width: int) -> tuple[int, int, int]:
    """(node level, first node index, count) of the tree nodes whose hashes a tile holds."""
    _check_tile(level, index, width)
    return level * TILE_HEIGHT, index * TILE_WIDTH, width


def partial_tile_width(level: int, size: int) -> int:
    """Width of the partial tile at `level` for a tree of `size` leaves; 0 when there is none."""
    return (size >> (level * TILE_HEIGHT)) % TILE_WIDTH


def tile_in_tree(level: int, index: int, width: int, size: int) -> bool:
    """Whether every hash of the tile is a complete node of a tree of `size` leaves."""
    node_level, first_node, count = tile_node_range(level, index, width)
    return first_node + count <= size >> node_level
