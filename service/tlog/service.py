"""Proofs and tiles from stored perfect-subtree nodes: O(log n) reads, never a rebuilt tree."""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncSession

from service import clock
from service.db import engine_of
from service.errors import (
    BeyondLatestCheckpoint,
    NotFound,
    ServiceUnavailable,
    TileBeyondLatestCheckpoint,
    Unprocessable,
)
from service.ledger import merkle, tree_store
from service.ledger.tree_store import StoredCheckpoint
from service.witness import store as witness_store
from service.witness.policy import Policy


def _out_of_range(field: str, message: str) -> Unprocessable:
    return Unprocessable.at(f"query.{field}", message, kind="out_of_range")


async def latest(session: AsyncSession) -> StoredCheckpoint:
    checkpoint = await tree_store.latest_checkpoint(session)
    if checkpoint is None:
        raise ServiceUnavailable("the log has not signed its first checkpoint yet; retry shortly")
    return checkpoint


@dataclass(frozen=True)
class Witnessing:
    policy: Policy | None  # SEENBY_WITNESS_POLICY_FILE, parsed
    fail_open: bool = False


async def witnessing(request: Request) -> Witnessing:
    return request.app.state.witnessing  # type: ignore[no-any-return]


WitnessingDep = Annotated[Witnessing, Depends(witnessing)]


async def served(session: AsyncSession, witnessing: Witnessing) -> StoredCheckpoint:
    """The checkpoint readers are given: with a witness policy, the newest that meets its quorum,
    cosignatures included (or, failing open during a rollout, the newest signed while none does)."""
    if witnessing.policy is None:
        return await latest(session)
    witnessed = await witness_store.witnessed_checkpoint(session, witnessing.policy)
    if witnessed is not None:
        return witnessed
    if witnessing.fail_open:
        return await latest(session)
    raise ServiceUnavailable("no checkpoint has been cosigned by the witness quorum yet; retry shortly")


def oldest_provable_size(
    witnessing: Witnessing, exchange_seconds: float
) -> Callable[[AsyncSession], Awaitable[int | None]] | None:
    """Under a witness policy, how the integrator reads the size of the oldest checkpoint a proof
    may yet be asked against (None: any), and keeps the customer index's history back to it.

    That is the newest witnessed checkpoint, once there is one (failing open serves the newest signed
    meanwhile, which a witnessed one will be older than). While there is none, the first will be
    one a witness is sent from now on, or was sent within an exchange (`exchange_seconds`): the
    newest checkpoint then, or a later one; the log submits no other. Without a policy, None: the
    checkpoint served is always the latest."""
    policy = witnessing.policy
    if policy is None:
        return None

    async def size(session: AsyncSession) -> int | None:
        witnessed = await witness_store.witnessed_checkpoint(session, policy)
        if witnessed is not None:
            return witnessed.tree_size
        long_ago = clock.now_us() - round((exchange_seconds + _SUBMISSION_SLACK_SECONDS) * 1_000_000)
        return await tree_store.newest_signed_size(session, at_or_before_us=long_ago)

    return size


# A submission starts from a checkpoint read a little before it is sent, and witnesses are paced:
# slack on top of the exchange's own timeout.
_SUBMISSION_SLACK_SECONDS = 10.0


# The largest signed size this process has read, per engine (an app's database: never shared with
# another app, so a database dropped and made anew under the same URL starts from nothing). The log
# only grows, so a size at or below it is known to be signed without asking the database again.
_signed_at_least: weakref.WeakKeyDictionary[Engine, int] = weakref.WeakKeyDictionary()


async def _within_latest(session: AsyncSession, tree_size: int, field: str) -> None:
    engine = engine_of(session)
    if tree_size <= _signed_at_least.get(engine, -1):
        return
    size = (await latest(session)).tree_size
    _signed_at_least[engine] = max(size, _signed_at_least.get(engine, -1))
    if tree_size > size:
        raise BeyondLatestCheckpoint.at(f"query.{field}", f"{field} {tree_size} is beyond the latest "
                                        f"checkpoint ({size})", kind="out_of_range")


async def signed_inclusion_hashes(session: AsyncSession, indexes: list[int],
                                  tree_size: int) -> list[list[str]]:
    """Inclusion proofs of these leaves in a tree of `tree_size`, which must be signed (else 422)."""
    await _within_latest(session, tree_size, "tree_size")
    return await inclusion_hashes(session, indexes, tree_size)


async def inclusion_hashes(session: AsyncSession, indexes: list[int], tree_size: int) -> list[list[str]]:
    """Inclusion proofs of these leaves in a tree the caller knows is signed, from one read."""
    wanted = set().union(*(merkle.nodes_for_inclusion(index, tree_size) for index in indexes))
    lookup = await tree_store.read_nodes(session, wanted)
    return [[h.hex() for h in merkle.inclusion_proof(index, tree_size, lookup)] for index in indexes]


async def inclusion(session: AsyncSession, log_index: int, tree_size: int) -> dict[str, Any]:
    await _within_latest(session, tree_size, "tree_size")
    if log_index >= tree_size:
        raise _out_of_range("log_index", f"log_index {log_index} is outside a tree of {tree_size}")
    wanted = merkle.nodes_for_inclusion(log_index, tree_size) | {(0, log_index)}
    lookup = await tree_store.read_nodes(session, wanted)
    return {
        "log_index": log_index,
        "tree_size": tree_size,
        "leaf_hash": lookup[(0, log_index)].hex(),
        "hashes": [h.hex() for h in merkle.inclusion_proof(log_index, tree_size, lookup)],
    }


async def consistency(session: AsyncSession, first: int, second: int) -> dict[str, Any]:
    await _within_latest(session, second, "second")
    if first > second:
        raise _out_of_range("first", f"first ({first}) is greater than second ({second})")
    if first < 1:
        raise _out_of_range("first", "a consistency proof starts from a tree of at least 1 entry")
    lookup = await tree_store.read_nodes(session, merkle.nodes_for_consistency(first, second))
    return {
        "first": first,
        "second": second,
        "hashes": [h.hex() for h in merkle.consistency_proof(first, second, lookup)],
    }


async def entry_proof(session: AsyncSession, log_index: int | None,
                      witnessing: Witnessing) -> dict[str, Any] | None:
    """An entry's inclusion in the served checkpoint, or None until it is in (a witnessed) one."""
    if log_index is None:
        return None
    try:
        checkpoint = await served(session, witnessing)
    except ServiceUnavailable:
        return None
    if log_index >= checkpoint.tree_size:
        return None
    proof = await inclusion(session, log_index, checkpoint.tree_size)
    return {"tree_size": checkpoint.tree_size, "leaf_hash": proof["leaf_hash"],
            "hashes": proof["hashes"], "checkpoint": checkpoint.note}


async def tile(session: AsyncSession, path: str) -> tuple[bytes, bool]:
    """A C2SP tlog-tiles hash tile's bytes, and whether it is full (so immutable)."""
    try:
        ref = merkle.parse_tile_path(path)
    except ValueError as exc:
        raise NotFound(f"no tile at {path}: {exc}") from exc
    size = (await latest(session)).tree_size
    if not merkle.tile_in_tree(ref.level, ref.index, ref.width, size):
        raise TileBeyondLatestCheckpoint(f"the tree of {size} entries has no tile {path}")
    level, first, count = merkle.tile_node_range(ref.level, ref.index, ref.width)
    hashes = await tree_store.read_level_range(session, level, first, count)
    if len(hashes) != count:
        raise NotFound(f"the tree of {size} entries has no tile {path}")
    return b"".join(hashes), ref.width == merkle.TILE_WIDTH
