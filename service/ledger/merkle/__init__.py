"""The RFC 6962 / RFC 9162 Merkle tree, one concern a module:

    hashing   leaf and node hashes; any range's hash from stored perfect subtrees
    proofs    inclusion and consistency proofs: their layout, building and verifying them
    compact   the compact range, the right edge that appending a leaf needs
    tiles     C2SP tlog-tiles paths, the nodes each tile holds, and hashing up the levels not stored

Callers use this package's names (`merkle.leaf_hash`, `merkle.CompactRange`, ...).
"""

from service.ledger.merkle.compact import (
    CompactRange,
    root_from_leaf_hashes,
)
from service.ledger.merkle.hashing import (
    EMPTY_ROOT,
    HASH_SIZE,
    MissingNodeError,
    NodeId,
    NodeLookup,
    fetch_node,
    hash_range,
    leaf_hash,
    node_hash,
    perfect_subtrees,
    root_hash,
)
from service.ledger.merkle.proofs import (
    InclusionChecker,
    ProofBlock,
    ProofError,
    consistency_proof,
    consistency_ranges,
    inclusion_proof,
    inclusion_ranges,
    nodes_for_consistency,
    nodes_for_inclusion,
    proof_blocks,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from service.ledger.merkle.tiles import (
    MAX_TILE_LEVEL,
    STORED_TILE_STEP,
    TILE_HEIGHT,
    TILE_WIDTH,
    TileRef,
    hashed_up,
    nodes_under,
    parse_tile_index,
    parse_tile_path,
    partial_tile_width,
    tile_in_tree,
    tile_node_range,
    tile_path,
)

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_TILE_LEVEL",
    "STORED_TILE_STEP",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "CompactRange",
    "InclusionChecker",
    "MissingNodeError",
    "NodeId",
    "NodeLookup",
    "ProofBlock",
    "ProofError",
    "TileRef",
    "consistency_proof",
    "consistency_ranges",
    "fetch_node",
    "hash_range",
    "hashed_up",
    "inclusion_proof",
    "inclusion_ranges",
    "leaf_hash",
    "node_hash",
    "nodes_for_consistency",
    "nodes_for_inclusion",
    "nodes_under",
    "parse_tile_index",
    "parse_tile_path",
    "partial_tile_width",
    "perfect_subtrees",
    "proof_blocks",
    "root_from_inclusion_proof",
    "root_from_leaf_hashes",
    "root_hash",
    "tile_in_tree",
    "tile_node_range",
    "tile_path",
    "verify_consistency",
    "verify_inclusion",
]
