"""The `seenby` command as a newcomer meets it: help that explains, mistyped file names named as such,
an unreachable or failing server in one line, never a traceback."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from service.cli import app
from service.ledger.checkpoint import Checkpoint, raw_public_key, sign_checkpoint, verifier_key
from tests.servers import seenby_command

KEY_NAME = "seenby.test/log"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*seenby_command(), *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command and group, by its path (typer ships its own copy of click: duck-typed)."""
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if hasattr(command, "commands"):
            yield from _commands(command, (*prefix, name))


COMMANDS = list(_commands(typer.main.get_group(app)))


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_and_parameter_explains_itself(path: tuple[str, ...], command: Any) -> None:
    assert command.help and len(command.help.split()) >= 8, f"{path}: its help is missing or terse"
    for parameter in command.params:
        assert getattr(parameter, "help", None), f"{' '.join(path)} {parameter.name}: no help"
    result = CliRunner().invoke(app, [*path, "--help"], prog_name="seenby")
    assert result.exit_code == 0 and "Usage: seenby " + " ".join(path) in result.output


def test_required_options_are_marked_and_enforced(tmp_path: Path) -> None:
    commands = dict(COMMANDS)
    for path in (("verify", "checkpoint"), ("verify", "entry"), ("verify", "consistency"),
                 ("verify", "export"), ("token",)):
        required = {p.name for p in commands[path].params if p.required}
        assert required >= ({"role", "sub"} if path == ("token",) else {"key"}), path
    (tmp_path / "old.txt").write_text("x")
    result = run("verify", "consistency", "old.txt", cwd=tmp_path)
    assert result.returncode == 2 and "Missing option '--key'" in result.stderr


@pytest.fixture
def signed(tmp_path: Path) -> Path:
    """A folder with a verifier key and a signed checkpoint of size 0 (which any tree extends)."""
    private = Ed25519PrivateKey.generate()
    (tmp_path / "key.txt").write_text(verifier_key(KEY_NAME, raw_public_key(private)))
    empty = Checkpoint(KEY_NAME, 0, hashlib.sha256(b"").digest())
    (tmp_path / "cp.txt").write_text(sign_checkpoint(empty, private))
    return tmp_path


MISTYPED = [
    ("verify", "checkpoint", "cp.txtt", "--key", "key.txt"),
    ("verify", "checkpoint", "cp.txt", "--key", "key.txtt"),
    ("verify", "entry", "entry.jsonn", "--key", "key.txt"),
    ("verify", "consistency", "cp.txtt", "cp.txt", "--key", "key.txt"),
    ("verify", "consistency", "cp.txt", "cp.txtt", "--key", "key.txt"),
    ("verify", "consistency", "cp.txt", "cp.txt", "--proof", "proof.jsonn", "--key", "key.txt"),
    ("verify", "chain", "chain.jsonn"),
    ("verify", "export", "data.jsonll", "--key", "key.txt"),
    ("verify", "export", "cp.txt", "--manifest", "manifest.jsonn", "--key", "key.txt"),
    ("audit", "--key", "key.txtt"),
]


@pytest.mark.parametrize("args", MISTYPED, ids=[" ".join(a) for a in MISTYPED])
def test_a_mistyped_file_name_is_named_as_such(signed: Path, args: tuple[str, ...],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(signed)
    mistyped = next(a for a in args if a.endswith(("tt", "nn", "ll")))
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == f"{mistyped} is not a file"


def test_the_key_may_be_given_as_its_text(signed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(signed)
    key_text = (signed / "key.txt").read_text().strip()
    result = CliRunner().invoke(app, ["verify", "checkpoint", "cp.txt", "--key", key_text])
    assert result.exit_code == 0 and result.stdout.startswith(f"OK: {KEY_NAME} at size 0")
    result = CliRunner().invoke(app, ["verify", "checkpoint", "-", "--key", "key.txt"],
                                input=(signed / "cp.txt").read_text())
    assert result.exit_code == 0, result.output


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def answering(status: int, body: bytes, content_type: str = "application/problem+json") -> Iterator[str]:
    """A local HTTP server that answers every GET with the same status and body."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr.strip()


def test_an_unreachable_server_is_one_line(signed: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    line = _one_line(run("verify", "consistency", "cp.txt", "--url", url, "--key", "key.txt", cwd=signed))
    assert line.startswith(f"cannot reach the seenby server at {url}")
    line = _one_line(run("export", "--url", url, "--token", "t", "--out", "x.jsonl", cwd=signed))
    assert line.startswith(f"export failed: cannot reach the seenby server at {url}")
    line = _one_line(run("export", "--url", "127.0.0.1:1", "--token", "t", "--out", "x.jsonl", cwd=signed))
    assert "export failed: cannot reach" in line and "http://" in line


def test_a_server_answering_an_error_is_one_line(signed: Path) -> None:
    problem = json.dumps({"type": "about:blank", "title": "Service Unavailable", "status": 503,
                          "detail": "the database is starting up"}).encode()
    with answering(503, problem) as url:
        line = _one_line(run("verify", "consistency", "cp.txt", "--url", url, "--key", "key.txt",
                             cwd=signed))
    assert line == (f"the seenby server at {url} answered /v1/log/checkpoint with 503: the database is "
                    "starting up")
    with answering(200, b"<html>not seenby</html>", "text/html") as url:
        line = _one_line(run("export", "--url", url, "--token", "t", "--out", "x.jsonl", cwd=signed))
    assert "answered without a Seenby-Tree-Size header: is it a seenby server?" in line
