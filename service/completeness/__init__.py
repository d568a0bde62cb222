"""Completeness proofs: a customer's chain head in the customer index the log commits to."""
