"""seenby's tlog-witness over HTTP: every answer C2SP tlog-witness v1 prescribes, the cosignature it
returns, and the state it keeps (atomic, durable)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.ledger.checkpoint import (
    COSIGNATURE_TYPE,
    NoteError,
    Verifier,
    raw_public_key,
    sign_note,
    split_note,
)
from service.witness.cosignature import cosignatures
from service.witness.server import MAX_BODY_BYTES, WitnessConfig, create_witness_app, server_config
from service.witness.state import WitnessState
from tests.witness.logs import TestLog, submission

NAME = "witness.example/w1"


class Witness:
    def __init__(self, state: Path, log: TestLog) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.verifier = Verifier.for_public_key(NAME, raw_public_key(self.key), COSIGNATURE_TYPE)
        self.state, self.log = state, log

    def app(self, rate: float = 0) -> httpx.AsyncClient:
        config = WitnessConfig(NAME, self.key, {self.log.origin: (self.log.verifier,)},
                               WitnessState(self.state), rate)
        return httpx.AsyncClient(transport=httpx.ASGITransport(create_witness_app(config)),
                                 base_url="http://witness")


@pytest.fixture
def log() -> TestLog:
    return TestLog()


@pytest.fixture
def witness(tmp_path: Path, log: TestLog) -> Witness:
    return Witness(tmp_path / "witness.db", log)


@pytest.fixture
async def client(witness: Witness) -> AsyncIterator[httpx.AsyncClient]:
    async with witness.app() as http:
        yield http


async def _submit(client: httpx.AsyncClient, body: bytes) -> httpx.Response:
    return await client.post("/add-checkpoint", content=body)


async def test_cosigns_a_consistent_checkpoint_with_a_timestamped_ed25519_cosignature(
    client: httpx.AsyncClient, witness: Witness, log: TestLog
) -> None:
    first = log.grow(5)
    response = await _submit(client, submission(0, [], first))
    assert response.status_code == 200, response.text
    line = response.text
    assert line.startswith(f"\u2014 {NAME} ") and line.endswith("\n") and line.count("\n") == 1
    # tlog-cosignature v1 read from its text alone: key id, u64 timestamp, Ed25519 signature over
    # "cosignature/v1\ntime <t>\n" and the checkpoint's body.
    blob = base64.b64decode(line.split(" ")[-1])
    assert len(blob) == 4 + 8 + 64
    expected_id = hashlib.sha256(NAME.encode() + b"\n\x04" + raw_public_key(witness.key)).digest()[:4]
    assert blob[:4] == expected_id
    (timestamp,) = struct.unpack(">Q", blob[4:12])
    body, _ = split_note(first)
    witness.key.public_key().verify(blob[12:], f"cosignature/v1\ntime {timestamp}\n{body}".encode())
    assert cosignatures(first + line, [witness.verifier]) == {NAME: timestamp}

    second = log.grow(6)
    response = await _submit(client, submission(5, log.proof(5), second))
    assert response.status_code == 200, response.text
    assert NAME in cosignatures(second + response.text, [witness.verifier])
    # The same checkpoint again (old size = its size, no proof) is cosigned again.
    assert (await _submit(client, submission(11, [], second))).status_code == 200


async def test_an_old_size_other_than_the_last_cosigned_gets_409_with_that_size(
    client: httpx.AsyncClient, log: TestLog
) -> None:
    assert (await _submit(client, submission(0, [], log.grow(4)))).status_code == 200
    later = log.grow(3)
    for stale in (0, 2):
        response = await _submit(client, submission(stale, log.proof(stale), later))
        assert response.status_code == 409
        assert response.headers["content-type"] == "text/x.tlog.size"
        assert response.text == "4\n"


async def test_inconsistent_checkpoints_get_422_and_are_not_cosigned(
    client: httpx.AsyncClient, log: TestLog
) -> None:
    assert (await _submit(client, submission(0, [], log.grow(4)))).status_code == 200
    honest = log.grow(4)
    forked = log.checkpoint(root=hashlib.sha256(b"another history").digest())
    wrong_proof = [hashlib.sha256(b"x").digest()] * len(log.proof(4))
    for body in (
        submission(4, log.proof(4), forked),  # a root the proof does not lead to
        submission(4, wrong_proof, honest),
        submission(4, [], honest),  # no proof at all
    ):
        assert (await _submit(client, body)).status_code == 422
    # A different root at the size it cosigned is a fork too.
    fork = TestLog(log.origin, key=log.key, salt=b"fork")
    assert (await _submit(client, submission(4, [], fork.grow(4)))).status_code == 422
    # None of that moved the witness on: the honest checkpoint is still the next one it takes.
    assert (await _submit(client, submission(4, log.proof(4), honest))).status_code == 200


async def test_a_first_checkpoint_must_start_from_zero_without_a_proof(
    client: httpx.AsyncClient, log: TestLog
) -> None:
    checkpoint = log.grow(3)
    assert (await _submit(client, submission(0, [bytes(32)], checkpoint))).status_code == 422
    empty = TestLog(log.origin, key=log.key)
    not_empty_root = empty.checkpoint(root=bytes(32))  # size 0 must have SHA-256("") as its root
    assert (await _submit(client, submission(0, [], not_empty_root))).status_code == 422
    assert (await _submit(client, submission(0, [], empty.checkpoint()))).status_code == 200


@pytest.mark.parametrize("body, status", [
    pytest.param(b"old 01\n\nx", 400, id="a leading zero"),
    pytest.param(b"old -1\n\nx", 400, id="negative"),
    pytest.param("old \u00b2\n\nx".encode(), 400, id="a superscript digit"),
    pytest.param("old \u0663\n\nx".encode(), 400, id="an Arabic-Indic digit"),
    pytest.param(b"new 0\n\nx", 400, id="not old"),
    pytest.param(b"old 0\n", 400, id="no blank line"),
    pytest.param(b"old 0\nnot*base64\n\nx", 400, id="proof not base64"),
    pytest.param(b"old 0\n" + b"AAAA\n" * 64 + b"\nx", 400, id="64 proof lines"),
    pytest.param(b"\xff\xfe", 400, id="not UTF-8"),
    pytest.param(b"old " + b"9" * 4301 + b"\n\nx", 400, id="4,301 digits, past int()'s limit"),
    pytest.param(b"old 18446744073709551616\n\nx", 400, id="2**64, past any tree size"),
    pytest.param("old \uff11\n\nx".encode(), 400, id="a fullwidth digit"),
    pytest.param(b"old 1_000\n\nx", 400, id="an underscore, as int() takes"),
    pytest.param(b"old +1\n\nx", 400, id="a sign"),
    pytest.param(b"old  1\n\nx", 400, id="two spaces"),
    pytest.param(b"old 1 \n\nx", 400, id="a trailing space"),
    pytest.param(b"old 0\n\n" + b"x" * MAX_BODY_BYTES, 413, id="oversized"),
])
async def test_malformed_submissions_get_a_4xx(client: httpx.AsyncClient, body: bytes, status: int) -> None:
    assert (await _submit(client, body)).status_code == status


async def test_unknown_logs_404_and_checkpoints_not_signed_by_the_log_403(
    client: httpx.AsyncClient, log: TestLog
) -> None:
    log.grow(2)
    other = TestLog("log.example/unknown")
    assert (await _submit(client, submission(0, [], other.grow(2)))).status_code == 404
    impostor = log.checkpoint(key=Ed25519PrivateKey.generate())  # the log's name, another key
    assert (await _submit(client, submission(0, [], impostor))).status_code == 403
    genuine = log.checkpoint()
    forged = genuine[:-10] + ("A" if genuine[-10] != "A" else "B") + genuine[-9:]  # signature altered
    assert (await _submit(client, submission(0, [], forged))).status_code in (400, 403)
    too_far = submission(3, [], genuine)  # old size past the checkpoint's
    assert (await _submit(client, too_far)).status_code == 400


async def test_concurrent_submissions_from_one_state_are_cosigned_once(
    client: httpx.AsyncClient, log: TestLog
) -> None:
    assert (await _submit(client, submission(0, [], log.grow(2)))).status_code == 200
    bodies = []
    for _ in range(6):
        checkpoint = log.grow(1)
        bodies.append(submission(2, log.proof(2), checkpoint))
    answers = await asyncio.gather(*(_submit(client, body) for body in bodies))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses.count(200) == 1 and statuses.count(409) == 5, statuses


async def test_what_it_cosigned_survives_a_restart(witness: Witness, log: TestLog) -> None:
    async with witness.app() as first:
        assert (await _submit(first, submission(0, [], log.grow(7)))).status_code == 200
    async with witness.app() as restarted:
        response = await _submit(restarted, submission(0, [], log.grow(1)))
        assert (response.status_code, response.text) == (409, "7\n")
        assert (await _submit(restarted, submission(7, log.proof(7), log.checkpoint()))).status_code == 200


async def test_monitors_get_the_last_cosigned_checkpoint_with_its_signatures(
    client: httpx.AsyncClient, witness: Witness, log: TestLog
) -> None:
    path = f"/{hashlib.sha256(log.origin.encode()).hexdigest()}/checkpoint"
    assert (await client.get(path)).status_code == 404  # nothing cosigned yet
    checkpoint = log.grow(3)
    cosignature = (await _submit(client, submission(0, [], checkpoint))).text
    served = await client.get(path)
    assert served.status_code == 200
    assert served.text == checkpoint + cosignature  # the log's signature, then the witness's
    assert cosignatures(served.text, [witness.verifier]) == cosignatures(checkpoint + cosignature,
                                                                          [witness.verifier])
    assert (await client.get(f"/{hashlib.sha256(b'other').hexdigest()}/checkpoint")).status_code == 404


async def test_submissions_are_rate_limited_per_address(witness: Witness, log: TestLog) -> None:
    async with witness.app(rate=1) as limited:
        statuses = [(await _submit(limited, submission(0, [], log.grow(1)))).status_code for _ in range(4)]
    assert statuses[:2] == [200, 409] and 429 in statuses[2:]


def test_a_cosignature_laid_out_from_the_spec_by_hand_verifies() -> None:
    """tlog-cosignature v1 built here from its byte layout alone, checked by the project's code."""
    log = TestLog()
    checkpoint = log.grow(4)
    body, _ = split_note(checkpoint)
    key = Ed25519PrivateKey.generate()
    public = raw_public_key(key)
    key_id = hashlib.sha256(NAME.encode() + b"\n\x04" + public).digest()[:4]
    timestamp = 1_700_000_123
    signature = key.sign(b"cosignature/v1\ntime 1700000123\n" + body.encode())
    line = f"\u2014 {NAME} " + base64.b64encode(key_id + struct.pack(">Q", timestamp) + signature).decode()
    verifier = Verifier.for_public_key(NAME, public, COSIGNATURE_TYPE)
    assert cosignatures(checkpoint + line + "\n", [verifier]) == {NAME: timestamp}
    tampered = checkpoint + line[:-6] + ("AAAA" if line[-6:-2] != "AAAA" else "BBBB") + line[-2:] + "\n"
    with pytest.raises(NoteError):
        cosignatures(tampered, [verifier])


async def test_a_client_that_sends_its_submission_too_slowly_gets_408(witness: Witness, log: TestLog) -> None:
    config = WitnessConfig(NAME, witness.key, {log.origin: (log.verifier,)}, WitnessState(witness.state),
                           read_timeout_seconds=0.2)
    checkpoint = log.grow(2)

    async def trickle() -> AsyncIterator[bytes]:
        yield b"old 0\n"
        await asyncio.sleep(1.0)
        yield b"\n" + checkpoint.encode()

    async with httpx.AsyncClient(transport=httpx.ASGITransport(create_witness_app(config)),
                                 base_url="http://witness") as slow:
        response = await slow.post("/add-checkpoint", content=trickle())
    assert response.status_code == 408
    assert WitnessState(witness.state).latest(log.origin) is None  # nothing recorded


async def test_a_clock_that_goes_backwards_cosigns_no_older_time_and_no_smaller_tree(
    client: httpx.AsyncClient, witness: Witness, log: TestLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("service.witness.server.time.time", lambda: 1_800_000_000.0)
    first = log.grow(3)
    answer = await _submit(client, submission(0, [], first))
    monkeypatch.setattr("service.witness.server.time.time", lambda: 1_700_000_000.0)  # years back
    second = log.grow(2)
    later = await _submit(client, submission(3, log.proof(3), second))
    assert cosignatures(second + later.text, [witness.verifier])[NAME] >= \
        cosignatures(first + answer.text, [witness.verifier])[NAME] == 1_800_000_000
    # Nor does the earlier clock make it take the smaller tree again.
    assert (await _submit(client, submission(3, log.proof(3), first))).status_code == 409


async def test_an_old_size_past_the_checkpoints_gets_400_however_large(client: httpx.AsyncClient, log: TestLog
                                                                     ) -> None:
    checkpoint = log.grow(3)
    for old in (4, 2**63, 2**64 - 1):
        assert (await _submit(client, submission(old, [], checkpoint))).status_code == 400
    assert (await _submit(client, submission(0, [], checkpoint))).status_code == 200


async def test_a_proof_line_that_is_not_one_base64_hash_gets_400_not_a_verdict_on_the_proof(
    client: httpx.AsyncClient, log: TestLog
) -> None:
    assert (await _submit(client, submission(0, [], log.grow(4)))).status_code == 200
    checkpoint = log.grow(4)
    proof = [base64.b64encode(h).decode() for h in log.proof(4)]
    for bad in (base64.b64encode(bytes(31)).decode(),  # a hash too short
                base64.b64encode(bytes(33)).decode(),  # too long
                proof[0][:-2] + "B=",  # pad bits set: not the canonical encoding
                "\u00e9" * 44,  # not ASCII
                " " + proof[0]):
        body = "\n".join(["old 4", bad, *proof[1:]]) + "\n\n" + checkpoint
        response = await _submit(client, body.encode())
        assert response.status_code == 400, (bad, response.text)
    assert (await _submit(client, submission(4, log.proof(4), checkpoint))).status_code == 200


async def test_a_log_rotating_its_key_is_trusted_under_each_of_its_keys(witness: Witness, log: TestLog
                                                                       ) -> None:
    """tlog-witness: the checkpoint signature is verified "against the public key(s) it trusts for the
    checkpoint origin"; a line by a trusted key that does not verify is refused, whatever else signed."""
    new_key = Ed25519PrivateKey.generate()
    new = Verifier.for_public_key(log.origin, raw_public_key(new_key))
    config = WitnessConfig(NAME, witness.key, {log.origin: (log.verifier, new)}, WitnessState(witness.state))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(create_witness_app(config)),
                                 base_url="http://witness") as rotating:
        assert (await _submit(rotating, submission(0, [], log.grow(2)))).status_code == 200
        by_new = log.checkpoint(key=new_key)
        assert (await _submit(rotating, submission(2, [], by_new))).status_code == 200
        log.grow(3)
        by_both = log.checkpoint() + log.checkpoint(key=new_key).split("\n\n")[1]
        forged = by_both[:-10] + ("A" if by_both[-10] != "A" else "B") + by_both[-9:]  # the new key's line
        assert (await _submit(rotating, submission(2, log.proof(2), forged))).status_code in (400, 403)
        assert (await _submit(rotating, submission(2, log.proof(2), by_both))).status_code == 200
        impostor = log.checkpoint(key=Ed25519PrivateKey.generate())
        assert (await _submit(rotating, submission(5, [], impostor))).status_code == 403


def _post_quantum_lines(count: int, name_length: int = 20) -> str:
    """Signature lines of unknown keys as large as ML-DSA-87's (a 4-byte key ID and 4,627 bytes)."""
    names = (f"pq{i:02d}.example/".ljust(name_length, "w") for i in range(count))
    return "".join(f"\u2014 {name} {base64.b64encode(os.urandom(4 + 4627)).decode()}\n" for name in names)


async def test_sixteen_post_quantum_signatures_are_accepted_ignored_and_kept_for_monitors(
    client: httpx.AsyncClient, witness: Witness, log: TestLog
) -> None:
    """signed-note: verifiers "MUST accept at least up to 16 signatures", which may be post-quantum."""
    checkpoint = log.grow(3) + _post_quantum_lines(16)
    response = await _submit(client, submission(0, [], checkpoint))
    assert response.status_code == 200, response.text
    served = await client.get(f"/{hashlib.sha256(log.origin.encode()).hexdigest()}/checkpoint")
    assert served.text == checkpoint + response.text


async def test_the_largest_submission_sized_for_fits_under_the_limit(client: httpx.AsyncClient, log: TestLog
                                                                    ) -> None:
    """MAX_BODY_BYTES's arithmetic: 63 proof lines, a checkpoint text of 8 KiB, and 17 signature lines
    of 255-byte names and 4+4,627 bytes (16 unknown, and one more as large as the log's own may be)."""
    assert (await _submit(client, submission(0, [], log.grow(4)))).status_code == 200
    text, _ = split_note(log.grow(1))
    extension = "e" * (8192 - len(text) - 1) + "\n"
    checkpoint = sign_note(text + extension, log.origin, log.key) + _post_quantum_lines(17, name_length=255)
    body = submission(4, [bytes(32)] * 63, checkpoint)
    assert len(body) > 120_000
    response = await _submit(client, body)
    assert response.status_code == 422, response.text  # read whole and judged: the proof is wrong


@contextlib.asynccontextmanager
async def _listening(config: WitnessConfig) -> AsyncIterator[int]:
    """The witness as `seenby witness serve` runs it (uvicorn, its HTTP protocol), on a free port."""
    server = uvicorn.Server(server_config(config, "127.0.0.1", 0))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), task
            await asyncio.sleep(0.01)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await task


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> float:
    """How long until the server closed the connection, reading whatever it answered first."""
    started = time.monotonic()
    while await asyncio.wait_for(reader.read(65536), timeout=seconds):
        pass
    return time.monotonic() - started


async def test_a_client_that_never_finishes_its_headers_is_disconnected(witness: Witness, log: TestLog
                                                                       ) -> None:
    """uvicorn has no timeout for a request's head: the witness's protocol closes a connection whose
    line and headers are not whole in time, whether new or kept alive after a response."""
    config = WitnessConfig(NAME, witness.key, {log.origin: (log.verifier,)}, WitnessState(witness.state),
                           header_timeout_seconds=0.5, read_timeout_seconds=5)
    async with _listening(config) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /add-checkpoint HTTP/1.1\r\nHost: x\r\n")
        assert 0.4 < await _closed_within(reader, 5) < 2
        writer.close()

        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /unknown/checkpoint HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b" 404 " in await reader.readuntil(b"\r\n")
        await asyncio.sleep(0.3)
        writer.write(b"GET /unknown/checkpoint HTTP/1.1\r\nHost: x\r\n")  # and no more
        assert await _closed_within(reader, 5) < 2  # not the 5 s keep-alive timeout: the head's
        writer.close()

        # A head in time, then a body slower than the head's limit but within the body's: cosigned.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = submission(0, [], log.grow(2))
        writer.write(b"POST /add-checkpoint HTTP/1.1\r\nHost: x\r\n")
        await asyncio.sleep(0.2)
        writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body[:5])
        await asyncio.sleep(0.8)
        writer.write(body[5:])
        assert b" 200 " in await asyncio.wait_for(reader.readuntil(b"\r\n"), timeout=5)
        writer.close()
