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
    one, and under a witness policy the index leaf in the checkpoint served may be older: the
    index is then read as of that leaf. Served as stored, never checked here: a stored index that
    does not match its leaf is for the customer to catch."""
    checkpoint = await tlog.served(session, witnessing)
    index_leaf, head = await index_store.index_leaf_and_head(session, customer_id, below=checkpoint.tree_size)
    if index_leaf is None:
        raise ServiceUnavailable("the log has not committed to a customer index yet (it does with its "
                                 "first entries); retry shortly")
    key = tree.index_key(customer_id)
    found = await index_store.lookup(session, key, as_of=await _as_of(session, index_leaf, witnessing))
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


async def _as_of(session: AsyncSession, index_leaf: index_store.IndexLeaf,
                 witnessing: tlog.Witnessing) -> int | None:
    """None to read the stored index as it is; else the leaf to read it as of. Without a witness
    policy the checkpoint served is the latest, and so is its index leaf."""
    if witnessing.policy is None:
        return None
    latest = await index_store.latest_index_leaf(session)
    if latest is None or latest.log_index == index_leaf.log_index:
        return None
    if not await index_store.history_kept_after(session, index_leaf.log_index):
        raise ServiceUnavailable("the customer index as of the witnessed checkpoint is not kept (the "
                                 "witness policy is new); retry once the witnesses have cosigned a newer one")
    return index_leaf.log_index
