"""RFC 9162 inclusion and consistency proofs: which subtrees form them (§2.1.3.1 PATH and §2.1.4.1
SUBPROOF, unrolled), building them from stored nodes, and verifying them (§2.1.3.2, §2.1.4.2)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from service.ledger.merkle.hashing import (
    HASH_SIZE,
    NodeId,
    NodeLookup,
    hash_range,
    node_hash,
    perfect_subtrees,
    same_hash,
    split_point,
)


class ProofError(ValueError):
    """A proof that does not verify, or whose parameters no valid proof could have."""


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose subtree hashes form the inclusion proof, leaf to root."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        middle = start + split_point(end - start)
        if index < middle:
            ranges.append((middle, end))
            end = middle
        else:
            ranges.append((start, middle))
            start = middle
    ranges.reverse()
    return ranges


@dataclass(frozen=True)
class ProofBlock:
    """One of the largest perfect subtrees a tree splits into, left to right. Every leaf's inclusion
    proof is its sibling path inside its block (a node a level, `height` levels), then the same
    ranges above the block: those of the blocks to its right as one, then each block to its left."""

    start: int
    height: int
    above: tuple[tuple[int, int], ...]  # leaf to root, as inclusion_ranges orders them

    def path(self, index: int, levels: int) -> list[NodeId]:
        """The siblings of leaf `index`'s path at its lowest `levels` levels."""
        return [(level, (index >> level) ^ 1) for level in range(levels)]


def proof_blocks(size: int) -> list[ProofBlock]:
    """The blocks of a tree of `size` leaves: inclusion_ranges(i, size) is the path of i in its block
    followed by that block's `above`."""
    roots = [(index << level, level) for level, index in perfect_subtrees(0, size)]
    return [
        ProofBlock(start, height, tuple(
            ([(roots[position + 1][0], size)] if position + 1 < len(roots) else [])
            + [(left, left + (1 << left_height)) for left, left_height in reversed(roots[:position])]
        ))
        for position, (start, height) in enumerate(roots)
    ]


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
        middle = start + split_point(end - start)
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


def _check_proof_hashes(proof: Sequence[bytes]) -> None:
    if set(map(len, proof)) <= {HASH_SIZE}:
        return
    for position, value in enumerate(proof):
        if len(value) != HASH_SIZE:
            raise ProofError(f"proof hash {position} is {len(value)} bytes, expected {HASH_SIZE}")


def root_from_inclusion_proof(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    _check_inclusion_shape(leaf, index, size, proof)
    result = leaf
    for sibling, on_the_left, _ in _path(index, size - 1, proof, "inclusion"):
        result = node_hash(sibling, result) if on_the_left else node_hash(result, sibling)
    return result


def _check_inclusion_shape(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> None:
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    # With an empty proof the leaf hash is compared with the root as it is, so a value that is
    # not a hash at all could pass; the transparency-dev/merkle vectors require refusing it.
    if len(leaf) != HASH_SIZE:
        raise ProofError(f"leaf hash is {len(leaf)} bytes, expected {HASH_SIZE}")
    _check_proof_hashes(proof)
    inner = (index ^ (size - 1)).bit_length()  # the levels below where the leaf's path meets the right edge
    expected = inner + (index >> inner).bit_count()  # == len(inclusion_ranges(index, size))
    if len(proof) != expected:
        raise ProofError(
            f"inclusion proof for leaf {index} of {size} has {len(proof)} hashes, expected {expected}"
        )


def _path(fn: int, sn: int, proof: Sequence[bytes], kind: str) -> Iterator[tuple[bytes, bool, NodeId]]:
    """Each proof hash with whether it is the left sibling, and the node (level above where the walk
    began, index) it hashes up to, walking node `fn` of a tree whose last node is `sn` up to the
    root (the loop both of RFC 9162's verifications share)."""
    level = 0
    for value in proof:
        if sn == 0:
            raise ProofError(f"{kind} proof is longer than the path to the root")
        on_the_left = bool(fn & 1) or fn == sn
        if on_the_left:
            while fn and not fn & 1:
                fn, sn, level = fn >> 1, sn >> 1, level + 1
        fn, sn, level = fn >> 1, sn >> 1, level + 1
        yield value, on_the_left, (level, fn)
    if sn != 0:
        raise ProofError(f"{kind} proof is shorter than the path to the root")


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    if not same_hash(root_from_inclusion_proof(leaf, index, size, proof), root):
        raise ProofError(f"inclusion proof for leaf {index} does not lead to the root of {size}")


class InclusionChecker:
    """Checks the inclusion proofs of many leaves in one tree, sharing the hashing neighbours have in
    common: leaves under one subtree have the same path above it.

    Each node a verified proof computes is then known to be that node of the tree. A later proof
    whose path reaches a known node with the same hash is verified there, if the rest of its hashes
    are exactly the known proof's from that node up (the one path from that node to the root): every
    hash of every proof is still checked, most by comparing rather than hashing. Only the last
    path is kept, a node a level.
    """

    def __init__(self, size: int, root: bytes) -> None:
        self.size, self.root = size, root
        # (level, index) -> (its hash, the proof that computed it, the position of its last hash)
        self._known: dict[NodeId, tuple[bytes, Sequence[bytes], int]] = {}

    def verify(self, leaf: bytes, index: int, proof: Sequence[bytes]) -> None:
        """Raises ProofError, as verify_inclusion does, unless the proof puts leaf at index."""
        _check_inclusion_shape(leaf, index, self.size, proof)
        computed: dict[NodeId, tuple[bytes, Sequence[bytes], int]] = {}
        result = leaf
        walk = _path(index, self.size - 1, proof, "inclusion")
        for position, (sibling, on_the_left, node) in enumerate(walk):
            result = node_hash(sibling, result) if on_the_left else node_hash(result, sibling)
            computed[node] = (result, proof, position)
            known = self._known.get(node)
            if known is not None and same_hash(known[0], result):
                if list(proof[position + 1:]) != list(known[1][known[2] + 1:]):
                    break  # a hash above this node is not the tree's
                self._remember(computed, node[0])
                return
        else:
            if same_hash(result, self.root):
                self._remember(computed, max((level for level, _ in computed), default=0))
                return
        verify_inclusion(leaf, index, self.size, proof, self.root)  # raises, saying why

    def _remember(self, computed: dict[NodeId, tuple[bytes, Sequence[bytes], int]], level: int) -> None:
        self._known = {node: value for node, value in self._known.items() if node[0] > level} | computed


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
        if not same_hash(first_root, second_root):
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
    for value, on_the_left, _ in _path(fn, sn, path[1:], "consistency"):
        if on_the_left:
            first_result = node_hash(value, first_result)
            second_result = node_hash(value, second_result)
        else:
            second_result = node_hash(second_result, value)
    if not same_hash(first_result, first_root):
        raise ProofError(f"consistency proof does not lead to the root of size {first}")
    if not same_hash(second_result, second_root):
        raise ProofError(f"consistency proof does not lead to the root of size {second}")
