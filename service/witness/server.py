"""`seenby witness serve`: a C2SP tlog-witness. It cosigns a log's checkpoint only if it is
consistent with the last one it cosigned for that log, and remembers it before answering."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from service.errors import TooManyRequests
from service.ledger import merkle
from service.ledger.checkpoint import (
    CheckpointError,
    NoteError,
    Verifier,
    open_note,
    parse_checkpoint,
    split_note,
)
from service.ratelimit import RateLimiter
from service.witness.cosignature import cosign
from service.witness.state import Witnessed, WitnessState

logger = logging.getLogger("seenby.witness")

MAX_BODY_BYTES = 64 * 1024
MAX_PROOF_LINES = 63
SIZE_MEDIA_TYPE = "text/x.tlog.size"
EMPTY_TREE_ROOT = hashlib.sha256(b"").digest()


@dataclass(frozen=True)
class WitnessConfig:
    name: str  # the cosigner's name, as its verifier key has it
    key: Ed25519PrivateKey
    logs: dict[str, Verifier]  # origin -> the log's checkpoint key
    state: WitnessState
    submissions_per_second: float = 20.0  # per client address, bursts of twice that; 0: no limit
    read_timeout_seconds: float = 10.0  # for a submission's body to arrive whole


class _Refusal(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class _Submission:
    old_size: int
    proof: list[bytes]
    note: str


def create_witness_app(config: WitnessConfig) -> FastAPI:
    app = FastAPI(title="seenby witness", docs_url=None, redoc_url=None, openapi_url=None)
    limiter = RateLimiter(config.submissions_per_second, config.submissions_per_second * 2)
    by_origin_hash = {hashlib.sha256(origin.encode()).hexdigest(): origin for origin in config.logs}

    @app.post("/add-checkpoint")
    async def add_checkpoint(request: Request) -> Response:
        try:
            limiter.check(request.client.host if request.client else "unknown")
        except TooManyRequests as exc:
            return PlainTextResponse(f"{exc}\n", status_code=429, headers=exc.headers)
        try:
            submission = _parse(await _body(request, within=config.read_timeout_seconds))
            # SQLite and its fsync off the event loop; its write lock keeps submissions atomic.
            return await asyncio.to_thread(_cosigned, config, submission)
        except _Refusal as refusal:
            return PlainTextResponse(refusal.reason + "\n", status_code=refusal.status)

    @app.get("/{origin_hash}/checkpoint")
    async def monitored(origin_hash: str) -> Response:
        """tlog-witness "Monitor Retrieval": the latest checkpoint cosigned for the log whose origin
        hashes (SHA-256, lowercase hex) to this."""
        origin = by_origin_hash.get(origin_hash)
        note = config.state.cosigned_note(origin) if origin else None
        if note is None:
            return PlainTextResponse("this witness has cosigned no checkpoint of that log\n", status_code=404)
        return PlainTextResponse(note, media_type="text/plain; charset=utf-8")

    return app


async def _body(request: Request, *, within: float) -> bytes:
    """The submission, read no further than MAX_BODY_BYTES and for no longer than `within` seconds: the
    protocol has no authentication, so a client may be hostile or merely slow."""
    chunks, size = [], 0
    try:
        async with asyncio.timeout(within):
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise _Refusal(413, f"a submission is at most {MAX_BODY_BYTES} bytes")
                chunks.append(chunk)
    except TimeoutError as exc:
        raise _Refusal(408, f"the submission took over {within:g} s to arrive") from exc
    return b"".join(chunks)


def _parse(body: bytes) -> _Submission:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Refusal(400, "the body is not UTF-8") from exc
    head, separator, note = text.partition("\n\n")
    if not separator:
        raise _Refusal(400, "no empty line between the old size and proof, and the checkpoint")
    lines = head.split("\n")
    old_line, proof_lines = lines[0], lines[1:]
    number = old_line.removeprefix("old ")
    # isdigit() alone takes any Unicode digit (int() refuses "²"): ASCII decimal only.
    if number == old_line or not (number.isascii() and number.isdigit()) or number != str(int(number)):
        raise _Refusal(400, "the first line must be `old <size>` in decimal without leading zeroes")
    if len(proof_lines) > MAX_PROOF_LINES:
        raise _Refusal(400, f"more than {MAX_PROOF_LINES} consistency proof lines")
    try:
        proof = [base64.b64decode(line, validate=True) for line in proof_lines]
    except (binascii.Error, ValueError) as exc:
        raise _Refusal(400, "a consistency proof line is not base64") from exc
    return _Submission(int(number), proof, note)


def _cosigned(config: WitnessConfig, submission: _Submission) -> Response:
    try:
        text, _ = split_note(submission.note)
    except NoteError as exc:
        raise _Refusal(400, f"not a signed note: {exc}") from exc
    origin = text.split("\n", 1)[0]
    log = config.logs.get(origin)
    if log is None:
        raise _Refusal(404, f"this witness does not witness {origin!r}")
    try:
        open_note(submission.note, log)
    except NoteError as exc:
        raise _Refusal(403, f"the checkpoint is not signed by {origin}'s key: {exc}") from exc
    try:
        checkpoint = parse_checkpoint(text)
    except CheckpointError as exc:
        raise _Refusal(400, f"not a checkpoint: {exc}") from exc
    if submission.old_size > checkpoint.size:
        raise _Refusal(400, f"old size {submission.old_size} is past the checkpoint's {checkpoint.size}")
    with config.state.advancing(origin) as (latest, advance):
        current = latest.size if latest else 0
        if submission.old_size != current:
            # Exactly this media type, without the charset Starlette would add to a text/* one.
            return Response(f"{current}\n", status_code=409, headers={"content-type": SIZE_MEDIA_TYPE})
        _check_consistent(submission, checkpoint.size, checkpoint.root_hash, latest)
        # Never older than the last cosignature for the log, should the clock go backwards.
        now = max(int(time.time()), latest.cosigned_at if latest else 0)
        line = cosign(text, config.name, config.key, now).line()
        advance(checkpoint.size, checkpoint.root_hash, submission.note, line, now)
    logger.info("cosigned %s at size %d", origin, checkpoint.size)
    return PlainTextResponse(line, media_type="text/plain; charset=utf-8")


def _check_consistent(submission: _Submission, size: int, root: bytes, latest: Witnessed | None) -> None:
    """422 for a checkpoint that contradicts what this witness cosigned: evidence, kept in its log."""
    try:
        if size == 0 and root != EMPTY_TREE_ROOT:
            raise merkle.ProofError("a checkpoint of size 0 must have the empty tree's root")
        if latest is None or submission.old_size == 0:
            if submission.proof:
                raise merkle.ProofError("a proof from size 0 must be empty")
            return
        merkle.verify_consistency(submission.old_size, size, submission.proof, latest.root_hash, root)
    except merkle.ProofError as exc:
        logger.warning("refused an inconsistent checkpoint (%s): %r", exc, submission.note)
        raise _Refusal(422, f"inconsistent with the checkpoint this witness cosigned: {exc}") from exc
