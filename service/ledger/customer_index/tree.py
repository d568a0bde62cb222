"""The customer index's tree (CONTRACT "Completeness"): a compact sparse Merkle tree over 256-bit keys.

A subtree that holds no key hashes to 32 zero bytes and one that holds exactly one key hashes to
that key's leaf: a leaf sits at the shallowest depth where no other key shares its prefix. Only
non-empty subtrees on some key's path are stored. Keys are only ever added or given a new value,
never removed, so no node ever has to be taken out.

A node is named by its heap number: the root is 1 and node n's children are 2n and 2n + 1, so the
node at depth d whose keys begin with the d bits p is (1 << d) | p. What is kept of it is its hash
(a branch) or its hash, key and value (a leaf): 32 or 96 bytes. The integrator holds the whole
index that way in memory, some 400 bytes a customer.

Storage keeps less: every leaf, but branches only at depths that are multiples of STRIDE. A pass
then writes about a quarter of the branches it changes, and a proof reads, below each stored
branch on its path, the few stored nodes that the branches between are hashed from.

`update` is the batch insert, free of I/O: touching k keys visits and rewrites O(k * depth) nodes,
never the whole index, and leaves the nodes it read as they were until the caller has stored
what it wrote.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

KEY_BITS = 256
HASH_SIZE = 32
EMPTY = bytes(HASH_SIZE)
ROOT = 1
STRIDE = 4  # branches are stored at depths 0, 4, 8, ...
_LEAF_SIZE = 3 * HASH_SIZE
_KEY_DOMAIN = b"seenby/customer-index/v1\x00"
_BRANCH = b"\x01"  # a branch's hash is SHA-256(0x01 || left || right)
_sha256 = hashlib.sha256

NodeId = int  # the heap number
Nodes = Mapping[NodeId, bytes]  # a branch's hash, or a leaf's hash + key + value


def index_key(customer_id: str) -> bytes:
    return hashlib.sha256(_KEY_DOMAIN + customer_id.encode()).digest()


def index_value(customer_seq: int, entry_hash: str | bytes) -> bytes:
    """What the index maps a customer to: its chain's head, by position and hash (hex, or its bytes)."""
    digest = bytes.fromhex(entry_hash) if isinstance(entry_hash, str) else entry_hash
    return hashlib.sha256(customer_seq.to_bytes(8, "big") + digest).digest()


def leaf_hash(key: bytes, value: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + key + value).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(_BRANCH + left + right).digest()


def leaf_node(key: bytes, value: bytes) -> bytes:
    return leaf_hash(key, value) + key + value


def leaf_of(node: bytes) -> tuple[bytes, bytes] | None:
    """A stored node's (key, value) when it is a leaf."""
    return (node[HASH_SIZE:2 * HASH_SIZE], node[2 * HASH_SIZE:]) if len(node) == _LEAF_SIZE else None


def depth_of(node_id: NodeId) -> int:
    return node_id.bit_length() - 1


def is_stored(node_id: NodeId, node: bytes) -> bool:
    """Whether storage keeps this node: every leaf, and the branches at depths that are multiples of
    STRIDE (the others are hashed again from those when needed)."""
    return len(node) == _LEAF_SIZE or depth_of(node_id) % STRIDE == 0


def stored_part(nodes: Nodes) -> dict[NodeId, bytes]:
    return {node_id: node for node_id, node in nodes.items() if is_stored(node_id, node)}


def complete(stored: Nodes) -> dict[NodeId, bytes]:
    """Every node of the index whose stored nodes these are: the branches storage leaves out are
    hashed from their children, deepest first."""
    nodes = dict(stored)
    by_depth: dict[int, set[NodeId]] = {}
    for node_id in stored:
        by_depth.setdefault(depth_of(node_id), set()).add(node_id)
    for depth in range(max(by_depth, default=0), 0, -1):
        for parent in {node_id >> 1 for node_id in by_depth.get(depth, ())}:
            if parent not in nodes:
                nodes[parent] = node_hash(_hash(nodes, parent << 1), _hash(nodes, parent << 1 | 1))
                by_depth.setdefault(depth - 1, set()).add(parent)
    return nodes


def path_of(key: bytes, depth: int) -> NodeId:
    """The node at `depth` on `key`'s path."""
    return (1 << depth) | int.from_bytes(key, "big") >> (KEY_BITS - depth)


def _bit(key: bytes, depth: int) -> int:
    return (key[depth >> 3] >> (7 - (depth & 7))) & 1


def _hash(nodes: Nodes, node_id: NodeId, memo: dict[NodeId, bytes] | None = None) -> bytes:
    """The subtree's hash from `nodes`, whole or only the stored part of its top STRIDE levels;
    `memo` keeps the branches hashed, for a caller that asks for nested subtrees."""
    node = nodes.get(node_id)
    if node is not None:
        return node[:HASH_SIZE]
    if depth_of(node_id) % STRIDE == 0:
        return EMPTY  # storage would hold it
    if memo is not None and (known := memo.get(node_id)) is not None:
        return known
    left, right = _hash(nodes, node_id << 1, memo), _hash(nodes, node_id << 1 | 1, memo)
    digest = EMPTY if left == right == EMPTY else node_hash(left, right)
    if memo is not None:
        memo[node_id] = digest
    return digest


class _Keys:
    """A batch's keys in order, as integers too, with their values: a subtree's keys are a slice of
    it, and the slice splits at one bisection per branch instead of a pass over its keys per depth."""

    def __init__(self, items: Mapping[bytes, bytes]) -> None:
        self.keys = sorted(items)  # 32 bytes each: their order is their integers'
        self.ints = [int.from_bytes(key, "big") for key in self.keys]
        self.values = [items[key] for key in self.keys]

    def holds(self, key: bytes, lo: int, hi: int) -> bool:
        number = int.from_bytes(key, "big")
        at = bisect.bisect_left(self.ints, number, lo, hi)
        return at < hi and self.ints[at] == number

    def split(self, node_id: NodeId, lo: int, hi: int) -> int:
        """Where the slice [lo, hi) of keys below `node_id` passes from its left child to its right."""
        below = KEY_BITS - depth_of(node_id)  # the key bits below the node's prefix
        return bisect.bisect_left(self.ints, ((node_id << 1 | 1) << (below - 1)) - (1 << KEY_BITS), lo, hi)


@dataclass(frozen=True)
class Applied:
    """What a batch did: the nodes to write (every one on a changed key's path; from
    update_in_memory, the index itself, already written), the keys that were not in the index
    before, and the new root."""

    written: dict[NodeId, bytes]
    added: int
    root: bytes


def update(nodes: Nodes, changes: Mapping[bytes, bytes]) -> Applied:
    """Insert or revalue a batch of keys in the index held by `nodes` (left as it is): every node of
    it, as complete() gives them from the stored ones, so that a node it lacks is an empty subtree."""
    written: dict[NodeId, bytes] = {}
    added, root = _update(nodes, changes, written)
    return Applied(written, added, root)


def update_in_memory(nodes: dict[NodeId, bytes], changes: Mapping[bytes, bytes]) -> Applied:
    """Apply `changes` to an index held in a dict, in place (the audit's rebuild, tests): each node
    is written over as soon as it is hashed, so `written` is the whole index, and an exception
    midway leaves it half updated."""
    added, root = _update(nodes, changes, nodes)
    return Applied(nodes, added, root)


def _update(nodes: Nodes, changes: Mapping[bytes, bytes], written: dict[NodeId, bytes]) -> tuple[int, bytes]:
    """update(), writing into `written`; how many keys were added, and the root. `written` may be
    `nodes` itself: every node is read before any node below it is written, and a changed key's
    siblings hold no changed key."""
    if not changes:
        return 0, _hash(nodes, ROOT)
    keys = _Keys(changes)
    get = nodes.get
    added = 0

    def held(node_id: NodeId) -> bytes:
        node = get(node_id)
        return EMPTY if node is None else node[:HASH_SIZE]

    def descend(node_id: NodeId, lo: int, hi: int) -> bytes:
        nonlocal added
        node = get(node_id)
        if node is None:
            added += hi - lo
            return _build(node_id, keys, lo, hi, written)
        if len(node) == _LEAF_SIZE:  # the one key stored here, revalued or joined by others
            stored_key = node[HASH_SIZE:2 * HASH_SIZE]
            if keys.holds(stored_key, lo, hi):
                added += hi - lo - 1
                return _build(node_id, keys, lo, hi, written)
            added += hi - lo
            merged = _Keys({stored_key: node[2 * HASH_SIZE:],
                            **dict(zip(keys.keys[lo:hi], keys.values[lo:hi], strict=True))})
            return _build(node_id, merged, 0, len(merged.keys), written)
        if hi - lo == 1:
            return alone(node_id, lo)
        middle = keys.split(node_id, lo, hi)
        left, right = node_id << 1, node_id << 1 | 1
        digest = node_hash(descend(left, lo, middle) if middle > lo else held(left),
                           descend(right, middle, hi) if hi > middle else held(right))
        written[node_id] = digest
        return digest

    def alone(branch: NodeId, at: int) -> bytes:
        """descend() for the one changed key under a branch (most of a path, in a large index): down
        its path to where it goes, without splitting key ranges a level at a time, then hashed up.
        The hottest loop of ingest's index update and of the audit: kept to plain operations."""
        nonlocal added
        number = keys.ints[at]
        shift = KEY_BITS - 1 - depth_of(branch)  # the key's bit that picks a child of this depth's node
        siblings = []  # the other side's hash at each depth, from the branch down
        child = branch
        while True:
            child = child << 1 | (number >> shift) & 1
            other = get(child ^ 1)
            siblings.append(EMPTY if other is None else other[:HASH_SIZE])
            node = get(child)
            if node is None or len(node) == _LEAF_SIZE:
                break
            shift -= 1
        key, value = keys.keys[at], keys.values[at]
        if node is not None and node[HASH_SIZE:2 * HASH_SIZE] != key:  # another key's leaf: both below
            added += 1
            digest = _build(child, _Keys({node[HASH_SIZE:2 * HASH_SIZE]: node[2 * HASH_SIZE:], key: value}),
                            0, 2, written)
        else:  # an empty place, or this key's own leaf
            added += node is None
            digest = leaf_hash(key, value)
            written[child] = digest + key + value
        for other in reversed(siblings):
            digest = _sha256(_BRANCH + other + digest if child & 1 else _BRANCH + digest + other).digest()
            child >>= 1
            written[child] = digest
        return digest

    root = descend(ROOT, 0, len(keys.ints))
    return added, root


def _build(node_id: NodeId, keys: _Keys, lo: int, hi: int, out: dict[NodeId, bytes]) -> bytes:
    """Write the subtree holding exactly the keys [lo, hi) at `node_id` (nothing stored below it)."""
    if hi - lo == 1:
        out[node_id] = leaf_node(keys.keys[lo], keys.values[lo])
        return out[node_id][:HASH_SIZE]
    middle = keys.split(node_id, lo, hi)
    left, right = node_id << 1, node_id << 1 | 1
    digest = node_hash(_build(left, keys, lo, middle, out) if middle > lo else EMPTY,
                       _build(right, keys, middle, hi, out) if hi > middle else EMPTY)
    out[node_id] = digest
    return digest


def build(items: Mapping[bytes, bytes]) -> tuple[bytes, dict[NodeId, bytes]]:
    """The root and nodes of an index holding exactly `items`, from scratch."""
    nodes: dict[NodeId, bytes] = {}
    root = _build(ROOT, _Keys(items), 0, len(items), nodes) if items else EMPTY
    return root, nodes


# --- Proofs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lookup:
    """The leaf found on a key's path (its own, another's sharing the path, or None for an empty
    subtree) and the siblings from that depth up to the root, deepest first."""

    leaf: tuple[bytes, bytes] | None
    siblings: tuple[bytes, ...]


def proof_reads(key: bytes, depths: Iterable[int]) -> set[NodeId]:
    """The stored nodes a lookup of `key` may read at these depths: the path's, their siblings, and
    below each sibling between stored depths, what its hash is made from."""
    wanted = set()
    for depth in depths:
        node_id = path_of(key, depth)
        wanted.add(node_id)
        if depth:
            wanted.update(_down_to_stored_depth(node_id ^ 1))
    return wanted


def _down_to_stored_depth(node_id: NodeId) -> list[NodeId]:
    found, level = [], [node_id]
    depth = depth_of(node_id)
    while True:
        found += level
        if depth % STRIDE == 0:
            return found
        level = [child for parent in level for child in (parent << 1, parent << 1 | 1)]
        depth += 1


def lookup(key: bytes, nodes: Nodes, read_to: int) -> Lookup | None:
    """The lookup of `key` from what `proof_reads` read at depths 0 to `read_to` (a multiple of
    STRIDE), or None when the path goes deeper than that."""
    memo: dict[NodeId, bytes] = {}  # the path's branches hold its siblings' subtrees: hash each once
    depth = 0
    while True:
        node_id = path_of(key, depth)
        node = nodes.get(node_id)
        if node is not None and len(node) == _LEAF_SIZE:
            break
        if node is None and _hash(nodes, node_id, memo) == EMPTY:
            break  # an empty subtree: the key is absent
        depth += 1
        if depth > min(read_to, KEY_BITS):
            return None
    siblings = tuple(_hash(nodes, path_of(key, above) ^ 1, memo) for above in range(depth, 0, -1))
    return Lookup(leaf_of(node) if node else None, siblings)


class IndexProofError(ValueError):
    pass


def verify_lookup(root: bytes, key: bytes, proof: Lookup) -> bytes | None:
    """Check `proof` for `key` against `root`; the key's value, or None when it proves absence."""
    siblings = proof.siblings
    depth = len(siblings)
    if depth > KEY_BITS:
        raise IndexProofError(f"{depth} siblings: a path has at most {KEY_BITS}")
    if any(len(sibling) != HASH_SIZE for sibling in siblings) or len(key) != HASH_SIZE:
        raise IndexProofError("every key and hash is 32 bytes")
    if depth and siblings[0] == EMPTY:
        raise IndexProofError("not compact: the found node's sibling is empty, so it belongs one level up")
    if proof.leaf is None:
        current = EMPTY
    else:
        leaf_key, value = proof.leaf
        if len(leaf_key) != HASH_SIZE or len(value) != HASH_SIZE:
            raise IndexProofError("every key and hash is 32 bytes")
        if path_of(leaf_key, depth) != path_of(key, depth):
            raise IndexProofError("the leaf found is not on the key's path")
        current = leaf_hash(leaf_key, value)
    for offset, sibling in enumerate(siblings):
        above = depth - 1 - offset
        current = node_hash(sibling, current) if _bit(key, above) else node_hash(current, sibling)
    if current != root:
        raise IndexProofError("the proof does not lead to the index root")
    if proof.leaf is not None and proof.leaf[0] == key:
        return proof.leaf[1]
    return None

