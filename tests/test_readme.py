"""The README's walkthrough works as written: its blocks, run verbatim against a real `seenby serve`.

The blocks are the README's shell blocks marked `<!-- walkthrough -->` (the server's command:
`<!-- walkthrough: the server -->`). They run in order, as one `bash -euo pipefail` script, in the
folder where the server was started with no configuration but what the README says to set, as a
newcomer would run them; the only thing the test changes is `SEENBY_URL`, which the README reads.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ci import unavailable
from tests.pg import free_port
from tests.servers import serving

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^<!-- walkthrough(?P<server>: the server)? -->\n```sh\n(?P<body>.*?)^```$", re.M | re.S)
BIN = Path(sys.executable).parent


def walkthrough() -> tuple[str, list[str]]:
    """The server's command line and the client's blocks, in README order."""
    server, client = [], []
    for match in BLOCK.finditer(README.read_text()):
        (server if match["server"] else client).append(match["body"])
    assert len(server) == 1, "the README marks one block as the walkthrough's server"
    assert len(client) >= 5, "the README's walkthrough blocks are no longer marked"
    return server[0].strip(), client


def newcomer_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This environment less any SEENBY_ setting, with the virtualenv's scripts first on the PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEENBY_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["TMPDIR"] = str(tmp_path)  # the walkthrough's `mktemp -d` lands in the test's folder
    return {**env, **extra}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`seenby serve` as the README starts it, in a fresh folder, on a free port."""
    if not shutil.which("curl"):
        unavailable("curl is not installed: the README's walkthrough uses it (apt-get install curl)")
    line, _ = walkthrough()
    words = shlex.split(line)
    settings = dict(w.split("=", 1) for w in words if re.fullmatch(r"[A-Z_]+=.*", w))
    assert words[len(settings):] == ["seenby", "serve"], f"unexpected server command: {line}"
    folder = tmp_path_factory.mktemp("newcomer")
    port = free_port()
    command = [str(BIN / "seenby"), "serve", "--port", str(port)]
    with serving(command, newcomer_env(folder, **settings), folder, port, timeout=60) as url:
        yield url, folder


def run(script: str, url: str, folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=folder, capture_output=True,
                          text=True, timeout=300, env=newcomer_env(folder, SEENBY_URL=url))


def json_lines(output: str) -> list[Any]:
    found = []
    for line in output.splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def test_the_walkthrough_runs_verbatim(server: tuple[str, Path]) -> None:
    url, folder = server
    _, blocks = walkthrough()
    done = run("\n".join(blocks), url, folder)
    assert done.returncode == 0, f"a README command failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    out = done.stdout
    documents = json_lines(out)

    receipts = [d for d in documents if isinstance(d, dict) and "customer_seq" in d and "event_id" in d]
    assert receipts[0]["customer_seq"] == 0
    histories = [d["items"] for d in documents if isinstance(d, dict) and "items" in d]
    first_view = next(i for items in histories for i in items if i.get("event_id", "").startswith("6f1c2a9e"))
    assert first_view["flags"] == ["unconsented"]
    # The pseudonym the README recomputes from the key file is the one the customer was shown.
    assert re.search(rf"^{first_view['actor']['pseudonym']}$", out, re.M)

    assert {"human_review": False, "model_training": True} in documents
    assert any(isinstance(d, dict) and d.get("decision") == "allow" for d in documents)
    troubleshooting = next(i for items in histories for i in items if i.get("purpose") == "troubleshooting")
    assert troubleshooting["flags"] == []
    requests = [d for d in documents if isinstance(d, dict) and "tasks" in d]
    assert requests[0]["status"] == "pending" and len(requests[0]["tasks"]) == 2
    assert requests[-1]["status"] == "completed"
    assert "intact" in out  # `seenby verify chain`; the other checks speak through their exit codes


def test_a_failing_command_fails_the_walkthrough(server: tuple[str, Path]) -> None:
    """The blocks' curl calls fail on an HTTP error, and bash stops there."""
    url, folder = server
    _, blocks = walkthrough()
    first = blocks[0]
    assert "--fail-with-body" in first
    broken = first.replace("/v1/accesses", "/v1/nowhere", 1) + "\necho reached the end\n"
    done = run(broken, url, folder)
    assert done.returncode != 0
    assert "reached the end" not in done.stdout
