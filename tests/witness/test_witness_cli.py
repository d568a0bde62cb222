"""`seenby witness key` and `seenby witness serve` as an operator runs them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.ledger.checkpoint import COSIGNATURE_TYPE, Verifier, parse_verifier_key, raw_public_key
from service.witness.cosignature import cosignatures
from tests.pg import free_port
from tests.servers import seenby_command, serving
from tests.witness.logs import TestLog, submission

NAME = "witness.regulator.example/w1"


def _seenby(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*seenby_command(), *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_witness_key_prints_one_stable_cosignature_vkey(tmp_path: Path) -> None:
    first = _seenby("witness", "key", "--name", NAME, "--key-file", "w.pem", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    verifier = parse_verifier_key(first.stdout.strip(), COSIGNATURE_TYPE)
    assert verifier.name == NAME
    assert (tmp_path / "w.pem").stat().st_mode & 0o077 == 0, "the private key is the owner's alone"
    again = _seenby("witness", "key", "--name", NAME, "--key-file", "w.pem", cwd=tmp_path)
    assert again.stdout == first.stdout
    bad = _seenby("witness", "key", "--name", "has space", "--key-file", "w.pem", cwd=tmp_path)
    assert bad.returncode == 2 and "name" in bad.stderr


def test_witness_serve_cosigns_a_logs_checkpoints_and_remembers_them(tmp_path: Path) -> None:
    log = TestLog()
    (tmp_path / "logs.txt").write_text(f"# the logs this witness watches\nlog {log.verifier.text()}\n")
    vkey = _seenby("witness", "key", "--name", NAME, "--key-file", "w.pem", cwd=tmp_path).stdout.strip()
    witness = parse_verifier_key(vkey, COSIGNATURE_TYPE)
    port = free_port()
    command = [*seenby_command(), "witness", "serve", "--name", NAME, "--logs", "logs.txt",
               "--key-file", "w.pem", "--state", "state/witness.db", "--port", str(port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEENBY_")}
    with serving(command, env, tmp_path, port, ready_path="/add-checkpoint", ready_status=405) as url:
        checkpoint = log.grow(9)
        answer = httpx.post(f"{url}/add-checkpoint", content=submission(0, [], checkpoint))
        assert answer.status_code == 200, answer.text
        assert NAME in cosignatures(checkpoint + answer.text, [witness])
    with serving(command, env, tmp_path, port, ready_path="/add-checkpoint", ready_status=405) as url:
        stale = httpx.post(f"{url}/add-checkpoint", content=submission(0, [], log.grow(1)))
        assert (stale.status_code, stale.text) == (409, "9\n")


def test_witness_serve_trusts_every_key_a_logs_file_lists_for_an_origin(tmp_path: Path) -> None:
    """A log rotating its key is listed twice, once per key: checkpoints signed by either are cosigned
    (tlog-witness: "the public key(s) it trusts for the checkpoint origin"). The file is octets: a
    comment that is not UTF-8 is a comment still."""
    log, new_key = TestLog(), Ed25519PrivateKey.generate()
    rotated = Verifier.for_public_key(log.origin, raw_public_key(new_key))
    (tmp_path / "logs.txt").write_bytes(b"# cl\xe9 retir\xe9e bient\xf4t\n" + f"log {log.verifier.text()}\n"
                                        f"log {rotated.text()}\n".encode())
    _seenby("witness", "key", "--name", NAME, "--key-file", "w.pem", cwd=tmp_path)
    port = free_port()
    command = [*seenby_command(), "witness", "serve", "--name", NAME, "--logs", "logs.txt",
               "--key-file", "w.pem", "--state", "witness.db", "--port", str(port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEENBY_")}
    with serving(command, env, tmp_path, port, ready_path="/add-checkpoint", ready_status=405) as url:
        by_old = httpx.post(f"{url}/add-checkpoint", content=submission(0, [], log.grow(3)))
        assert by_old.status_code == 200, by_old.text
        log.grow(2)
        rotated_checkpoint = log.checkpoint(key=new_key)
        by_new = httpx.post(f"{url}/add-checkpoint", content=submission(3, log.proof(3), rotated_checkpoint))
        assert by_new.status_code == 200, by_new.text


def test_witness_serve_refuses_a_logs_file_without_logs(tmp_path: Path) -> None:
    (tmp_path / "logs.txt").write_text("quorum none\n")
    result = _seenby("witness", "serve", "--name", NAME, "--logs", "logs.txt", cwd=tmp_path)
    assert result.returncode == 2 and "names no log" in result.stderr
    missing = _seenby("witness", "serve", "--name", NAME, "--logs", "nope.txt", cwd=tmp_path)
    assert missing.returncode == 2 and "nope.txt is not a file" in missing.stderr
