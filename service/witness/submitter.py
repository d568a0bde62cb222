"""The log's side of tlog-witness: the integration leader submits its newest checkpoint to every
witness of the policy, in parallel, and keeps each cosignature once it has checked it.

Pacing: one submission in flight per witness, always of the newest checkpoint, started at most
every PACE_SECONDS, so a witness sees a few requests a second however fast the log grows: the
checkpoints signed meanwhile are covered by the next one's consistency proof. A newly signed
checkpoint wakes the submitter (`wake`); without one it looks again every IDLE_SECONDS (another
leader's checkpoints, a witness that was down).
Each witness's last cosigned size is remembered; a 409 tells it, and the submission is made again
from there.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Callable

import httpx

from service import clock
from service.db import Database
from service.ledger import tree_store
from service.ledger.checkpoint import NoteError, split_note
from service.ledger.tree_store import StoredCheckpoint
from service.metrics import (
    WITNESS_CONFLICTS,
    WITNESS_COSIGNED_SIZE,
    WITNESS_FAILURES,
    WITNESS_SECONDS,
    WITNESSED_CHECKPOINT_AGE,
)
from service.tlog import service as tlog
from service.witness import store
from service.witness.cosignature import cosigned_by
from service.witness.policy import Policy, Witness

logger = logging.getLogger("seenby.witness")

PACE_SECONDS = 0.25
IDLE_SECONDS = 1.0
SIZE_MEDIA_TYPE = "text/x.tlog.size"
MAX_ANSWER_BYTES = 64 * 1024  # cosignature lines, or a size: a few hundred bytes


class _TooLarge(Exception):
    pass


class Submitter:
    def __init__(self, database: Database, policy: Policy, timeout: float,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.database = database
        self.policy = policy
        self.witnesses = [w for w in policy.witnesses.values() if w.url]
        self._sizes: dict[str, int] = {}  # per witness: the size it last cosigned, once known
        self.timeout = timeout  # for a whole exchange, however slowly a witness answers
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport, follow_redirects=False)
        self._signed = {witness.name: asyncio.Event() for witness in self.witnesses}

    def wake(self) -> None:
        """A checkpoint was signed: submit it once the pace allows."""
        for event in self._signed.values():
            event.set()

    async def close(self) -> None:
        await self._http.aclose()

    async def run(self, leading: Callable[[], bool]) -> None:
        """Submit until cancelled, while this process leads integration: each witness on its own, so
        a slow or dead one holds up no other."""
        async with self.database.read_sessions() as session:
            self._sizes.update(await store.last_cosigned_sizes(session, self.policy))
        await asyncio.gather(self._report_age(leading),
                             *(self._keep_up(witness, leading) for witness in self.witnesses))

    async def _report_age(self, leading: Callable[[], bool]) -> None:
        while True:
            try:
                if leading():
                    await self.report_age()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("reading the witnessed checkpoint's age failed")
            await asyncio.sleep(IDLE_SECONDS)

    async def _keep_up(self, witness: Witness, leading: Callable[[], bool]) -> None:
        signed = self._signed[witness.name]
        while True:
            started = time.monotonic()
            signed.clear()  # a checkpoint signed from here on gets the next round
            try:
                if leading():
                    await self.submit_newest(witness)
            except asyncio.CancelledError:
                raise
            except Exception:  # a database error: the next round starts over
                logger.exception("submitting to witness %s failed", witness.name)
            await asyncio.sleep(max(0.0, started + PACE_SECONDS - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE_SECONDS):
                    await signed.wait()

    async def submit_newest(self, witness: Witness) -> None:
        async with self.database.read_sessions() as session:
            newest = await tree_store.latest_checkpoint(session)
        if newest is None or newest.tree_size == 0 or self._sizes.get(witness.name, -1) >= newest.tree_size:
            return
        await self._submit(witness, newest)

    async def report_age(self) -> None:
        """seenby_witnessed_checkpoint_age_seconds: how much older the served checkpoint is than the
        newest signed one."""
        async with self.database.read_sessions() as session:
            newest = await tree_store.latest_checkpoint(session)
            if newest is None:
                return
            served = await store.witnessed_checkpoint(session, self.policy)
            sizes = [newest.tree_size] + ([served.tree_size] if served else [])
            signed_at = await tree_store.signed_at_us(session, sizes)
        if served is not None:
            WITNESSED_CHECKPOINT_AGE.set(
                max(0, signed_at[newest.tree_size] - signed_at[served.tree_size]) / 1e6)
        else:  # none yet: as old as the newest signed checkpoint is
            WITNESSED_CHECKPOINT_AGE.set(max(0, clock.now_us() - signed_at[newest.tree_size]) / 1e6)

    async def _submit(self, witness: Witness, checkpoint: StoredCheckpoint) -> None:
        for _ in range(2):  # once more from the size a 409 names
            old = self._sizes.get(witness.name, 0)
            if old > checkpoint.tree_size:
                return  # it has cosigned a newer checkpoint (another leader's): the next round
            body = await self._submission(old, checkpoint)
            started = time.perf_counter()
            try:
                response = await self._post(f"{(witness.url or '').rstrip('/')}/add-checkpoint", body)
            except (TimeoutError, httpx.TimeoutException):
                WITNESS_FAILURES.labels(witness.name, "timeout").inc()
                return
            except _TooLarge:
                WITNESS_FAILURES.labels(witness.name, "answer_too_large").inc()
                return
            except httpx.HTTPError:
                WITNESS_FAILURES.labels(witness.name, "unreachable").inc()
                return
            finally:
                WITNESS_SECONDS.labels(witness.name).observe(time.perf_counter() - started)
            status, media_type, text = response
            if status == 200:
                await self._keep(witness, checkpoint, text)
                return
            size = text.strip()
            if status == 409 and media_type.startswith(SIZE_MEDIA_TYPE) and size.isascii() and size.isdigit():
                self._sizes[witness.name] = int(size)
                continue
            if status == 422:
                await self._conflict(witness, body, status, text)
                return
            WITNESS_FAILURES.labels(witness.name, f"http_{status}").inc()
            return

    async def _post(self, url: str, body: bytes) -> tuple[int, str, str]:
        """The witness's status, media type and answer, read whole within the timeout and no
        further than MAX_ANSWER_BYTES: its answer is untrusted input."""
        async with asyncio.timeout(self.timeout), self._http.stream("POST", url, content=body) as response:
            answer = bytearray()
            async for chunk in response.aiter_bytes():
                answer += chunk
                if len(answer) > MAX_ANSWER_BYTES:
                    raise _TooLarge
            return (response.status_code, response.headers.get("content-type", ""),
                    answer.decode("utf-8", errors="replace"))

    async def _submission(self, old: int, checkpoint: StoredCheckpoint) -> bytes:
        proof: list[str] = []
        if 0 < old < checkpoint.tree_size:
            async with self.database.read_sessions() as session:
                hexes = (await tlog.consistency(session, old, checkpoint.tree_size))["hashes"]
            proof = [base64.b64encode(bytes.fromhex(h)).decode() for h in hexes]
        return ("\n".join([f"old {old}", *proof]) + "\n\n" + checkpoint.note).encode()

    async def _keep(self, witness: Witness, checkpoint: StoredCheckpoint, answer: str) -> None:
        """Keep the witness's cosignature once it verifies over this checkpoint; lines by other keys
        are ignored, as the protocol says."""
        body = checkpoint.note[:checkpoint.note.index("\n\n") + 1]
        try:
            _, lines = split_note(body + "\n" + answer)
            timestamp = cosigned_by(body, lines, witness.verifier)
        except NoteError:
            timestamp = None
        if timestamp is None:
            WITNESS_FAILURES.labels(witness.name, "bad_cosignature").inc()
            return
        line = next(s.line() for s in lines
                    if s.name == witness.verifier.name and s.key_id == witness.verifier.key_id)
        async with self.database.sessions() as session, session.begin():
            await store.keep(session, store.Cosignature(checkpoint.tree_size, witness.name, line, timestamp))
        self._sizes[witness.name] = checkpoint.tree_size
        WITNESS_COSIGNED_SIZE.labels(witness.name).set(checkpoint.tree_size)

    async def _conflict(self, witness: Witness, body: bytes, status: int, answer: str) -> None:
        logger.error("witness %s refused checkpoint as inconsistent with its view (422): %s; "
                     "evidence kept in witness_conflicts", witness.name, answer.strip()[:500])
        async with self.database.sessions() as session, session.begin():
            await store.keep_conflict(session, witness.name, clock.now_us(), body.decode(), status, answer)
        WITNESS_CONFLICTS.labels(witness.name).inc()  # once the evidence is kept
