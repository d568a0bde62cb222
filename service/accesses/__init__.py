"""Recording accesses: the write side of the ledger for internal services."""
