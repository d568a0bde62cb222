"""The compact range: a growing tree's right edge, all that appending a leaf needs."""

from __future__ import annotations

from collections.abc import Iterable

from service.ledger.merkle.hashing import (
    EMPTY_ROOT,
    HASH_SIZE,
    NodeId,
    NodeLookup,
    fetch_node,
    node_hash,
    perfect_subtrees,
)


class CompactRange:
    """The right edge of a tree of `size` leaves: the roots of perfect_subtrees(0, size)."""

    __slots__ = ("_edge", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._edge: list[tuple[NodeId, bytes]] = []

    @classmethod
    def from_nodes(cls, size: int, lookup: NodeLookup) -> CompactRange:
        compact = cls()
        compact._edge = [(node, fetch_node(lookup, node)) for node in perfect_subtrees(0, size)]
        compact._size = size
        return compact

    def copy(self) -> CompactRange:
        clone = CompactRange()
        clone._size, clone._edge = self._size, list(self._edge)
        return clone

    @property
    def size(self) -> int:
        return self._size

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
