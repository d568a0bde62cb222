"""`seenby witness serve`: a C2SP tlog-witness. It cosigns a log's checkpoint only if it is
consistent with the last one it cosigned for that log, and remembers it before answering."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from service.errors import TooManyRequests
from service.ledger import merkle
from service.ledger.checkpoint import (
    HASH_SIZE,
    MAX_TREE_SIZE,
    CheckpointError,
    NoteError,
    NoteSignature,
    Verifier,
    open_note,
    parse_checkpoint,
    split_note,
)
from service.ratelimit import RateLimiter
from service.slow_clients import with_header_deadline
from service.witness.cosignature import cosign
from service.witness.state import Witnessed, WitnessState

logger = logging.getLogger("seenby.witness")

# signed-note: verifiers "MUST accept at least up to 16 signatures", and a post-quantum one is nearly
# 5 kB (ML-DSA-87: 4,627 bytes). A signature line is "\u2014 " (4 bytes), a key name (255 allowed for),
# " ", the base64 of the 4-byte key ID and the signature (6,176) and "\n": 6,437 bytes; 17 of them
# (16 others' and the log's own) 109,429. Before them: "old ", 20 digits and "\n" (25), 63 proof lines
# of 45 (2,835), the empty line, and a checkpoint text of up to 8 KiB (8,192): 120,482 in all,
# rounded up.
MAX_BODY_BYTES = 128 * 1024
MAX_PROOF_LINES = 63
# tlog-witness: ASCII decimal without leading zeroes; bounded before int(), which refuses 4,301 digits.
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
SIZE_MEDIA_TYPE = "text/x.tlog.size"
EMPTY_TREE_ROOT = hashlib.sha256(b"").digest()


@dataclass(frozen=True)
class WitnessConfig:
    name: str  # the cosigner's name, as its verifier key has it
    key: Ed25519PrivateKey
    logs: dict[str, tuple[Verifier, ...]]  # origin -> the keys trusted for its checkpoints (see by_origin)
    state: WitnessState
    submissions_per_second: float = 20.0  # per client address, bursts of twice that; 0: no limit
    read_timeout_seconds: float = 10.0  # for a submission's body to arrive whole
    header_timeout_seconds: float = 10.0  # for a request's line and headers to arrive whole


def by_origin(keys: Iterable[Verifier]) -> dict[str, tuple[Verifier, ...]]:
    """Every key trusted for each origin: a log rotating its key is listed once per key."""
    logs: dict[str, tuple[Verifier, ...]] = {}
    for key in keys:
        logs[key.name] = (*logs.get(key.name, ()), key)
    return logs


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


def serve(config: WitnessConfig, host: str, port: int) -> None:
    uvicorn.run(create_witness_app(config), host=host, port=port, **_server_options(config))


def server_config(config: WitnessConfig, host: str, port: int) -> uvicorn.Config:
    """What `serve` runs, for a test to run in its own event loop."""
    return uvicorn.Config(create_witness_app(config), host=host, port=port, **_server_options(config))


def _server_options(config: WitnessConfig) -> dict[str, Any]:
    return {"server_header": False, "log_level": "info", "ws": "none",
            "http": with_header_deadline(config.header_timeout_seconds)}


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
    if len(proof_lines) > MAX_PROOF_LINES:
        raise _Refusal(400, f"more than {MAX_PROOF_LINES} consistency proof lines")
    return _Submission(_old_size(old_line), [_proof_hash(line) for line in proof_lines], note)


def _old_size(line: str) -> int:
    number = line.removeprefix("old ")
    if number == line or not _SIZE.fullmatch(number) or int(number) > MAX_TREE_SIZE:
        raise _Refusal(400, "the first line must be `old <size>`, a tree size in decimal without leading "
                            "zeroes")
    return int(number)


def _proof_hash(line: str) -> bytes:
    try:
        digest = base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError):  # ValueError: a non-ASCII character
        digest = b""
    if len(digest) != HASH_SIZE or base64.b64encode(digest).decode("ascii") != line:
        raise _Refusal(400, f"a consistency proof line is not the base64 of a {HASH_SIZE}-byte hash")
    return digest


def _cosigned(config: WitnessConfig, submission: _Submission) -> Response:
    try:
        text, signatures = split_note(submission.note)
    except NoteError as exc:
        raise _Refusal(400, f"not a signed note: {exc}") from exc
    origin = text.split("\n", 1)[0]
    keys = config.logs.get(origin)
    if not keys:
        raise _Refusal(404, f"this witness does not witness {origin!r}")
    _check_log_signatures(submission.note, signatures, origin, keys)
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


def _check_log_signatures(note: str, signatures: list[NoteSignature], origin: str,
                          keys: tuple[Verifier, ...]) -> None:
    """tlog-witness: 403 unless a key trusted for the origin signed the checkpoint, or if a line that
    names one of them (key name and ID) does not verify; lines by other keys are ignored."""
    present = [key for key in keys if any((line.name, line.key_id) == (key.name, key.key_id)
                                          for line in signatures)]
    if not present:
        raise _Refusal(403, f"the checkpoint has no signature by a key this witness trusts for {origin}")
    for key in present:
        try:
            open_note(note, key)
        except NoteError as exc:
            raise _Refusal(403, f"a signature by a key trusted for {origin} does not verify: {exc}") from exc


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
