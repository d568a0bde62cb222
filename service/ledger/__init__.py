"""The ledger: canonical entries, Merkle log and checkpoints."""
