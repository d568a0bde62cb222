"""Completeness proofs over HTTP on both backends, checked as a customer checks them offline."""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import itertools
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from service.ledger.checkpoint import Verifier, parse_verifier_key
from service.ledger.customer_index.tree import index_key
from service.main import create_app
from service.migrate import upgrade
from service.verify import VerificationError, completeness
from tests.chains import fetch_chain
from tests.conftest import Tokens, base_settings, serve
from tests.factories import access_event
from tests.servers import record_integrated, seenby_command, wait_until_integrated


async def _verifier(client: httpx.AsyncClient) -> Verifier:
    return parse_verifier_key((await client.get("/v1/log/key")).text.strip())


async def _proof(client: httpx.AsyncClient, customer: str, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get(f"/v1/customers/{customer}/completeness", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    proof: dict[str, Any] = response.json()
    return proof


async def _record(client: httpx.AsyncClient, tokens: Tokens, events: list[dict[str, Any]]) -> None:
    await record_integrated(client, events, tokens.service(), tokens.regulator())


async def _recorded(client: httpx.AsyncClient, tokens: Tokens, customer: str,
                    count: int) -> tuple[list[dict[str, Any]], dict[str, Any], Verifier]:
    """`count` accesses to the customer, in the signed log: its chain, its proof and the log's key."""
    await _record(client, tokens, [access_event(customer) for _ in range(count)])
    chain = await fetch_chain(client, customer, tokens.regulator())
    return chain, await _proof(client, customer, tokens.customer(customer)), await _verifier(client)


async def test_after_concurrent_writers_every_customers_chain_proves_complete(
    app: FastAPI, client: httpx.AsyncClient, tokens: Tokens
) -> None:
    customers = [f"cust-{uuid.uuid4().hex[:10]}" for _ in range(12)]

    async def writer(worker: int) -> None:
        for round_ in range(6):
            events = [access_event(customers[(worker + round_ + n) % len(customers)]) for n in range(7)]
            response = await client.post("/v1/accesses:batch", json={"events": events},
                                         headers=tokens.service())
            assert response.status_code == 201, response.text

    await asyncio.gather(*(writer(w) for w in range(5)))
    await wait_until_integrated(client, "", customers, tokens.regulator())
    verifier = await _verifier(client)
    total = 0
    for customer in customers:
        chain = await fetch_chain(client, customer, tokens.regulator())
        proof = await _proof(client, customer, tokens.regulator())
        assert proof["head"]["customer_seq"] == len(chain) - 1
        assert proof["head"]["entry_hash"] == chain[-1]["entry_hash"]
        verdict = completeness(proof, chain, verifier, None)
        assert verdict.startswith(f"complete: {len(chain)} entries up to log size ")
        total += len(chain)
    assert total == 5 * 6 * 7
    async with app.state.database.read_sessions() as session:  # only a witness policy keeps the index's past
        assert await session.scalar(text("SELECT count(*) FROM customer_index_undo")) == 0


async def test_a_chain_shown_without_its_last_entry_fails(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    chain, proof, verifier = await _recorded(client, tokens, customer_id, 4)
    completeness(proof, chain, verifier, None)
    with pytest.raises(VerificationError, match="ends before the head"):
        completeness(proof, chain[:-1], verifier, None)
    # Nor may the operator hide it by pointing the head one entry back: the index holds the real head.
    earlier = copy.deepcopy(proof)
    earlier["head"].update(customer_seq=chain[-2]["customer_seq"], entry_hash=chain[-2]["entry_hash"],
                           log_index=chain[-2]["log_index"])
    with pytest.raises(VerificationError, match="another head"):
        completeness(earlier, chain[:-1], verifier, None)
    # Or by claiming the customer has no entries at all.
    with pytest.raises(VerificationError):
        completeness({**proof, "head": None}, [], verifier, customer_id)


async def test_a_customer_that_never_had_an_entry_gets_a_valid_absence_proof(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    await _record(client, tokens, [access_event(f"{customer_id}-neighbour")])
    response = await client.get("/v1/me/completeness", headers=tokens.customer(customer_id))
    assert response.status_code == 200, response.text
    proof = response.json()
    assert proof["head"] is None
    assert proof["proof"]["leaf"] is None or proof["proof"]["leaf"]["key"] != proof["key"]
    verdict = completeness(proof, [], await _verifier(client), customer_id)
    assert verdict.startswith("complete: 0 entries up to log size ")
    with pytest.raises(VerificationError, match="not customer"):  # the key is bound to the id
        completeness(proof, [], await _verifier(client), f"{customer_id}-other")


async def test_tampered_proofs_are_refused(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    chain, proof, verifier = await _recorded(client, tokens, customer_id, 3)

    def changed(path: str, value: Any) -> dict[str, Any]:
        edited = copy.deepcopy(proof)
        *parents, last = path.split(".")
        target = edited
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
        return edited

    flip = "0" * 64
    tampered = {
        "checkpoint signature": changed("checkpoint", proof["checkpoint"].replace("\n\n", "\n\nx", 1)),
        "index leaf bytes": changed("index.canonical", "eyJraW5kIjoibm90ZSJ9"),
        "index leaf position": changed("index.log_index", proof["index"]["log_index"] - 1),
        "head value": changed("proof.leaf.value", flip),
        "head inclusion": changed("head.hashes", [flip] * len(proof["head"]["hashes"])),
        "the head's position": changed("head.log_index", proof["head"]["log_index"] + 1),
    }
    if proof["proof"]["siblings"]:
        tampered["an index sibling"] = changed("proof.siblings.0", flip[:-1] + "1")
        tampered["a dropped sibling"] = changed("proof.siblings", proof["proof"]["siblings"][1:])
    for what, document in tampered.items():
        with pytest.raises(VerificationError):
            completeness(document, chain, verifier, None)
            pytest.fail(f"{what}: accepted")


async def test_the_index_leaf_is_an_ordinary_leaf_of_the_log_and_in_no_history_or_export(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    await _record(client, tokens, [access_event(customer_id) for _ in range(2)])
    proof = await _proof(client, customer_id, tokens.regulator())
    position, canonical = proof["index"]["log_index"], base64.b64decode(proof["index"]["canonical"])
    leaf = json.loads(canonical)
    assert set(leaf) == {"kind", "covers", "root", "customers"}
    assert leaf["kind"] == "customer_index" and leaf["covers"] == position and leaf["customers"] >= 1
    assert canonical == json.dumps(leaf, sort_keys=True, separators=(",", ":")).encode()  # RFC 8785
    size = int(proof["checkpoint"].split("\n")[1])
    inclusion = (await client.get("/v1/log/proof/inclusion",
                                  params={"log_index": position, "tree_size": size})).json()
    assert inclusion["leaf_hash"] == hashlib.sha256(b"\x00" + canonical).hexdigest()
    assert inclusion["hashes"] == proof["index"]["hashes"]
    exported = await client.get("/v1/exports/accesses", headers=tokens.regulator(),
                                params={"kind": "all", "tree_size": size})
    assert exported.status_code == 200, exported.text
    rows = [json.loads(line) for line in exported.content.splitlines()]
    assert rows and all(row["kind"] != "customer_index" and row["log_index"] != position for row in rows)
    chain = await fetch_chain(client, customer_id, tokens.customer(customer_id))
    assert [item["kind"] for item in chain] == ["access", "access"]
    metrics = (await client.get("/metrics")).text
    keys = next(line for line in metrics.splitlines() if line.startswith("seenby_customer_index_keys "))
    assert float(keys.split()[1]) >= 1
    assert "seenby_customer_index_update_seconds_count" in metrics


async def test_who_may_read_a_completeness_proof(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    await _record(client, tokens, [access_event(customer_id)])
    url = f"/v1/customers/{customer_id}/completeness"
    assert (await client.get(url, headers=tokens.customer(customer_id))).status_code == 200
    for headers, status in (
        (tokens.customer(f"{customer_id}-else"), 404),  # another customer: existence is not leaked
        (tokens.regulator(jurisdiction="FR"), 404),  # outside the regulator's jurisdiction
        (tokens.service(), 403),
        (tokens.admin(), 403),
        ({}, 401),
    ):
        response = await client.get(url, headers=headers)
        assert response.status_code == status, (headers, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get("/v1/me/completeness", headers=tokens.regulator())).status_code == 403


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"])
def test_an_empty_log_has_no_index_to_prove_against_yet(
    backend_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend_name == "sqlite":
        settings = base_settings(tmp_path)
        upgrade(settings)
    else:  # a database of its own (fresh_pg migrates it synchronously: no event loop may run here)
        settings = request.getfixturevalue("fresh_pg").settings

    async def ask() -> httpx.Response:
        app = create_app(settings)
        async for client in serve(app):
            answer = await client.get("/v1/me/completeness", headers=Tokens(app).customer("cust-1"))
        return answer

    response = asyncio.run(ask())
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"


def test_seenby_verify_completeness_prints_the_verdict_and_exits_1_on_a_fault(
    tmp_path: Path, client_proof_files: tuple[Path, Path, Path]
) -> None:
    proof, chain, key = client_proof_files
    verified = subprocess.run([*seenby_command(), "verify", "completeness", str(proof), "--chain", str(chain),
                               "--key", str(key)], capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("OK: complete: 3 entries up to log size ")
    shortened = tmp_path / "shortened.json"
    shortened.write_text(json.dumps(json.loads(chain.read_text())["items"][:-1]))
    failed = subprocess.run([*seenby_command(), "verify", "completeness", str(proof), "--chain",
                             str(shortened), "--key", str(key)], capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1
    assert "FAILED" in failed.stderr and "ends before the head" in failed.stderr


@pytest.fixture
async def client_proof_files(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str, tmp_path: Path
) -> tuple[Path, Path, Path]:
    await _record(client, tokens, [access_event(customer_id) for _ in range(3)])
    paths = tmp_path / "proof.json", tmp_path / "chain.json", tmp_path / "log.key"
    paths[0].write_text(json.dumps(await _proof(client, customer_id, tokens.customer(customer_id))))
    paths[1].write_text(json.dumps({"items": await fetch_chain(client, customer_id, tokens.regulator())}))
    paths[2].write_text((await client.get("/v1/log/key")).text)
    return paths


def _customers_sharing_a_long_key_prefix(bits: int = 26) -> tuple[str, str]:
    """Two customer ids whose index keys share their first `bits` bits (a birthday search)."""
    seen: dict[int, str] = {}
    for n in itertools.count():
        customer = f"cust-deep-{n}"
        prefix = int.from_bytes(index_key(customer)[:4], "big") >> (32 - bits)
        if prefix in seen:
            return seen[prefix], customer
        seen[prefix] = customer
    raise AssertionError("unreachable")


async def test_customers_deeper_than_a_proofs_first_read_still_prove_complete(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    """Their leaves sit below the depth a proof reads in its first query: it reads on."""
    pair = _customers_sharing_a_long_key_prefix()
    await _record(client, tokens, [access_event(customer) for customer in pair for _ in range(2)])
    verifier = await _verifier(client)
    for customer in pair:
        chain = await fetch_chain(client, customer, tokens.regulator())
        proof = await _proof(client, customer, tokens.customer(customer))
        assert len(proof["proof"]["siblings"]) > 26
        assert completeness(proof, chain, verifier, None).startswith("complete: 2 entries")
