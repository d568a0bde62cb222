"""What seenby knows about a customer beyond its ledger: its jurisdiction."""
