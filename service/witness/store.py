"""What the log keeps of its witnesses: their verified cosignatures by tree size, and evidence of
conflicts. The checkpoint served is the newest whose cosignatures meet the policy's quorum."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite

from service.db import Executor, dialect_of
from service.ledger import tree_store
from service.ledger.tree_store import StoredCheckpoint
from service.witness.policy import Policy
from service.witness.tables import conflicts, cosignatures

# How many of the newest cosigned sizes are weighed for the quorum: the witnesses of a policy
# cosign the same few recent checkpoints, so the newest to meet it is among them.
_RECENT_SIZES = 64


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
    signature; None while none does."""
    recent = (select(cosignatures.c.tree_size).distinct()
              .order_by(cosignatures.c.tree_size.desc()).limit(_RECENT_SIZES).subquery())
    rows = await session.execute(
        select(cosignatures.c.tree_size, cosignatures.c.witness, cosignatures.c.line)
        .where(cosignatures.c.tree_size.in_(select(recent.c.tree_size)))
    )
    lines: dict[int, dict[str, str]] = defaultdict(dict)
    for row in rows:
        if row.witness in policy.witnesses:  # a witness since dropped from the policy counts no more
            lines[row.tree_size][row.witness] = row.line
    for size in sorted(lines, reverse=True):
        if policy.satisfied_by(lines[size].keys()):
            checkpoint = await tree_store.checkpoint_at(session, size)
            if checkpoint is not None:
                return _with_lines(checkpoint, lines[size])
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


async def last_cosigned_sizes(session: Executor) -> dict[str, int]:
    """Per witness, the largest size it cosigned that the log kept."""
    rows = await session.execute(select(cosignatures.c.witness, func.max(cosignatures.c.tree_size))
                                 .group_by(cosignatures.c.witness))
    return {witness: size for witness, size in rows}
