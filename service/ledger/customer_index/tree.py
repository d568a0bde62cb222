"""The customer index's tree (CONTRACT "Completeness"): a compact sparse Merkle tree over 256-bit keys.

A subtree that holds no key hashes to 32 zero bytes and one that holds exactly one key hashes to
that key's leaf: a leaf sits at the shallowest depth where no other key shares its prefix. Only
non-empty subtrees on some key's path are stored, one `Node` each, named by (depth, prefix) with
the prefix as the integer of the key's first `depth` bits. Keys are only ever added or given a new
value, never removed, so no node ever has to be taken out.

`Update` is the batch insert, free of I/O: it says which stored nodes it needs next (one depth at
a time, so a database answers each depth in one query) and is fed what is stored, until it has
the nodes to write and the new root. Touching k keys reads and writes O(k * depth) nodes, never
the whole index.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

KEY_BITS = 256
HASH_SIZE = 32
EMPTY = bytes(HASH_SIZE)
_KEY_DOMAIN = b"seenby/customer-index/v1\x00"

NodeId = tuple[int, int]  # (depth, the first `depth` bits of the keys below it, as an integer)


def index_key(customer_id: str) -> bytes:
    return hashlib.sha256(_KEY_DOMAIN + customer_id.encode()).digest()


def index_value(customer_seq: int, entry_hash: str) -> bytes:
    """What the index maps a customer to: its chain's head, by position and hash."""
    return hashlib.sha256(customer_seq.to_bytes(8, "big") + bytes.fromhex(entry_hash)).digest()


def leaf_hash(key: bytes, value: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + key + value).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def path_of(key: bytes, depth: int) -> NodeId:
    """The node at `depth` on `key`'s path."""
    return depth, int.from_bytes(key, "big") >> (KEY_BITS - depth)


def sibling_of(node: NodeId) -> NodeId:
    depth, prefix = node
    return depth, prefix ^ 1


def _children(node: NodeId) -> tuple[NodeId, NodeId]:
    depth, prefix = node
    return (depth + 1, prefix << 1), (depth + 1, prefix << 1 | 1)


def _bit(key: bytes, depth: int) -> int:
    return (key[depth >> 3] >> (7 - (depth & 7))) & 1


@dataclass(frozen=True)
class Node:
    hash: bytes
    leaf: tuple[bytes, bytes] | None = None  # (key, value) when the subtree holds exactly one key


NodeLookup = Mapping[NodeId, Node]


class Update:
    """Insert or revalue a batch of keys: `while wanted := u.wanted(): u.feed(read(wanted))`."""

    def __init__(self, changes: Mapping[bytes, bytes]) -> None:
        self.written: dict[NodeId, Node] = {}
        self.added = 0  # keys that were not in the index before
        self._stored: dict[NodeId, Node] = {}
        self._pending: dict[NodeId, dict[bytes, bytes]] = {(0, 0): dict(changes)} if changes else {}
        self._wanted: set[NodeId] = {(0, 0)}
        self._branches: list[NodeId] = []  # touched stored branches, shallowest first
        self._root: bytes | None = None
        self._root_only = not changes  # nothing to change: read the root and stop

    def wanted(self) -> set[NodeId]:
        """The stored nodes to read next; empty when the update is complete."""
        return self._wanted

    def feed(self, stored: NodeLookup) -> None:
        """What is stored of `wanted()` (an absent id is an empty subtree)."""
        self._stored.update((node_id, stored[node_id]) for node_id in self._wanted if node_id in stored)
        if self._root_only:
            self._root = self._hash_of((0, 0))
            self._wanted = set()
            return
        pending, self._pending, self._wanted = self._pending, {}, set()
        for node_id, changes in pending.items():
            node = self._stored.get(node_id)
            if node is not None and node.leaf is None:
                self._branches.append(node_id)
                self._wanted.update(_children(node_id))
                depth = node_id[0]
                for child, bit in zip(_children(node_id), (0, 1), strict=True):
                    below = {key: value for key, value in changes.items() if _bit(key, depth) == bit}
                    if below:
                        self._pending[child] = below
                continue
            merged = dict([node.leaf]) if node is not None and node.leaf is not None else {}
            self.added += sum(1 for key in changes if key not in merged)
            merged.update(changes)
            _build(node_id, merged, self.written)
        if not self._pending:
            self._wanted = set()
            for branch in reversed(self._branches):  # deepest first: children are final
                left, right = _children(branch)
                self.written[branch] = Node(node_hash(self._hash_of(left), self._hash_of(right)))
            self._root = self._hash_of((0, 0))

    @property
    def root(self) -> bytes:
        if self._root is None:
            raise RuntimeError("the update has not been fed every node it wants")
        return self._root

    def _hash_of(self, node_id: NodeId) -> bytes:
        node = self.written.get(node_id) or self._stored.get(node_id)
        return node.hash if node else EMPTY


def _build(node_id: NodeId, items: Mapping[bytes, bytes], out: dict[NodeId, Node]) -> bytes:
    """Write the subtree holding exactly `items` at `node_id` (nothing stored below it yet)."""
    if len(items) == 1:
        ((key, value),) = items.items()
        out[node_id] = Node(leaf_hash(key, value), (key, value))
        return out[node_id].hash
    depth = node_id[0]
    hashes = []
    for child, bit in zip(_children(node_id), (0, 1), strict=True):
        below = {key: value for key, value in items.items() if _bit(key, depth) == bit}
        hashes.append(_build(child, below, out) if below else EMPTY)
    out[node_id] = Node(node_hash(*hashes))
    return out[node_id].hash


def update_in_memory(nodes: dict[NodeId, Node], changes: Mapping[bytes, bytes]) -> Update:
    """Apply `changes` to an index held in a dict (the audit's rebuild, tests)."""
    update = Update(changes)
    while wanted := update.wanted():
        update.feed({node_id: nodes[node_id] for node_id in wanted if node_id in nodes})
    nodes.update(update.written)
    return update


def build(items: Mapping[bytes, bytes]) -> tuple[bytes, dict[NodeId, Node]]:
    """The root and nodes of an index holding exactly `items`, from scratch."""
    nodes: dict[NodeId, Node] = {}
    root = _build((0, 0), items, nodes) if items else EMPTY
    return root, nodes


# --- Proofs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lookup:
    """The leaf found on a key's path (its own, another's sharing the path, or None for an empty
    subtree) and the siblings from that depth up to the root, deepest first."""

    leaf: tuple[bytes, bytes] | None
    siblings: tuple[bytes, ...]


def path_and_siblings(key: bytes, depths: Iterable[int]) -> set[NodeId]:
    """The nodes a lookup of `key` reads at these depths: the path's and their siblings."""
    wanted = set()
    for depth in depths:
        wanted.add(path_of(key, depth))
        if depth:
            wanted.add(sibling_of(path_of(key, depth)))
    return wanted


def lookup(key: bytes, nodes: NodeLookup, read_to: int) -> Lookup | None:
    """The lookup of `key` from what `path_and_siblings` read at depths 0 to `read_to`, or None
    when the path goes deeper than that."""
    depth = 0
    while (node := nodes.get(path_of(key, depth))) is not None and node.leaf is None:
        depth += 1
        if depth > min(read_to, KEY_BITS):
            return None
    siblings = (nodes.get(sibling_of(path_of(key, above))) for above in range(depth, 0, -1))
    return Lookup(node.leaf if node else None, tuple(found.hash if found else EMPTY for found in siblings))


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

