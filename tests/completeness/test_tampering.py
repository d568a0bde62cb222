"""An insider edits the database behind the service's back (PostgreSQL): completeness and audit catch it."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from service.ledger.checkpoint import parse_verifier_key
from service.main import create_app
from service.verify import VerificationError, completeness
from tests.chains import fetch_chain
from tests.conftest import Backend, Tokens, serve
from tests.factories import access_event
from tests.servers import record_integrated
from tests.tlog.test_faults import as_insider, recorded_and_integrated, run_audit, stored_hash


async def _proof_and_chain(backend: Backend, customer: str) -> tuple[dict, list[dict], object]:
    app = create_app(backend.settings)
    tokens = Tokens(app)
    async for client in serve(app):
        response = await client.get(f"/v1/customers/{customer}/completeness",
                                    headers=tokens.customer(customer))
        assert response.status_code == 200, response.text
        chain = await fetch_chain(client, customer, tokens.regulator())
        verifier = parse_verifier_key((await client.get("/v1/log/key")).text.strip())
    return response.json(), chain, verifier


async def test_a_customers_last_entry_deleted_fails_its_completeness_and_the_audit(
    fresh_pg: Backend, postgres_admin_url: str, tmp_path: Path
) -> None:
    customer, chain, _, _ = await recorded_and_integrated(fresh_pg, 6)
    proof, shown, verifier = await _proof_and_chain(fresh_pg, customer)
    completeness(proof, shown, verifier, None)  # sound before
    victim = chain[-1]
    await as_insider(postgres_admin_url, fresh_pg,
                     "DELETE FROM actor_identities WHERE entry_id = (SELECT id FROM ledger_entries "
        f"WHERE entry_hash = {stored_hash(victim['entry_hash'])})",
                     f"DELETE FROM ledger_entries WHERE entry_hash = {stored_hash(victim['entry_hash'])}")
    proof, shown, verifier = await _proof_and_chain(fresh_pg, customer)
    assert [item["entry_hash"] for item in shown] == [item["entry_hash"] for item in chain[:-1]]
    with pytest.raises(VerificationError, match="another head"):
        completeness(proof, shown, verifier, None)
    audit = run_audit(fresh_pg, tmp_path)
    assert audit.returncode == 1
    assert f"log_index {victim['log_index']}: its entry is missing" in audit.stdout


async def test_a_rewritten_index_node_fails_proofs_and_is_named_by_the_audit(
    fresh_pg: Backend, postgres_admin_url: str, tmp_path: Path
) -> None:
    customers = [f"cust-{uuid.uuid4().hex[:8]}" for _ in range(8)]
    app = create_app(fresh_pg.settings)
    tokens = Tokens(app)
    async for client in serve(app):
        await record_integrated(client, [access_event(c) for c in customers * 2], tokens.service(),
                                tokens.regulator())
    proof, shown, verifier = await _proof_and_chain(fresh_pg, customers[0])
    completeness(proof, shown, verifier, None)
    assert proof["proof"]["siblings"], "eight customers: the leaf has siblings"
    assert run_audit(fresh_pg, tmp_path).returncode == 0
    await as_insider(postgres_admin_url, fresh_pg, "UPDATE customer_index_nodes SET hash = sha256(hash)")
    proof, shown, verifier = await _proof_and_chain(fresh_pg, customers[0])
    with pytest.raises(VerificationError, match="index proof fails"):
        completeness(proof, shown, verifier, None)
    audit = run_audit(fresh_pg, tmp_path)
    assert audit.returncode == 1
    named = f"log_index {proof['index']['log_index']}: stored customer index node"
    assert named in audit.stdout, audit.stdout
