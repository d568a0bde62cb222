"""The public face of the Merkle log: checkpoints, the verifier key, proofs and tiles."""
