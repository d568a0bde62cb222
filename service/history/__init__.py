"""Reading customers' histories and chains: the read side of the ledger."""
