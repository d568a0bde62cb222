"""The Merkle log over HTTP: signed checkpoints, proofs that verify, tiles, bad ranges."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import httpx
import pytest

from service.ledger import merkle
from service.ledger.checkpoint import Checkpoint, open_checkpoint, parse_verifier_key
from service.main import create_app
from service.migrate import upgrade
from service.verify import VerificationError, consistency, entry
from tests.conftest import Tokens, base_settings, serve
from tests.factories import access_event


async def signed_checkpoint(client: httpx.AsyncClient) -> Checkpoint:
    verifier = parse_verifier_key((await client.get("/v1/log/key")).text.strip())
    response = await client.get("/v1/log/checkpoint")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return open_checkpoint(response.text, verifier)


async def wait_for_log_index(client: httpx.AsyncClient, customer_id: str, headers: dict[str, str],
                             count: int, within: float = 5.0) -> list[dict]:
    deadline = time.monotonic() + within
    while True:
        items = (await client.get(f"/v1/customers/{customer_id}/entries", params={"limit": 500},
                                  headers=headers)).json()["items"]
        if len(items) == count and all(i["log_index"] is not None for i in items):
            return items
        assert time.monotonic() < deadline, "entries were not integrated in time"
        await asyncio.sleep(0.05)


async def test_a_new_log_serves_a_signed_empty_checkpoint(tmp_path: Path) -> None:
    settings = base_settings(tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/empty.db")
    await asyncio.to_thread(upgrade, settings)  # Alembic runs its own event loop
    async for client in serve(create_app(settings)):
        for _ in range(100):
            if (await client.get("/v1/log/checkpoint")).status_code == 200:
                break
            await asyncio.sleep(0.02)
        cp = await signed_checkpoint(client)
        assert cp.size == 0 and cp.root_hash == merkle.EMPTY_ROOT and cp.origin == settings.log_origin


async def test_entries_are_signed_into_the_log_within_two_seconds(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    sent = access_event(customer_id)
    response = await client.post("/v1/accesses", json=sent, headers=tokens.service())
    committed = time.monotonic()
    receipt = response.json()
    while True:
        item = (await client.get(f"/v1/me/entries/{receipt['entry_hash']}",
                                 headers=tokens.customer(customer_id))).json()
        if item["proof"] is not None:
            break
        assert time.monotonic() - committed < 2.0, "not in a signed checkpoint within 2 s"
        await asyncio.sleep(0.02)
    verifier = parse_verifier_key((await client.get("/v1/log/key")).text.strip())
    signed = entry(item, verifier)
    assert signed.size > item["log_index"]
    history = (await client.get("/v1/me/accesses", headers=tokens.customer(customer_id))).json()
    assert history["items"][0]["log_index"] == item["log_index"]
    replay = await client.post("/v1/accesses", json=sent, headers=tokens.service())
    assert replay.status_code == 200
    assert replay.json() == {**receipt, "log_index": item["log_index"]}, "a replay now carries log_index"


async def test_every_proof_from_the_api_verifies(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    before = await signed_checkpoint(client)
    events = [access_event(customer_id) for _ in range(40)]
    await client.post("/v1/accesses:batch", json={"events": events}, headers=tokens.service())
    items = await wait_for_log_index(client, customer_id, tokens.regulator(), 40)
    after = await signed_checkpoint(client)
    assert after.size >= before.size + 40
    for item in items:
        leaf = merkle.leaf_hash(base64.b64decode(item["canonical"]))
        proof = (await client.get("/v1/log/proof/inclusion", params={
            "log_index": item["log_index"], "tree_size": after.size})).json()
        assert proof["leaf_hash"] == leaf.hex()
        merkle.verify_inclusion(leaf, item["log_index"], after.size,
                                [bytes.fromhex(h) for h in proof["hashes"]], after.root_hash)
    if before.size:
        proof = (await client.get("/v1/log/proof/consistency",
                                  params={"first": before.size, "second": after.size})).json()
        assert (proof["first"], proof["second"]) == (before.size, after.size)
        consistency(before, after, proof["hashes"])
        with pytest.raises(VerificationError):
            consistency(before, after, [h[::-1] for h in proof["hashes"]] or ["00" * 32])


async def test_customers_entry_proof_verifies_and_fails_when_tampered(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    await client.post("/v1/accesses", json=access_event(customer_id), headers=tokens.service())
    item = (await wait_for_log_index(client, customer_id, tokens.customer(customer_id), 1))[0]
    document = (await client.get(f"/v1/customers/{customer_id}/entries/{item['entry_hash']}",
                                 headers=tokens.customer(customer_id))).json()
    verifier = parse_verifier_key((await client.get("/v1/log/key")).text.strip())
    entry(document, verifier)
    forged = dict(document, canonical=base64.b64encode(
        base64.b64decode(document["canonical"]).replace(b'"view"', b'"vie2"')).decode())
    with pytest.raises(VerificationError):
        entry(forged, verifier)
    if document["proof"]["hashes"]:
        bent = dict(document, proof=dict(document["proof"], hashes=["00" * 32] * len(
            document["proof"]["hashes"])))
        with pytest.raises(VerificationError):
            entry(bent, verifier)


async def test_tiles_hold_the_leaf_hashes(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    await client.post("/v1/accesses:batch", json={"events": [access_event(customer_id) for _ in range(5)]},
                      headers=tokens.service())
    await wait_for_log_index(client, customer_id, tokens.regulator(), 5)
    size = (await signed_checkpoint(client)).size
    full_tiles, width = divmod(size, 256)
    if width:
        path = merkle.tile_path(0, full_tiles, width).removeprefix("tile/")
        response = await client.get(f"/v1/log/tile/{path}")
        assert response.status_code == 200 and len(response.content) == 32 * width
        assert response.headers["content-type"] == "application/octet-stream"
        leaves = [response.content[i:i + 32] for i in range(0, len(response.content), 32)]
        last_index = full_tiles * 256 + width - 1
        proof = (await client.get("/v1/log/proof/inclusion",
                                  params={"log_index": last_index, "tree_size": size})).json()
        assert proof["leaf_hash"] == leaves[-1].hex()
        # A partial tile narrower than the tree allows is served too (older checkpoints ask for it).
        narrower = await client.get(f"/v1/log/tile/0/{merkle.tile_path(0, full_tiles, 1)[7:]}")
        assert narrower.status_code == 200 and narrower.content == leaves[0]
    beyond = merkle.tile_path(0, full_tiles + 1).removeprefix("tile/")
    assert (await client.get(f"/v1/log/tile/{beyond}")).status_code == 404
    for bad in ("0/1", "0/x001", "0/000.p/0", "0/000.p/256", "99/000", "0/0001", "a/000"):
        response = await client.get(f"/v1/log/tile/{bad}")
        assert response.status_code == 404, bad
        assert response.headers["content-type"] == "application/problem+json"


async def test_bad_ranges_are_problems(client: httpx.AsyncClient, tokens: Tokens, customer_id: str) -> None:
    await client.post("/v1/accesses", json=access_event(customer_id), headers=tokens.service())
    await wait_for_log_index(client, customer_id, tokens.regulator(), 1)
    size = (await signed_checkpoint(client)).size
    cases = [
        ("/v1/log/proof/inclusion", {"log_index": 0, "tree_size": size + 1}),
        ("/v1/log/proof/inclusion", {"log_index": size, "tree_size": size}),
        ("/v1/log/proof/inclusion", {"log_index": -1, "tree_size": size}),
        ("/v1/log/proof/inclusion", {"log_index": "x", "tree_size": size}),
        ("/v1/log/proof/inclusion", {"tree_size": size}),
        ("/v1/log/proof/consistency", {"first": size, "second": size + 1}),
        ("/v1/log/proof/consistency", {"first": size, "second": size - 1}),
        ("/v1/log/proof/consistency", {"first": 0, "second": size}),
    ]
    for url, params in cases:
        response = await client.get(url, params=params)
        assert 400 <= response.status_code < 500, (url, params, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    same = await client.get("/v1/log/proof/consistency", params={"first": size, "second": size})
    assert same.status_code == 200 and same.json()["hashes"] == []


async def test_log_metrics_are_exported(client: httpx.AsyncClient) -> None:
    text = (await client.get("/metrics")).text
    for name in ("seenby_log_tree_size", "seenby_log_entries_waiting",
                 "seenby_log_integration_lag_seconds_bucket", "seenby_log_checkpoints_signed_total"):
        assert name in text


async def test_a_chain_page_carries_inclusion_proofs_in_a_signed_tree(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    events = [access_event(customer_id) for _ in range(30)]
    await client.post("/v1/accesses:batch", json={"events": events}, headers=tokens.service())
    await wait_for_log_index(client, customer_id, tokens.customer(customer_id), 30)
    signed = await signed_checkpoint(client)
    proven: list[dict] = []
    cursor = None
    while True:  # pages of 7: proofs on every page, not only the first
        page = (await client.get("/v1/me/entries", headers=tokens.customer(customer_id), params={
            "limit": 7, "tree_size": signed.size, **({"cursor": cursor} if cursor else {})})).json()
        proven += page["items"]
        if not (cursor := page["next_cursor"]):
            break
    assert [i["customer_seq"] for i in proven] == list(range(30))
    for item in proven:
        leaf = merkle.leaf_hash(base64.b64decode(item["canonical"]))
        hashes = [bytes.fromhex(h) for h in item["inclusion"]]
        merkle.verify_inclusion(leaf, item["log_index"], signed.size, hashes, signed.root_hash)
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(leaf, item["log_index"] ^ 1, signed.size, hashes, signed.root_hash)

    # Without tree_size the answer is as before; a size never signed is 422 and a tree too small for
    # the entries gives them a null proof.
    plain = (await client.get("/v1/me/entries", headers=tokens.customer(customer_id))).json()
    assert "inclusion" not in plain["items"][0]
    beyond = await client.get("/v1/me/entries", headers=tokens.customer(customer_id),
                              params={"tree_size": signed.size + 1000})
    assert beyond.status_code == 422 and beyond.headers["content-type"] == "application/problem+json"
    first = min(i["log_index"] for i in proven)
    small = (await client.get(f"/v1/customers/{customer_id}/entries", headers=tokens.regulator(),
                              params={"tree_size": first + 1, "limit": 500})).json()["items"]
    assert small[0]["inclusion"] is not None and all(i["inclusion"] is None for i in small[1:])


async def test_a_database_made_anew_under_the_same_url_is_not_taken_for_the_old_one(tmp_path: Path) -> None:
    """What one app learnt of its log (a size known to be signed) is not carried over to a new app
    on a database dropped and migrated again at the same URL: sizes past its checkpoint are 422."""
    settings = base_settings(tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/again.db")
    await asyncio.to_thread(upgrade, settings)
    tokens = Tokens.for_settings(settings)
    async for client in serve(create_app(settings)):
        await client.post("/v1/accesses:batch", json={"events": [access_event("cust-a") for _ in range(5)]},
                          headers=tokens.service())
        await wait_for_log_index(client, "cust-a", tokens.regulator(), 5)
        old_size = (await signed_checkpoint(client)).size
        proof = await client.get("/v1/log/proof/inclusion", params={"log_index": 0, "tree_size": old_size})
        assert proof.status_code == 200, proof.text
    await asyncio.to_thread(lambda: [file.unlink() for file in tmp_path.glob("again.db*")])
    await asyncio.to_thread(upgrade, settings)
    async for client in serve(create_app(settings)):
        assert (await signed_checkpoint(client)).size == 0
        for path, params in [("/v1/log/proof/inclusion", {"log_index": 0, "tree_size": old_size}),
                             ("/v1/log/proof/consistency", {"first": 1, "second": old_size})]:
            response = await client.get(path, params=params)
            assert response.status_code == 422, (path, response.text)
        listed = await client.get("/v1/customers/cust-a/entries", headers=tokens.regulator(),
                                  params={"tree_size": old_size})
        assert listed.status_code == 422, listed.text
