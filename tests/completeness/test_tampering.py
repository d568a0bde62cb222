"""An insider edits the database behind the service's back (PostgreSQL): completeness and audit catch it."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from service.db import make_engine
from service.ledger import audit
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


async def test_the_index_pass_in_parts_names_each_finding_once_as_the_whole_pass_does(
    fresh_pg: Backend, postgres_admin_url: str
) -> None:
    """Cut at index leaves, each part checks its own: a part that starts midway has replayed the heads
    before it (an untouched log gives no finding), and a leaf or stored node tampered with in any part
    is named once, as by the index pass in one piece."""
    app = create_app(fresh_pg.settings)
    tokens = Tokens(app)
    async for client in serve(app):
        for round_ in range(6):  # an integration pass, and an index leaf, a round; customers join
            await record_integrated(client, [access_event(f"cust-{n % (3 + round_)}") for n in range(20)],
                                    tokens.service(), tokens.regulator())
        verifier = parse_verifier_key((await client.get("/v1/log/key")).text.strip())

    async def audit_in_parts(parts: int) -> tuple[list[int], list[int], list[list[str]]]:
        """The log's index leaves, where the index pass is cut, and each part's findings."""
        engine = make_engine(fresh_pg.settings.resolved_database_url)
        try:
            async with engine.connect() as connection:
                positions = list((await connection.execute(
                    text("SELECT log_index FROM index_leaves ORDER BY log_index"))).scalars())
                jobs = [job for job in await audit.plan(connection, index_parts=parts) if job.name == "index"]
                return positions, [job.index_span.first for job in jobs[1:]], [
                    [str(finding) async for finding in audit.run_pass(
                        "index", connection, verifier, index_span=job.index_span)] for job in jobs]
        finally:
            await engine.dispose()

    assert (await audit_in_parts(1))[2] == [[]]
    leaf_positions, cuts, parts = await audit_in_parts(3)
    assert parts == [[], [], []]
    first, cut, last = leaf_positions[0], cuts[0], leaf_positions[-1]
    assert first < cut < last and cut in leaf_positions
    await as_insider(postgres_admin_url, fresh_pg,
                     # three leaves' bytes rotated, the first part's first, the second part's first
                     # (at the cut) and the last part's last: none is its own any more
                     "UPDATE index_leaves AS leaf SET canonical = other.canonical "
                     "FROM index_leaves AS other WHERE (leaf.log_index, other.log_index) IN "
                     f"(({first}, {cut}), ({cut}, {last}), ({last}, {first}))",
                     "UPDATE customer_index_nodes SET hash = sha256(hash) WHERE depth = 0")
    (_, _, whole), (_, _, parts) = await audit_in_parts(1), await audit_in_parts(3)
    named = [f"log_index {position}" for position in (first, cut, last)]
    assert [part[0].split(":")[0] for part in parts] == named
    assert [finding for part in parts for finding in part] == whole[0]
    for where in named:
        assert sum(f"{where}: the customer index leaf is not" in finding for finding in whole[0]) == 1
    assert sum("stored customer index node (depth 0" in finding for finding in whole[0]) == 1
