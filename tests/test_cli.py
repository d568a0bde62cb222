"""The `seenby` command as an operator uses it: first run, tokens, production refusals."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from service.keys import new_key_pem
from service.slow_clients import HEADER_TIMEOUT_SECONDS
from tests.servers import running_server, seenby_command


def run_seenby(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SEENBY_")}
    return subprocess.run([*seenby_command(), *args], cwd=cwd, env={**clean, **(env or {})},
                          capture_output=True, text=True, timeout=60)


def test_help_explains_the_commands(tmp_path: Path) -> None:
    result = run_seenby("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("serve", "migrate", "token"):
        assert command in result.stdout


def test_first_run_creates_the_data_folder_and_serves(tmp_path: Path) -> None:
    with running_server({}, tmp_path) as url:
        data = tmp_path / ".seenby"
        assert {p.name for p in data.iterdir()} >= {
            "seenby.db", "jwt-secret", "pseudonym-secret", "log-signing-key.pem"}
        assert oct((data / "jwt-secret").stat().st_mode & 0o777) == "0o600"
        token = run_seenby("token", "--role", "customer", "--sub", "cust-1", cwd=tmp_path)
        assert token.returncode == 0, token.stderr
        response = httpx.get(f"{url}/v1/me/accesses",
                             headers={"Authorization": f"Bearer {token.stdout.strip()}"})
        assert response.status_code == 200 and response.json() == {"items": [], "next_cursor": None}
    secret = (tmp_path / ".seenby" / "jwt-secret").read_text()
    with running_server({}, tmp_path):
        assert (tmp_path / ".seenby" / "jwt-secret").read_text() == secret, "generated once"


@pytest.mark.parametrize("name", ["jwt-secret", "pseudonym-secret"])
@pytest.mark.parametrize("content", ["", "\n", "short"])
def test_a_development_secret_cut_short_is_refused_at_start(tmp_path: Path, name: str, content: str) -> None:
    """A secret file left empty (a first start interrupted) must not become an HMAC key anyone can
    sign with: the server refuses to start and says which file to delete."""
    data = tmp_path / ".seenby"
    data.mkdir()
    (data / name).write_text(content)
    result = run_seenby("serve", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{name} holds a secret under 32 bytes" in result.stderr
    token = run_seenby("token", "--role", "regulator", "--sub", "r", cwd=tmp_path)
    assert token.returncode == 2 and token.stdout == ""
    assert f"{name} holds a secret under 32 bytes" in token.stderr and "Traceback" not in token.stderr


def test_development_secrets_are_written_whole_with_nothing_left_aside(tmp_path: Path) -> None:
    assert run_seenby("token", "--role", "customer", "--sub", "c", cwd=tmp_path).returncode == 0
    data = tmp_path / ".seenby"
    assert len((data / "jwt-secret").read_text().strip()) == 64
    assert not [p.name for p in data.iterdir() if p.name.startswith(".")]


def test_serve_cuts_a_client_that_never_finishes_its_request_head(tmp_path: Path) -> None:
    """uvicorn has no limit on a request's line and headers: `seenby serve` closes such a connection
    after HEADER_TIMEOUT_SECONDS, and answers a client that sends its head in time."""
    with running_server({}, tmp_path) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as slow:
            slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and no more
            started = time.monotonic()
            assert slow.recv(1024) == b"", "closed without an answer"
            waited = time.monotonic() - started
        assert HEADER_TIMEOUT_SECONDS - 1 < waited < HEADER_TIMEOUT_SECONDS + 5
        assert httpx.get(f"{url}/healthz").status_code == 200


def test_request_lines_stay_out_of_the_log_unless_asked_for(tmp_path: Path) -> None:
    path = "/v1/customers/cust-named-in-a-path/accesses"
    for args, logged in (((), False), (("--access-log",), True)):
        with running_server({}, tmp_path, args=args) as url:
            assert httpx.get(url + path).status_code == 401
        log = (tmp_path / f"serve-{url.rsplit(':', 1)[1]}.log").read_text()
        assert ("Application startup complete" in log) and ("cust-named-in-a-path" in log) is logged, log


def test_token_rejects_unknown_roles(tmp_path: Path) -> None:
    result = run_seenby("token", "--role", "root", "--sub", "x", cwd=tmp_path)
    assert result.returncode != 0 and "unknown role" in result.stderr


def test_production_refuses_development_defaults(tmp_path: Path) -> None:
    result = run_seenby("serve", cwd=tmp_path, env={"SEENBY_ENV": "production"})
    assert result.returncode == 2
    for variable in ("SEENBY_DATABASE_URL", "SEENBY_JWT_SECRET", "SEENBY_SIGNING_KEY_FILE",
                     "SEENBY_TICKET_KEY_FILE", "SEENBY_PSEUDONYM_SECRET", "SEENBY_JWT_ISSUER"):
        assert variable in result.stderr
    assert "validation error" not in result.stderr and "pydantic" not in result.stderr, result.stderr


def test_a_setting_that_does_not_parse_is_named_as_its_variable(tmp_path: Path) -> None:
    result = run_seenby("serve", cwd=tmp_path, env={"SEENBY_DELETION_DUE_DAYS": "soon"})
    assert result.returncode == 2
    assert "configuration error: SEENBY_DELETION_DUE_DAYS:" in result.stderr, result.stderr
    assert "pydantic" not in result.stderr


def test_serve_refuses_several_workers_on_sqlite(tmp_path: Path) -> None:
    result = run_seenby("serve", "--workers", "2", cwd=tmp_path)
    assert result.returncode == 2 and "needs PostgreSQL" in result.stderr, result.stderr


def test_audit_where_there_is_no_database_says_so_and_creates_nothing(tmp_path: Path) -> None:
    result = run_seenby("audit", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no seenby database at" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / ".seenby").exists()


def test_audit_of_a_database_out_of_reach_says_so(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://seenby:secret-password@127.0.0.1:9/seenby"
    result = run_seenby("audit", cwd=tmp_path, env={"SEENBY_DATABASE_URL": url})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "cannot read the database at" in result.stderr and "Traceback" not in result.stderr
    assert "secret-password" not in result.stderr


def test_token_says_when_it_makes_a_new_secret_and_open_follows_seenby_url(tmp_path: Path) -> None:
    first = run_seenby("token", "--role", "customer", "--sub", "c", "--open", cwd=tmp_path,
                       env={"SEENBY_URL": "http://127.0.0.1:8080"})
    assert first.returncode == 0 and first.stdout.startswith("http://127.0.0.1:8080/app/#token=")
    assert "a new one is made there" in first.stderr
    again = run_seenby("token", "--role", "customer", "--sub", "c", cwd=tmp_path)
    assert again.returncode == 0 and again.stderr == ""


def test_production_refuses_the_generated_development_secrets(tmp_path: Path) -> None:
    assert run_seenby("token", "--role", "admin", "--sub", "op", cwd=tmp_path).returncode == 0
    data = tmp_path / ".seenby"
    key_file, ticket_key_file = tmp_path / "prod-signing-key.pem", tmp_path / "prod-ticket-key.pem"
    key_file.write_bytes(new_key_pem())
    ticket_key_file.write_bytes(new_key_pem())
    production = {
        "SEENBY_ENV": "production",
        "SEENBY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/prod.db",
        "SEENBY_JWT_ISSUER": "https://id.example.com",
        "SEENBY_JWT_SECRET": (data / "jwt-secret").read_text(),
        "SEENBY_PSEUDONYM_SECRET": "p" * 40,
        "SEENBY_SIGNING_KEY_FILE": str(key_file),
        "SEENBY_TICKET_KEY_FILE": str(ticket_key_file),
    }
    result = run_seenby("serve", cwd=tmp_path, env=production)
    assert result.returncode == 2 and "development secrets" in result.stderr
    dev_key = {**production, "SEENBY_JWT_SECRET": "s" * 40,
               "SEENBY_SIGNING_KEY_FILE": str(data / "log-signing-key.pem")}
    result = run_seenby("serve", cwd=tmp_path, env=dev_key)
    assert result.returncode == 2 and "development log signing key" in result.stderr
    dev_ticket_key = {**production, "SEENBY_JWT_SECRET": "s" * 40,
                      "SEENBY_TICKET_KEY_FILE": str(data / "ticket-key.pem")}
    (data / "ticket-key.pem").write_bytes(ticket_key_file.read_bytes())
    result = run_seenby("serve", cwd=tmp_path, env=dev_ticket_key)
    assert result.returncode == 2 and "development ticket key" in result.stderr
    # A copy of a development key, kept anywhere, is refused as surely as the file itself.
    for setting, dev_file, what in (("SEENBY_SIGNING_KEY_FILE", "log-signing-key.pem", "log signing key"),
                                    ("SEENBY_TICKET_KEY_FILE", "ticket-key.pem", "ticket key")):
        copy = tmp_path / f"copied-{dev_file}"
        copy.write_bytes((data / dev_file).read_bytes())
        result = run_seenby("serve", cwd=tmp_path, env={**production, "SEENBY_JWT_SECRET": "s" * 40,
                                                         setting: str(copy)})
        assert result.returncode == 2 and f"development {what} (a copy" in result.stderr, result.stderr
    fresh_ticket_key = tmp_path / "fresh-ticket-key.pem"  # the production one was copied in above
    fresh_ticket_key.write_bytes(new_key_pem())
    retired = {**production, "SEENBY_JWT_SECRET": "s" * 40, "SEENBY_TICKET_KEY_FILE": str(fresh_ticket_key),
               # a retired ticket key is still published to clip stores
               "SEENBY_TICKET_RETIRED_KEY_FILES": str(tmp_path / "copied-log-signing-key.pem")}
    result = run_seenby("serve", cwd=tmp_path, env=retired)
    assert result.returncode == 2 and "development retired ticket key" in result.stderr, result.stderr
    same_key = {**production, "SEENBY_JWT_SECRET": "s" * 40, "SEENBY_TICKET_KEY_FILE": str(key_file)}
    result = run_seenby("serve", cwd=tmp_path, env=same_key)
    assert result.returncode == 2 and "ticket key must not be the log signing key" in result.stderr
