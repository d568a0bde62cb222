"""seenby: an append-only, verifiable record of every access to a customer's camera clips."""
