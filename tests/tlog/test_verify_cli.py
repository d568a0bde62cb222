"""`seenby verify`, offline, on what a customer or auditor saved from the API."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx

from tests.conftest import Tokens
from tests.factories import access_event
from tests.servers import seenby_command
from tests.tlog.test_log import wait_for_log_index


def verify(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*seenby_command(), "verify", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60)


async def test_verify_accepts_what_the_api_served_and_rejects_edits(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str, tmp_path: Path
) -> None:
    (tmp_path / "key.txt").write_text((await client.get("/v1/log/key")).text)
    (tmp_path / "old.txt").write_text((await client.get("/v1/log/checkpoint")).text)
    await client.post("/v1/accesses:batch", json={"events": [access_event(customer_id) for _ in range(6)]},
                      headers=tokens.service())
    items = await wait_for_log_index(client, customer_id, tokens.customer(customer_id), 6)
    (tmp_path / "new.txt").write_text((await client.get("/v1/log/checkpoint")).text)
    document = (await client.get(f"/v1/me/entries/{items[2]['entry_hash']}",
                                 headers=tokens.customer(customer_id))).json()
    (tmp_path / "entry.json").write_text(json.dumps(document))
    (tmp_path / "chain.json").write_text(json.dumps({"items": items}))
    old_size = int((tmp_path / "old.txt").read_text().split("\n")[1])
    new_size = int((tmp_path / "new.txt").read_text().split("\n")[1])
    if old_size:
        proof = (await client.get("/v1/log/proof/consistency",
                                  params={"first": old_size, "second": new_size})).json()
    else:
        proof = {"hashes": []}
    (tmp_path / "proof.json").write_text(json.dumps(proof))

    good = [
        ("checkpoint", "new.txt", "--key", "key.txt"),
        ("entry", "entry.json", "--key", "key.txt"),
        ("consistency", "old.txt", "new.txt", "--proof", "proof.json", "--key", "key.txt"),
        ("chain", "chain.json"),
    ]
    for args in good:
        result = verify(*args, cwd=tmp_path)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        assert result.stdout.startswith("OK")

    (tmp_path / "bad-cp.txt").write_text((tmp_path / "new.txt").read_text().replace(
        f"\n{new_size}\n", f"\n{new_size + 1}\n"))
    forged_entry = dict(document, entry={**document["entry"], "purpose": "security"})
    (tmp_path / "bad-entry.json").write_text(json.dumps(forged_entry))
    (tmp_path / "bad-chain.json").write_text(json.dumps({"items": items[:2] + items[3:]}))
    bad = [
        (("checkpoint", "bad-cp.txt", "--key", "key.txt"), "signature"),
        (("entry", "bad-entry.json", "--key", "key.txt"), items[2]["entry_hash"]),
        (("consistency", "new.txt", "bad-cp.txt", "--proof", "proof.json", "--key", "key.txt"), "FAILED"),
        (("chain", "bad-chain.json"), "customer_seq 3"),
    ]
    for args, named in bad:
        result = verify(*args, cwd=tmp_path)
        assert result.returncode == 1, args
        assert "FAILED" in result.stderr and named in result.stderr, (args, result.stderr)
