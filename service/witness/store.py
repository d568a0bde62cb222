"""What the log keeps of its witnesses: their verified cosignatures by tree size, and evidence of
conflicts. The checkpoint served is the newest whose cosignatures meet the policy's quorum."""

from __future__ import annotations

import weakref
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import Engine, func, literal, select, union_all
from sqlalchemy.dialects import postgresql, sqlite

from service.db import Executor, dialect_of, engine_of
from service.ledger import tree_store
from service.ledger.tree_store import StoredCheckpoint
from service.witness.policy import Policy
from service.witness.tables import conflicts, cosignatures

# Sizes weighed for the quorum a statement at a time, newest first: the witnesses of a policy cosign
# the same recent checkpoints, so the first page nearly always holds the newest to meet it.
_SIZES_PER_PAGE = 64


# The newest size found to meet a policy's quorum, per database (engine): where later searches stop.
_witnessed_at_least: weakref.WeakKeyDictionary[Engine, tuple[Policy, int]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Cosignature:
    tree_size: int
    witness: str  # the policy's name for it
    line: str
    cosigned_at: int


async def keep(session: Executor, cosignature: Cosignature) -> None:
    """Keep a verified cosignature; a second one by the same witness for the same size is dropped."""
    insert = (postgresql if dialect_of(session) == "postgresql" else sqlite).insert(cosignatures)
    await session.execute(insert.on_conflict_do_nothing(), [{
        "tree_size": cosignature.tree_size, "witness": cosignature.witness, "line": cosignature.line,
        "cosigned_at": cosignature.cosigned_at,
    }])


async def keep_conflict(session: Executor, witness: str, observed_at_us: int, request: str, status: int,
                        response: str) -> None:
    await session.execute(conflicts.insert(), [{
        "witness": witness, "observed_at_us": observed_at_us, "request": request, "status": status,
        "response": response,
    }])


async def witnessed_checkpoint(session: Executor, policy: Policy) -> StoredCheckpoint | None:
    """The newest checkpoint whose kept cosignatures meet the quorum, with them after the log's
    signature; None while none does.

    No size can meet it above the newest that the witnesses' last cosignatures meet together (a
    witness that went silent holds it back to what it last cosigned), so the search starts there
    and goes down, a page of cosigned sizes at a time, however many sizes the others cosigned since,
    to the newest size this process found before at the most (cosignatures and checkpoints are
    append-only: for one policy, the answer only grows), and from the ceiling down to nothing if
    that finds none (a snapshot older than the search that found it).
    """
    engine = engine_of(session)
    known = _witnessed_at_least.get(engine)
    floor = known[1] if known is not None and known[0] is policy else 0
    found = await _newest_witnessed(session, policy, floor)
    if found is None and floor:
        # A snapshot older than the search that found `floor` cannot see it: search it all.
        found = await _newest_witnessed(session, policy, 0)
    if found is not None and found.tree_size > floor:
        _witnessed_at_least[engine] = (policy, found.tree_size)
    return found


async def _newest_witnessed(session: Executor, policy: Policy, floor: int) -> StoredCheckpoint | None:
    """witnessed_checkpoint's search, through the sizes from the quorum's ceiling down to `floor`."""
    below = _quorum_ceiling(policy, await last_cosigned_sizes(session, policy))
    while below is not None:
        sizes = list((await session.execute(
            select(cosignatures.c.tree_size).distinct()
            .where(cosignatures.c.tree_size <= below, cosignatures.c.tree_size >= floor)
            .order_by(cosignatures.c.tree_size.desc()).limit(_SIZES_PER_PAGE))).scalars())
        if not sizes:
            return None
        rows = await session.execute(
            select(cosignatures.c.tree_size, cosignatures.c.witness, cosignatures.c.line)
            .where(cosignatures.c.tree_size.between(sizes[-1], sizes[0])))
        lines: dict[int, dict[str, str]] = defaultdict(dict)
        for row in rows:
            if row.witness in policy.witnesses:  # a witness since dropped from the policy counts no more
                lines[row.tree_size][row.witness] = row.line
        for size in sorted(lines, reverse=True):
            if policy.satisfied_by(lines[size].keys()):
                checkpoint = await tree_store.checkpoint_at(session, size)
                if checkpoint is not None:
                    return _with_lines(checkpoint, lines[size])
        below = sizes[-1] - 1
    return None


def _quorum_ceiling(policy: Policy, last_sizes: dict[str, int]) -> int | None:
    """The largest size s for which the witnesses that cosigned s or later meet the quorum."""
    for size in sorted(set(last_sizes.values()), reverse=True):
        if policy.satisfied_by([witness for witness, last in last_sizes.items() if last >= size]):
            return size
    return None


async def with_cosignatures(session: Executor, checkpoint: StoredCheckpoint,
                            policy: Policy) -> StoredCheckpoint:
    """The checkpoint with whatever cosignatures by the policy's witnesses the log kept for it."""
    rows = await session.execute(select(cosignatures.c.witness, cosignatures.c.line)
                                 .where(cosignatures.c.tree_size == checkpoint.tree_size))
    return _with_lines(checkpoint, {row.witness: row.line for row in rows if row.witness in policy.witnesses})


def _with_lines(checkpoint: StoredCheckpoint, lines: dict[str, str]) -> StoredCheckpoint:
    note = checkpoint.note + "".join(lines[name] for name in sorted(lines))
    return StoredCheckpoint(checkpoint.tree_size, checkpoint.root_hash, note)


async def last_cosigned_sizes(session: Executor, policy: Policy) -> dict[str, int]:
    """Per witness of the policy, the largest size it cosigned that the log kept (an index lookup
    each, migration 0021); a witness with none is left out."""
    if not policy.witnesses:
        return {}
    newest = union_all(*(select(literal(name).label("witness"), func.max(cosignatures.c.tree_size))
                         .where(cosignatures.c.witness == name) for name in sorted(policy.witnesses)))
    return {witness: size for witness, size in await session.execute(newest) if size is not None}
