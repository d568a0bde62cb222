"""Deletion requests: customers file them, services carry them out, every step is a ledger entry."""
