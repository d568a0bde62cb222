"""Regulators' exports: streamed entries, manifests with inclusion proofs, and their offline check."""
