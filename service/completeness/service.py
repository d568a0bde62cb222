"""A customer's completeness proof, read from one snapshot of the log and the index."""

from __future__ import annotations

import base64
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from service.errors import ServiceUnavailable
from service.ledger.customer_index import store as index_store
from service.ledger.customer_index import tree
from service.tlog import service as tlog


async def completeness(session: AsyncSession, customer_id: str,
                       witnessing: tlog.Witnessing) -> dict[str, Any]:
    """Every read here must see one state (`snapshot_sessions`): the stored index is the latest
    one only, and must be the one the chosen index leaf commits to. Served as stored, never
    checked here: a stored index that does not match its leaf is for the customer to catch."""
    checkpoint = await tlog.served(session, witnessing)
    index_leaf, head = await index_store.index_leaf_and_head(session, customer_id, below=checkpoint.tree_size)
    if index_leaf is None:
        raise ServiceUnavailable("the log has not committed to a customer index yet (it does with its "
                                 "first entries); retry shortly")
    key = tree.index_key(customer_id)
    found = await index_store.lookup(session, key)
    proven = [index_leaf.log_index] + ([] if head is None else [head.log_index])
    index_hashes, *head_hashes = await tlog.inclusion_hashes(session, proven, checkpoint.tree_size)
    return {
        "checkpoint": checkpoint.note,
        "index": {
            "log_index": index_leaf.log_index,
            "canonical": base64.b64encode(index_leaf.canonical).decode(),
            "hashes": index_hashes,
        },
        "key": key.hex(),
        "head": None if head is None else {
            "customer_seq": head.customer_seq, "entry_hash": head.entry_hash, "log_index": head.log_index,
            "hashes": head_hashes[0],
        },
        "proof": {
            "leaf": None if found.leaf is None else {"key": found.leaf[0].hex(),
                                                     "value": found.leaf[1].hex()},
            "siblings": [sibling.hex() for sibling in found.siblings],
        },
    }
