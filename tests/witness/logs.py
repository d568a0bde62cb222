"""A small Merkle log for witness tests: leaves appended, checkpoints signed, consistency proofs."""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.ledger import merkle
from service.ledger.checkpoint import Checkpoint, Verifier, raw_public_key, sign_checkpoint


class TestLog:
    __test__ = False

    def __init__(self, origin: str = "log.example/witnessed", key: Ed25519PrivateKey | None = None,
                 salt: bytes = b"") -> None:
        """`salt` changes every leaf: with the same origin and key, a fork of the log."""
        self.origin, self.salt = origin, salt
        self.key = key or Ed25519PrivateKey.generate()
        self.verifier = Verifier.for_public_key(origin, raw_public_key(self.key))
        self._range = merkle.CompactRange()
        self._nodes: dict[merkle.NodeId, bytes] = {}

    @property
    def size(self) -> int:
        return self._range.size

    def grow(self, leaves: int) -> str:
        """Append leaves; the signed checkpoint of the tree after them."""
        for _ in range(leaves):
            leaf = merkle.leaf_hash(hashlib.sha256(self.salt + b"%d" % self.size).digest())
            self._nodes.update(self._range.append(leaf))
        return self.checkpoint()

    def checkpoint(self, key: Ed25519PrivateKey | None = None, root: bytes | None = None) -> str:
        checkpoint = Checkpoint(self.origin, self.size, root or self._range.root())
        return sign_checkpoint(checkpoint, key or self.key)

    def proof(self, old: int) -> list[bytes]:
        return merkle.consistency_proof(old, self.size, self._nodes) if 0 < old < self.size else []


def submission(old: int, proof: list[bytes], checkpoint: str) -> bytes:
    lines = [f"old {old}", *(base64.b64encode(h).decode() for h in proof)]
    return ("\n".join(lines) + "\n\n" + checkpoint).encode()
