"""The customer index: a map from each customer to the head of its chain, committed to by the log.

    tree    the compact sparse Merkle tree: keys, values, hashing, batch updates, lookups, proofs
    store   its nodes in the database, updated by the integrator in the same pass as the log
"""
