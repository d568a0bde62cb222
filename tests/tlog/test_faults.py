"""The log under replicas, crashes and insiders (PostgreSQL): dense, consistent, tampering found."""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from service.db import make_engine
from service.ledger import audit, packing
from service.ledger.checkpoint import Verifier, open_checkpoint, parse_verifier_key, raw_public_key
from service.ledger.integrator import LEADER_LOCK_KEY
from service.main import create_app
from service.migrate import upgrade
from service.settings import Settings
from service.verify import VerificationError, completeness, consistency, entry
from tests.chains import assert_chain_intact, fetch_chain
from tests.ci import unavailable
from tests.conftest import Backend, Tokens, _create_database, base_settings, serve, superuser_url
from tests.factories import access_event, algorithm_actor, human_actor
from tests.pg import ThrowawayPostgres
from tests.servers import Replicas, running_server, seenby_command, settings_env, wait_until_integrated


async def superuser_value(postgres_admin_url: str, backend: Backend, query: str, *args: object) -> Any:
    """One value, queried as the superuser in the backend's database (to terminate its backends)."""
    superuser = await asyncpg.connect(
        superuser_url(postgres_admin_url, backend).replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return await superuser.fetchval(query, *args)
    finally:
        await superuser.close()


async def all_checkpoints(backend: Backend) -> list[str]:
    engine = create_async_engine(backend.owner_url)
    try:
        async with engine.connect() as connection:
            return list((await connection.execute(
                text("SELECT note FROM checkpoints ORDER BY tree_size"))).scalars())
    finally:
        await engine.dispose()


async def assert_log_sound(backend: Backend, base: str, expected_size: int) -> None:
    """Every checkpoint verifies, each extends the one before, and the leaves are dense."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        verifier = parse_verifier_key((await http.get("/v1/log/key")).text.strip())
        notes = await all_checkpoints(backend)
        checkpoints = [open_checkpoint(note, verifier) for note in notes]
        sizes = [c.size for c in checkpoints]
        assert sizes == sorted(set(sizes)), "one checkpoint per size, growing"
        for older, newer in itertools.pairwise(checkpoints):
            hashes = []
            if older.size:
                response = await http.get("/v1/log/proof/consistency",
                                          params={"first": older.size, "second": newer.size})
                hashes = response.json()["hashes"]
            consistency(older, newer, hashes)
    engine = create_async_engine(backend.owner_url)
    try:
        async with engine.connect() as connection:
            leaves, index_leaves, top, entries, queued = (await connection.execute(text(
                "SELECT (SELECT count(*) FROM log_leaves), (SELECT count(*) FROM index_leaves),"
                " (SELECT max(log_index) FROM index_leaves), (SELECT count(*) FROM ledger_entries),"
                " (SELECT count(*) FROM integration_queue)"
            ))).one()
    finally:
        await engine.dispose()
    # Every entry once, and one index leaf a pass: the last leaf of the log is an index leaf.
    assert leaves == entries == expected_size and queued == 0
    assert checkpoints[-1].size == leaves + index_leaves == top + 1


async def test_two_replicas_under_load_build_one_dense_consistent_log(
    fresh_pg: Backend, tmp_path: Path
) -> None:
    tokens = Tokens.for_settings(fresh_pg.settings)
    env = settings_env(fresh_pg.settings)
    customers = [f"cust-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    with running_server(env, tmp_path) as first, running_server(env, tmp_path) as second:
        async with httpx.AsyncClient(timeout=30) as http:
            async def load(base: str, rounds: int) -> int:
                sent = 0
                for i in range(rounds):
                    events = [access_event(customers[(i + j) % 3]) for j in range(40)]
                    response = await http.post(f"{base}/v1/accesses:batch", json={"events": events},
                                               headers=tokens.service())
                    assert response.status_code == 201, response.text
                    sent += len(events)
                    await asyncio.sleep(0.02)
                return sent

            total = sum(await asyncio.gather(load(first, 25), load(second, 25), load(first, 25)))
            await wait_until_integrated(http, second, customers, tokens.regulator())
            for customer in customers:
                async with httpx.AsyncClient(base_url=first, timeout=30) as reader:
                    assert_chain_intact(await fetch_chain(reader, customer, tokens.regulator()))
        await assert_log_sound(fresh_pg, first, total)


async def test_sigkill_while_integrating_loses_and_duplicates_nothing(
    fresh_pg: Backend, tmp_path: Path
) -> None:
    """Jepsen-style: clients retry ambiguous failures; every acknowledged event is there exactly once."""
    tokens = Tokens.for_settings(fresh_pg.settings)
    replicas = Replicas(settings_env(fresh_pg.settings), tmp_path)
    sent: dict[str, dict] = {}
    acknowledged: dict[str, str] = {}
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            await replicas.ready(http)

            async def client(worker: int, batches: int) -> None:
                for b in range(batches):
                    events = [access_event(customer if j % 2 else f"{customer}-{worker}") for j in range(50)]
                    sent.update({e["event_id"]: e for e in events})
                    response = await replicas.post_until_acknowledged(
                        http, "/v1/accesses:batch", {"events": events}, tokens.service(), worker + b)
                    for receipt in response.json()["receipts"]:
                        acknowledged[receipt["event_id"]] = receipt["entry_hash"]

            await asyncio.gather(*(client(w, 30) for w in range(4)), replicas.kill_in_turn(http))
            assert len(acknowledged) == len(sent) == 4 * 30 * 50
            everyone = [customer, *(f"{customer}-{w}" for w in range(4))]
            await wait_until_integrated(http, replicas.bases[0], everyone, tokens.regulator(), within=30)
            async with httpx.AsyncClient(base_url=replicas.bases[0], timeout=30) as reader:
                chain = await fetch_chain(reader, customer, tokens.regulator())
                # The customer index came through the kills too: every chain proves complete.
                verifier = parse_verifier_key((await reader.get("/v1/log/key")).text.strip())
                for someone in everyone:
                    proof = (await reader.get(f"/v1/customers/{someone}/completeness",
                                              headers=tokens.regulator())).json()
                    their_chain = await fetch_chain(reader, someone, tokens.regulator())
                    completeness(proof, their_chain, verifier, None)
        assert_chain_intact(chain)
        recorded = [item["event_id"] for item in chain]
        assert len(recorded) == len(set(recorded)), "an event was recorded twice"
        assert set(recorded) <= set(sent), "an event that was never sent appeared"
        mine = {e for e, body in sent.items() if body["customer_id"] == customer}
        assert set(recorded) == mine
        for item in chain:
            assert acknowledged[item["event_id"]] == item["entry_hash"]
        await assert_log_sound(fresh_pg, replicas.bases[0], len(sent))
    finally:
        replicas.stop()
    # Every index leaf's root matches the index rebuilt from the entries before it.
    audit = run_audit(fresh_pg, tmp_path)
    assert audit.returncode == 0, audit.stdout + audit.stderr


def run_audit(backend: Backend, cwd: Path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SEENBY_")}
    return subprocess.run([*seenby_command(), "audit"], env={**clean, **settings_env(backend.settings)},
                          cwd=cwd, capture_output=True, text=True, timeout=120)


async def recorded_and_integrated(backend: Backend, count: int) -> tuple[str, list[dict], str, object]:
    """Records `count` entries for one customer in a fresh log; returns its chain and checkpoint."""
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    app = create_app(backend.settings)
    tokens = Tokens(app)
    async for client in serve(app):
        response = await client.post("/v1/accesses:batch", json={
            "events": [access_event(customer, clip_id=f"clip-{i}") for i in range(count)]},
            headers=tokens.service())
        assert response.status_code == 201
        await wait_until_integrated(client, "", [customer], tokens.regulator())
        chain = await fetch_chain(client, customer, tokens.regulator())
        document = (await client.get(f"/v1/customers/{customer}/entries/{chain[3]['entry_hash']}",
                                     headers=tokens.regulator())).json()
        verifier = parse_verifier_key((await client.get("/v1/log/key")).text.strip())
    return customer, chain, document, verifier


def stored_hash(entry_hash: str) -> str:
    """The SQL literal of a hash as PostgreSQL stores it (bytea: migration 0017)."""
    return f"decode('{entry_hash}', 'hex')"


async def as_insider(admin_url: str, backend: Backend, *statements: str) -> None:
    """A superuser with triggers (and foreign keys) switched off: what the database cannot stop."""
    engine = create_async_engine(superuser_url(admin_url, backend))
    try:
        async with engine.begin() as connection:
            await connection.execute(text("SET session_replication_role = replica"))
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def test_audit_passes_an_untouched_log(fresh_pg: Backend, tmp_path: Path) -> None:
    await recorded_and_integrated(fresh_pg, 8)
    result = run_audit(fresh_pg, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "audit passed" in result.stdout


async def test_audit_names_an_edited_entry_and_old_proofs_fail(
    fresh_pg: Backend, postgres_admin_url: str, tmp_path: Path
) -> None:
    _, chain, document, verifier = await recorded_and_integrated(fresh_pg, 8)
    entry(document, verifier)  # the proof holds before the edit
    victim = chain[3]
    # The insider knows the storage format: the edited bytes go in packed, as the service packs.
    edited = base64.b64decode(victim["canonical"]).replace(b'"clip-3"', b'"clip-X"')
    await as_insider(postgres_admin_url, fresh_pg,
                      f"UPDATE ledger_entries SET canonical = decode('{packing.pack(edited).hex()}', 'hex') "
                      f"WHERE entry_hash = {stored_hash(victim['entry_hash'])}")
    result = run_audit(fresh_pg, tmp_path)
    assert result.returncode == 1
    assert victim["entry_hash"] in result.stdout and f"log_index {victim['log_index']}" in result.stdout
    # The customer's entry, fetched again after the edit, no longer proves against the old checkpoint.
    app = create_app(fresh_pg.settings)
    async for client in serve(app):
        edited = (await client.get(f"/v1/customers/{victim['customer_id']}/entries/{victim['entry_hash']}",
                                   headers=Tokens(app).regulator())).json()
    assert base64.b64decode(edited["canonical"]) != base64.b64decode(document["canonical"])
    with pytest.raises(VerificationError):
        entry({**edited, "proof": document["proof"]}, verifier)


@pytest.mark.parametrize("edit", [
    "set_byte(canonical, 12, get_byte(canonical, 12) # 85)",  # a packed frame, damaged
    "substring(canonical from 1 for 20)",  # cut short
    "convert_to('{\"kind\":\"access\"}', 'UTF8')",  # stored raw, as before packing, but other bytes
])
async def test_audit_names_stored_bytes_damaged_in_place(
    fresh_pg: Backend, postgres_admin_url: str, tmp_path: Path, edit: str
) -> None:
    customer, chain, _, _ = await recorded_and_integrated(fresh_pg, 8)
    victim = chain[5]
    await as_insider(postgres_admin_url, fresh_pg, f"UPDATE ledger_entries SET canonical = {edit} "
                                                   f"WHERE entry_hash = {stored_hash(victim['entry_hash'])}")
    result = run_audit(fresh_pg, tmp_path)
    assert result.returncode == 1
    assert f"entry {victim['entry_hash']}" in result.stdout
    assert "canonical bytes do not hash to entry_hash" in result.stdout
    assert f"log_index {victim['log_index']}" in result.stdout, "the tree pass names its leaf too"
    # The rest of the customer's chain still reads.
    app = create_app(fresh_pg.settings)
    async for client in serve(app):
        intact = (await client.get(f"/v1/customers/{customer}/entries/{chain[4]['entry_hash']}",
                                   headers=Tokens(app).regulator()))
    assert intact.status_code == 200
    assert base64.b64decode(intact.json()["canonical"]) == base64.b64decode(chain[4]["canonical"])


async def test_audit_names_a_damaged_tile_and_a_damaged_node_row(
    fresh_pg: Backend, postgres_admin_url: str, tmp_path: Path
) -> None:
    await recorded_and_integrated(fresh_pg, 300)  # a complete tile at level 0, the rest in rows
    held = await superuser_value(postgres_admin_url, fresh_pg,
                                 "SELECT max(node_index) FROM merkle_nodes WHERE level = 0")
    assert held is not None and held > 256
    await as_insider(postgres_admin_url, fresh_pg,
                     "UPDATE merkle_tiles SET hashes = overlay(hashes "
                     "PLACING decode(repeat('ab', 32), 'hex') FROM 7 * 32 + 1 FOR 32) "
                     "WHERE level = 0 AND tile_index = 0",
                     f"UPDATE merkle_nodes SET hash = decode(repeat('cd', 32), 'hex') "
                     f"WHERE level = 0 AND node_index = {held}",
                     "UPDATE merkle_nodes SET hash = decode(repeat('ef', 32), 'hex') "
                     "WHERE level = 4 AND node_index = 3")  # a stored level above the leaves
    result = run_audit(fresh_pg, tmp_path)
    assert result.returncode == 1
    assert "stored tree node (0, 7) does not match the leaves" in result.stdout
    assert f"stored tree node (0, {held}) does not match the leaves" in result.stdout
    assert "stored tree node (4, 3) does not match the leaves" in result.stdout


async def test_the_tree_pass_compares_whole_tiles_and_names_each_node_of_one_that_differs(
    fresh_pg: Backend, postgres_admin_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tiles compared a batch at a time, batches cut short (as on a large log): a damaged hash and a
    tile row gone are named node by node, and no node is named that storage holds as the leaves give."""
    _, _, _, verifier = await recorded_and_integrated(fresh_pg, 600)  # 2 tiles at level 0, then rows
    await as_insider(postgres_admin_url, fresh_pg,
                     "UPDATE merkle_tiles SET hashes = overlay(hashes "
                     "PLACING decode(repeat('ab', 32), 'hex') FROM 7 * 32 + 1 FOR 32) "
                     "WHERE level = 0 AND tile_index = 0",
                     "DELETE FROM merkle_tiles WHERE level = 0 AND tile_index = 1")
    monkeypatch.setattr(audit, "CHUNK", 64)
    monkeypatch.setattr(audit, "NODES_PER_QUERY", 100)
    engine = make_engine(fresh_pg.settings.resolved_database_url)
    try:
        async with engine.connect() as connection:
            findings = [str(finding) async for finding in audit.run_pass("tree", connection, verifier)]
    finally:
        await engine.dispose()
    assert findings == [f"log_index {index}: stored tree node (0, {index}) does not match the leaves"
                        for index in (7, *range(256, 512))]


async def test_audit_names_a_deleted_middle_entry(
    fresh_pg: Backend, postgres_admin_url: str, tmp_path: Path
) -> None:
    _, chain, _, _ = await recorded_and_integrated(fresh_pg, 8)
    victim = chain[4]
    await as_insider(
        postgres_admin_url, fresh_pg,
        "DELETE FROM actor_identities WHERE entry_id = (SELECT id FROM ledger_entries "
        f"WHERE entry_hash = {stored_hash(victim['entry_hash'])})",
        f"DELETE FROM ledger_entries WHERE entry_hash = {stored_hash(victim['entry_hash'])}",
    )
    result = run_audit(fresh_pg, tmp_path)
    assert result.returncode == 1
    assert f"log_index {victim['log_index']}" in result.stdout
    assert chain[5]["entry_hash"] in result.stdout, "the next entry's broken link is named"


async def _chains_pass(backend: Backend, verifier: Verifier) -> list[str]:
    engine = make_engine(backend.settings.resolved_database_url)
    try:
        async with engine.connect() as connection:
            return [str(finding) async for finding in audit.run_pass("chains", connection, verifier)]
    finally:
        await engine.dispose()


async def _chains_pass_in_parts(backend: Backend, parts: int) -> list[list[str]]:
    """Each part's findings, as `seenby audit` cuts the chains pass for `parts` processes."""
    engine = make_engine(backend.settings.resolved_database_url)
    try:
        async with engine.connect() as connection:
            jobs = [job for job in await audit.plan(connection, chains_parts=parts) if job.name == "chains"]
            return [[str(finding) async for finding in audit.run_pass(
                "chains", connection, None, customers=job.customers)] for job in jobs]  # type: ignore[arg-type]
    finally:
        await engine.dispose()


async def test_the_chains_pass_follows_each_chain_in_order_whatever_order_the_table_holds(
    fresh_pg: Backend, postgres_admin_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three customers' chains, interleaved, read in chunks of 3 rows. Two lose an entry: the same
    faults of the same entries are named, by customer, when an insider renumbers the entries so
    that the table holds every chain backwards. Then the third's fourth entry is given its third's
    position (the unique index dropped): it is named, and so are the entries its chain finds out
    of place, as reading the chain in order names them (a repeated position never takes the
    chain back to claim a gap that is not there)."""
    monkeypatch.setattr(audit, "CHUNK", 3)
    customers = sorted(f"cust-{uuid.uuid4().hex[:8]}" for _ in range(3))
    app = create_app(fresh_pg.settings)
    tokens = Tokens(app)
    async for client in serve(app):
        response = await client.post("/v1/accesses:batch", json={
            "events": [access_event(customers[n % 3], clip_id=f"clip-{n}") for n in range(24)]},
            headers=tokens.service())
        assert response.status_code == 201
        chains = [await fetch_chain(client, customer, tokens.regulator()) for customer in customers]
    verifier = Verifier.for_public_key(fresh_pg.settings.log_origin,
                                       raw_public_key(app.state.keys.signing_key))
    assert await _chains_pass(fresh_pg, verifier) == []

    def at(customer: int, seq: int) -> str:
        return f"entry {chains[customer][seq]['entry_hash']} (customer {customers[customer]}, seq {seq})"

    def out_of_place(seq: int, expected: int) -> str:
        return f"customer_seq {seq} where {expected} was expected: the customer's chain is not complete"

    unlinked, disagreeing = "prev_hash does not link to the entry before it", \
        "stored columns disagree with the canonical bytes"
    gaps = []
    for customer, gap in ((0, 4), (1, 2)):
        await as_insider(postgres_admin_url, fresh_pg, "DELETE FROM ledger_entries "
                         f"WHERE entry_hash = {stored_hash(chains[customer][gap]['entry_hash'])}")
        gaps += [f"{at(customer, gap + 1)}: {out_of_place(gap + 1, gap)}",
                 f"{at(customer, gap + 1)}: {unlinked}"]
    assert await _chains_pass(fresh_pg, verifier) == gaps
    await as_insider(postgres_admin_url, fresh_pg,  # the identities kept apart follow their entries
                     "UPDATE ledger_entries SET id = 1000000000 - id",
                     "UPDATE ledger_entries SET id = id - 900000000",  # back in the serial's range
                     "UPDATE actor_identities SET entry_id = 100000000 - entry_id")
    assert await _chains_pass(fresh_pg, verifier) == gaps

    await as_insider(postgres_admin_url, fresh_pg, "DROP INDEX uq_ledger_entries_customer_seq",
                     "UPDATE ledger_entries SET customer_seq = 2 "
                     f"WHERE entry_hash = {stored_hash(chains[2][3]['entry_hash'])}")
    # In chain order, ties by id: the moved entry (now the lower id) first, then the third entry.
    moved = at(2, 3).replace("seq 3)", "seq 2)")
    whole = await _chains_pass(fresh_pg, verifier)
    assert whole == [
        *gaps,
        f"{moved}: {disagreeing}", f"{moved}: {unlinked}",
        f"{at(2, 2)}: {out_of_place(2, 3)}", f"{at(2, 2)}: {unlinked}",
        f"{at(2, 4)}: {out_of_place(4, 3)}", f"{at(2, 4)}: {unlinked}",
    ]
    # Cut into a part a customer, the pass names the same faults in the same order.
    assert [len(part) for part in await _chains_pass_in_parts(fresh_pg, 3)] == [2, 2, 6]
    assert [finding for part in await _chains_pass_in_parts(fresh_pg, 3) for finding in part] == whole


async def test_audit_names_two_swapped_entries(
    fresh_pg: Backend, postgres_admin_url: str, tmp_path: Path
) -> None:
    _, chain, _, _ = await recorded_and_integrated(fresh_pg, 8)
    a, b = chain[2], chain[5]
    await as_insider(
        postgres_admin_url, fresh_pg,
        "UPDATE ledger_entries SET canonical = CASE encode(entry_hash, 'hex') "
        f"WHEN '{a['entry_hash']}' THEN "
        f"(SELECT canonical FROM ledger_entries WHERE entry_hash = {stored_hash(b['entry_hash'])}) "
        f"ELSE (SELECT canonical FROM ledger_entries WHERE entry_hash = {stored_hash(a['entry_hash'])}) END "
        f"WHERE encode(entry_hash, 'hex') IN ('{a['entry_hash']}', '{b['entry_hash']}')",
    )
    result = run_audit(fresh_pg, tmp_path)
    assert result.returncode == 1
    for swapped in (a, b):
        assert swapped["entry_hash"] in result.stdout
        assert f"log_index {swapped['log_index']}" in result.stdout


async def test_the_integrator_survives_losing_its_database_connection(
    fresh_pg: Backend, postgres_admin_url: str
) -> None:
    """The leader's connection is killed under it (a failover, an idle-session reaper): the driver
    error must not end the integrator, and its advisory lock must not stay held by a dead socket."""
    app = create_app(fresh_pg.settings)
    tokens = Tokens(app)
    async for client in serve(app):
        customer = f"cust-{uuid.uuid4().hex[:10]}"
        for _ in range(3):
            assert (await client.post("/v1/accesses", json=access_event(customer),
                                      headers=tokens.service())).status_code == 201
        await wait_until_integrated(client, "", [customer], tokens.regulator())
        killed = await superuser_value(
            postgres_admin_url, fresh_pg,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' "
            "AND objid = $1 AND granted AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())", LEADER_LOCK_KEY)
        assert killed == 1, "the integrator's leadership lock was not found"
        for _ in range(3):
            assert (await client.post("/v1/accesses", json=access_event(customer),
                                      headers=tokens.service())).status_code == 201
        await wait_until_integrated(client, "", [customer], tokens.regulator())
        assert_chain_intact(await fetch_chain(client, customer, tokens.regulator()))


async def test_connections_the_server_closed_are_never_handed_out(
    fresh_pg: Backend, postgres_admin_url: str
) -> None:
    """Every connection of the database is closed by the server while idle in the pool (a restart,
    a failover, an idle-session reaper): the requests after it get live connections, none fails."""
    app = create_app(fresh_pg.settings)
    tokens = Tokens(app)
    customer = f"cust-{uuid.uuid4().hex[:10]}"

    async def traffic(client: httpx.AsyncClient) -> list[int]:
        """Writes and reads at once, so that several pooled connections are in use."""
        requests = [client.post("/v1/accesses", json=access_event(customer), headers=tokens.service())
                    for _ in range(4)]
        requests.append(client.post("/v1/accesses:batch", headers=tokens.service(),
                                    json={"events": [access_event(customer) for _ in range(5)]}))
        requests += [client.get(f"/v1/customers/{customer}/accesses", headers=tokens.customer(customer))
                     for _ in range(4)]
        requests += [client.get("/v1/log/checkpoint") for _ in range(2)]
        requests.append(client.get(f"/v1/customers/{customer}/consent", headers=tokens.customer(customer)))
        return [response.status_code for response in await asyncio.gather(*requests)]

    async for client in serve(app):
        assert set(await traffic(client)) <= {200, 201}
        await wait_until_integrated(client, "", [customer], tokens.regulator())
        closed = await superuser_value(
            postgres_admin_url, fresh_pg,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        assert closed >= 3, "the pool should have held several connections"
        await asyncio.sleep(0.3)  # the sockets' closing reaches the app's event loop
        for _ in range(3):
            statuses = await traffic(client)
            assert set(statuses) <= {200, 201}, statuses
        await wait_until_integrated(client, "", [customer], tokens.regulator())
        assert_chain_intact(chain := await fetch_chain(client, customer, tokens.regulator()))
        assert len(chain) == 36


async def test_postgresql_crashed_and_restarted(tmp_path: Path) -> None:
    """PostgreSQL stops as in a power cut and comes back: meanwhile requests get a 503 problem
    with Retry-After (never a 500), afterwards they succeed without a restart of seenby, and every
    acknowledged event is in the chain and the log exactly once."""
    try:  # a server of its own, which this test stops; durable: an acknowledged commit must survive
        server = ThrowawayPostgres(durable=True)
    except RuntimeError as exc:  # SEENBY_TEST_DATABASE_URL given, no local server binaries
        unavailable(f"this test stops a PostgreSQL of its own: {exc}")
    try:
        owner_url, app_url, _ = await _create_database(server.start())
        settings = base_settings(tmp_path, database_url=app_url, migration_database_url=owner_url)
        await asyncio.to_thread(upgrade, settings)
        app = create_app(settings)
        tokens = Tokens(app)
        customer = f"cust-{uuid.uuid4().hex[:10]}"
        acknowledged: set[str] = set()

        async def record(client: httpx.AsyncClient) -> httpx.Response:
            event = access_event(customer)
            response = await client.post("/v1/accesses", json=event, headers=tokens.service())
            if response.status_code == 201:
                acknowledged.add(event["event_id"])
            return response

        async for client in serve(app):
            for _ in range(3):
                assert (await record(client)).status_code == 201
            await wait_until_integrated(client, "", [customer], tokens.regulator())
            await asyncio.to_thread(server.crash)
            down = [await record(client),
                    await client.get(f"/v1/customers/{customer}/accesses", headers=tokens.customer(customer)),
                    await client.get("/v1/log/proof/inclusion", params={"log_index": 0, "tree_size": 1})]
            for response in down:
                assert response.status_code == 503, response.text
                assert response.headers["content-type"] == "application/problem+json"
                assert response.headers["retry-after"]
            await asyncio.to_thread(server.resume)
            for _ in range(3):
                assert (await record(client)).status_code == 201
            # And a restart while seenby is idle: the pool holds only connections the crash closed.
            await asyncio.to_thread(server.crash)
            await asyncio.to_thread(server.resume)
            await asyncio.sleep(0.3)  # the sockets' closing reaches the app's event loop
            for _ in range(3):
                assert (await record(client)).status_code == 201
            await wait_until_integrated(client, "", [customer], tokens.regulator())
            chain = await fetch_chain(client, customer, tokens.regulator())
            assert_chain_intact(chain)
            recorded = [item["entry"]["event_id"] for item in chain]
            assert sorted(recorded) == sorted(acknowledged) and len(recorded) == 9
    finally:
        server.stop()


async def a_log_of_every_kind(settings: Settings, customer: str) -> list[dict]:
    """One customer's chain holding every kind of entry, and the forms that fill the repeated
    columns differently: human and algorithm actors, a refused attempt, an event_id in capitals, an
    occurred_at with an offset and nanoseconds, a decision, an objection, consent, a grant withdrawn,
    a deletion request. The five human accesses come first, flagged unconsented."""
    app = create_app(settings)
    tokens = Tokens(app)
    async for client in serve(app):
        humans = [access_event(customer, clip_id=f"clip-{i}", actor=human_actor(f"emp-{i}"))
                  for i in range(5)]
        recorded = await client.post("/v1/accesses:batch", json={"events": humans}, headers=tokens.service())
        assert recorded.status_code == 201, recorded.text
        odd = access_event(customer, event_id=str(uuid.uuid4()).upper(), actor=algorithm_actor(),
                           occurred_at="2026-11-24T10:15:02.123456789+01:00", purpose="security")
        assert (await client.post("/v1/accesses", json=odd, headers=tokens.service())).status_code == 201
        refused = await client.post("/v1/access-tickets", headers=tokens.service(), json={
            "audience": "clip-store", "event": access_event(customer, clip_id="clip-5")})
        assert refused.status_code == 403, refused.text
        decided = await client.post("/v1/access-decisions", headers=tokens.service(), json={
            "customer_id": customer, "clip_id": "clip-9", "actor": human_actor(), "action": "view",
            "purpose": "troubleshooting"})
        assert decided.status_code == 201, decided.text
        objected_to = recorded.json()["receipts"][0]["entry_hash"]
        objection = await client.post(f"/v1/customers/{customer}/objections",
                                      json={"entry_hash": objected_to, "reason": "who is that?"},
                                      headers=tokens.customer(customer))
        assert objection.status_code == 201, objection.text
        as_customer = tokens.customer(customer)
        consent = await client.put(f"/v1/customers/{customer}/consent", headers=as_customer,
                                   json={"human_review": True, "model_training": False})
        assert consent.status_code == 200, consent.text
        grants = f"/v1/customers/{customer}/troubleshooting-grants"
        grant = await client.post(grants, json={"clip_id": "clip-7"}, headers=as_customer)
        assert grant.status_code == 201, grant.text
        withdrawn = await client.post(f"{grants}/{grant.json()['id']}/withdraw", headers=as_customer)
        assert withdrawn.status_code == 200, withdrawn.text
        deletion = await client.post(f"/v1/customers/{customer}/deletion-requests",
                                     json={"clip_ids": ["clip-0"]}, headers=as_customer)
        assert deletion.status_code == 202, deletion.text
        await wait_until_integrated(client, "", [customer], tokens.regulator())
        chain = await fetch_chain(client, customer, tokens.regulator())
    assert {"access", "access_refused", "access_decision", "objection", "consent_changed",
            "deletion_requested"} <= {item["kind"] for item in chain}
    return chain


async def test_the_audit_finds_every_kind_of_entry_as_its_bytes_say(
    settings: Settings, tmp_path: Path
) -> None:
    """No false finding: the columns and identities every writer fills are what the audit expects."""
    await a_log_of_every_kind(settings, f"cust-{uuid.uuid4().hex[:8]}")
    backend = Backend("sqlite" if settings.resolved_database_url.startswith("sqlite") else "postgresql",
                      settings)
    result = run_audit(backend, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


async def test_audit_names_every_column_and_identity_edited_behind_the_service(
    fresh_pg: Backend, postgres_admin_url: str, tmp_path: Path
) -> None:
    """Reads filter, count and show by the columns that repeat an entry's bytes, and regulators by
    the identity kept apart: an insider's edit to any of them changes what readers are told, so the
    audit names each edited entry."""
    chain = await a_log_of_every_kind(fresh_pg.settings, f"cust-{uuid.uuid4().hex[:8]}")
    by_kind: dict[str, list[dict]] = {}
    for item in chain:
        by_kind.setdefault(item["kind"], []).append(item)
    accesses = [item for item in by_kind["access"] if item["actor"]["type"] == "human"]
    assert len(accesses) == 5 and all(item["flags"] == ["unconsented"] for item in accesses)

    def where(item: dict) -> str:
        return f"WHERE entry_hash = {stored_hash(item['entry_hash'])}"

    edits = {  # entry edited -> what the audit must say of it
        accesses[0]["entry_hash"]: (
            "UPDATE actor_identities SET employee_id = 'emp-innocent' WHERE entry_id = (SELECT id FROM "
            f"ledger_entries {where(accesses[0])})", "does not match its id_commitment"),
        accesses[1]["entry_hash"]: (f"UPDATE ledger_entries SET kind = 'x_hidden' {where(accesses[1])}",
                                    "disagree with the canonical bytes: kind"),
        accesses[2]["entry_hash"]: (f"UPDATE ledger_entries SET flags = '' {where(accesses[2])}",
                                    "disagree with the canonical bytes: flags"),
        accesses[3]["entry_hash"]: (
            "UPDATE ledger_entries SET purpose = 'security', "
            f"recorded_at_us = recorded_at_us - 400 * 86400000000 {where(accesses[3])}",
            "disagree with the canonical bytes: recorded_at_us, purpose"),
        accesses[4]["entry_hash"]: (
            "DELETE FROM actor_identities WHERE entry_id = (SELECT id FROM ledger_entries "
            f"{where(accesses[4])})", "the human actor's identity is missing"),
        by_kind["access_decision"][0]["entry_hash"]: (
            f"UPDATE ledger_entries SET clip_id = 'clip-other' {where(by_kind['access_decision'][0])}",
            "disagree with the canonical bytes: clip_id"),
        by_kind["objection"][0]["entry_hash"]: (
            f"UPDATE ledger_entries SET actor_organization = 'someone else' {where(by_kind['objection'][0])}",
            "disagree with the entry it objects to: actor_organization"),
        by_kind["deletion_requested"][0]["entry_hash"]: (
            f"UPDATE ledger_entries SET actor_type = 'human' {where(by_kind['deletion_requested'][0])}",
            "disagree with the canonical bytes: actor_type"),
    }
    await as_insider(postgres_admin_url, fresh_pg, *(statement for statement, _ in edits.values()),
                     *(f"INSERT INTO customer_heads VALUES ('{customer}', 0, sha256(''))"
                       for customer in ("cust-0", "cust-~")))  # chains cut between the customers
    # However many parts the chains pass is cut into, the findings are the same, in the same order.
    [whole] = await _chains_pass_in_parts(fresh_pg, 1)
    parts = await _chains_pass_in_parts(fresh_pg, 3)
    assert len(parts) == 3 and [finding for part in parts for finding in part] == whole
    assert sum(bool(part) for part in parts) >= 1 and len(whole) >= len(edits)
    result = run_audit(fresh_pg, tmp_path)
    assert result.returncode == 1
    named = [line for line in result.stdout.splitlines() if line.startswith("entry ")]
    for entry_hash, (_, said) in edits.items():
        assert any(line.startswith(f"entry {entry_hash}") and said in line for line in named), (said, named)
    assert len(named) == len(edits), named
