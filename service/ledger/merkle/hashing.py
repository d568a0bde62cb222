"""RFC 6962 / RFC 9162 hashing: leaves, interior nodes, and the hash of any leaf range computed
from stored perfect subtrees."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from itertools import pairwise
from typing import TypeAlias

HASH_SIZE = 32

# (level, index): the perfect subtree of 2**level leaves starting at leaf index * 2**level.
# Level 0 nodes are leaf hashes. A perfect subtree's hash never changes once the tree has
# grown past it, so these are the only tree nodes a store ever needs to keep.
NodeId: TypeAlias = tuple[int, int]
NodeLookup: TypeAlias = Mapping[NodeId, bytes]

EMPTY_ROOT = hashlib.sha256(b"").digest()


class MissingNodeError(LookupError):
    """The lookup lacks a tree node that the computation needs."""


def leaf_hash(data: bytes) -> bytes:
    # RFC 9162 §2.1.1: the 0x00 / 0x01 prefixes keep leaves and interior nodes apart.
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(width: int) -> int:
    # RFC 9162 §2.1.1: k is the largest power of two smaller than n (n > 1).
    return 1 << ((width - 1).bit_length() - 1)


def fetch_node(lookup: NodeLookup, node: NodeId) -> bytes:
    try:
        return lookup[node]
    except KeyError:
        raise MissingNodeError(f"tree node (level, index) {node} is not available") from None


def same_hash(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


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
    result = fetch_node(lookup, nodes[-1])
    for node in reversed(nodes[:-1]):
        result = node_hash(fetch_node(lookup, node), result)
    return result


def root_hash(size: int, lookup: NodeLookup) -> bytes:
    return hash_range(0, size, lookup)
