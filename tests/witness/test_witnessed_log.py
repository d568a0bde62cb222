"""seenby with a witness policy, against real `seenby witness serve` processes: checkpoints are
submitted, cosigned and served only once the quorum has cosigned them; a witness that holds another
history is caught; `seenby verify ... --policy` checks the quorum."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from service.keys import DEV_SIGNING_KEY_FILE, load_keys
from service.ledger import integrator, tree_store
from service.ledger.checkpoint import (
    COSIGNATURE_TYPE,
    Checkpoint,
    parse_verifier_key,
    raw_public_key,
    sign_checkpoint,
    verifier_key,
)
from service.ledger.customer_index import store as index_store
from service.ledger.tree_store import StoredCheckpoint
from service.main import create_app
from service.migrate import upgrade
from service.settings import Settings
from service.tlog import service as tlog_service
from service.verify import VerificationError, completeness, witnessed
from service.witness import store as witness_store
from service.witness.cosignature import cosign
from service.witness.policy import parse_policy
from service.witness.submitter import Submitter
from tests.chains import fetch_chain
from tests.conftest import Backend, Tokens, base_settings, serve
from tests.factories import access_event
from tests.pg import free_port
from tests.servers import record_integrated, seenby_command, serving
from tests.witness.logs import submission


@contextlib.contextmanager
def witness_process(folder: Path, name: str, log_vkey: str) -> Iterator[tuple[str, str]]:
    """`seenby witness serve` for this log: its URL and verifier key."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "logs.txt").write_text(f"log {log_vkey}\n")
    if not (folder / "w.pem").exists():  # a restarted witness keeps its key and its state
        (folder / "w.pem").write_bytes(_pem(Ed25519PrivateKey.generate()))
    key = serialization.load_pem_private_key((folder / "w.pem").read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    port_file = folder / "port"
    port = int(port_file.read_text()) if port_file.exists() else free_port()
    port_file.write_text(str(port))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEENBY_")}
    command = [*seenby_command(), "witness", "serve", "--name", name, "--logs", "logs.txt",
               "--key-file", "w.pem", "--state", "w.db", "--port", str(port)]
    with serving(command, env, folder, port, ready_path="/add-checkpoint", ready_status=405) as url:
        yield url, verifier_key(name, raw_public_key(key), COSIGNATURE_TYPE)


def _pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


async def _served_with(client: httpx.AsyncClient, at_least: int, witnesses: set[str],
                       within: float = 20.0) -> str:
    """Wait until /v1/log/checkpoint serves a tree of at least `at_least` cosigned by these."""
    deadline = time.monotonic() + within
    while True:
        response = await client.get("/v1/log/checkpoint")
        if response.status_code == 200:
            note = response.text
            size = int(note.split("\n")[1])
            if size >= at_least and all(f"\u2014 {name} " in note for name in witnesses):
                return note
        assert time.monotonic() < deadline, f"never served a tree of {at_least} cosigned by {witnesses}"
        await asyncio.sleep(0.1)


def _verify_cli(tmp_path: Path, what: str, path: Path, key: str, policy: Path, *more: str
                ) -> subprocess.CompletedProcess[str]:
    (tmp_path / "log.key").write_text(key)
    return subprocess.run([*seenby_command(), "verify", what, str(path), "--key", str(tmp_path / "log.key"),
                           "--policy", str(policy), *more], capture_output=True, text=True, timeout=60)


async def test_checkpoints_are_served_once_the_quorum_cosigned_them(settings: Settings,
                                                                    tmp_path: Path) -> None:
    log_key = load_keys(settings).signing_key
    log_vkey = verifier_key(settings.log_origin, raw_public_key(log_key))
    with witness_process(tmp_path / "w1", "w1.example/witness", log_vkey) as (url1, vkey1), \
            witness_process(tmp_path / "w2", "w2.example/witness", log_vkey) as (url2, vkey2):
        policy_file = tmp_path / "policy.txt"
        policy_file.write_text(f"log {log_vkey}\nwitness W1 {vkey1} {url1}\nwitness W2 {vkey2} {url2}\n"
                               "group both all W1 W2\nquorum both\n")
        app = create_app(settings.model_copy(update={"witness_policy_file": policy_file}))
        tokens = Tokens(app)
        customer = "cust-witnessed"
        async for client in serve(app):
            await record_integrated(client, [access_event(customer) for _ in range(3)], tokens.service(),
                                    tokens.regulator())
            chain = await fetch_chain(client, customer, tokens.regulator())
            note = await _served_with(client, chain[-1]["log_index"] + 1,
                                      {"w1.example/witness", "w2.example/witness"})
            policy = parse_policy(policy_file.read_text())
            assert witnessed(note, policy).startswith("witnessed by W1, W2")
            # An entry's proof, an export and a completeness proof rest on the witnessed checkpoint.
            entry = (await client.get(f"/v1/me/entries/{chain[-1]['entry_hash']}",
                                      headers=tokens.customer(customer))).json()
            assert entry["proof"]["checkpoint"].count("\u2014 ") == 3
            (tmp_path / "entry.json").write_text(json.dumps(entry))
            (tmp_path / "checkpoint.txt").write_text(note)
            for what, path in (("checkpoint", tmp_path / "checkpoint.txt"),
                               ("entry", tmp_path / "entry.json")):
                verified = _verify_cli(tmp_path, what, path, log_vkey, policy_file)
                assert verified.returncode == 0, verified.stdout + verified.stderr
                assert "witnessed by W1, W2" in verified.stdout
            proof = (await client.get("/v1/me/completeness", headers=tokens.customer(customer))).json()
            assert witnessed(proof["checkpoint"], policy)
            # The log's signature alone is not the quorum.
            unwitnessed = note[:note.index("\u2014 w1.example")]
            with pytest.raises(VerificationError, match="quorum"):
                witnessed(unwitnessed, policy)
            (tmp_path / "bare.txt").write_text(unwitnessed)
            refused = _verify_cli(tmp_path, "checkpoint", tmp_path / "bare.txt", log_vkey, policy_file)
            assert refused.returncode == 1 and "quorum" in refused.stderr
            assert "cosigned by none; missing W1, W2" in refused.stderr
            metrics = (await client.get("/metrics")).text
            assert 'seenby_witness_cosigned_size{witness="W1"}' in metrics


async def test_without_the_quorum_the_last_witnessed_checkpoint_stays_served(
    settings: Settings, tmp_path: Path
) -> None:
    log_vkey = verifier_key(settings.log_origin, raw_public_key(load_keys(settings).signing_key))
    with witness_process(tmp_path / "w1", "w1.example/witness", log_vkey) as (url1, vkey1):
        down = f"http://127.0.0.1:{free_port()}"  # a witness nobody runs
        policy_file = tmp_path / "policy.txt"
        silent = Ed25519PrivateKey.generate()
        vkey2 = verifier_key("w2.example/witness", raw_public_key(silent), COSIGNATURE_TYPE)
        policy_file.write_text(f"witness W1 {vkey1} {url1}\nwitness W2 {vkey2} {down}\n"
                               "group both all W1 W2\nquorum both\n")
        for fail_open, status in ((False, 503), (True, 200)):
            app = create_app(settings.model_copy(update={"witness_policy_file": policy_file,
                                                        "witness_fail_open": fail_open}))
            tokens = Tokens(app)
            async for client in serve(app):
                unreachable = 'seenby_witness_failures_total{kind="unreachable",witness="W2"}'
                before = _metric(await client.get("/metrics"), unreachable)
                await record_integrated(client, [access_event("cust-unwitnessed")], tokens.service(),
                                        tokens.regulator())
                await asyncio.sleep(1.0)  # rounds of submissions, W2 unreachable
                response = await client.get("/v1/log/checkpoint")
                assert response.status_code == status, response.text
                if fail_open:
                    assert "\u2014 w2.example" not in response.text
                assert _metric(await client.get("/metrics"), unreachable) > before


class _HeldWitnesses:
    """W1 and W2 in an all-of-both quorum, at an address nobody serves, their keys held by the
    test: it keeps their cosignatures itself, as the submitter keeps a witness's answer."""

    NAMES: ClassVar[dict[str, str]] = {"W1": "w1.example/witness", "W2": "w2.example/witness"}

    def __init__(self, folder: Path) -> None:
        self.keys = {name: Ed25519PrivateKey.generate() for name in self.NAMES}
        vkeys = {name: verifier_key(self.NAMES[name], raw_public_key(key), COSIGNATURE_TYPE)
                 for name, key in self.keys.items()}
        nobody = f"http://127.0.0.1:{free_port()}"
        text = (f"witness W1 {vkeys['W1']} {nobody}\nwitness W2 {vkeys['W2']} {nobody}\n"
                "group both all W1 W2\nquorum both\n")
        self.policy_file = folder / "policy.txt"
        self.policy_file.write_text(text)
        self.policy = parse_policy(text)

    async def cosign(self, database: Any, note: str, size: int, *witnesses: str) -> None:
        """Keep these witnesses' cosignatures of the checkpoint in `note`, under `size`."""
        body = note[:note.index("\n\n") + 1]
        async with database.write([]) as session:
            for name in witnesses:
                line = cosign(body, self.NAMES[name], self.keys[name], 1_700_000_000 + size).line()
                await witness_store.keep(session, witness_store.Cosignature(size, name, line, 0))


async def test_the_last_checkpoint_to_meet_the_quorum_stays_served_however_long_a_witness_is_silent(
    settings: Settings, tmp_path: Path
) -> None:
    """W2 of an all-of-both quorum goes silent after cosigning a checkpoint, while W1 cosigns the
    log's next hundreds: that checkpoint is still the one served, with both cosignatures."""
    witnesses = _HeldWitnesses(tmp_path)
    app = create_app(settings.model_copy(update={"witness_policy_file": witnesses.policy_file}))
    tokens = Tokens(app)
    async for client in serve(app):
        await record_integrated(client, [access_event("cust-quorum")], tokens.service(), tokens.regulator())
        async with app.state.database.read_sessions() as session:
            both_signed = await tree_store.latest_checkpoint(session)
        assert both_signed is not None
        await witnesses.cosign(app.state.database, both_signed.note, both_signed.tree_size, "W1", "W2")
        served = await client.get("/v1/log/checkpoint")
        assert served.status_code == 200 and served.text.startswith(both_signed.note)
        for size in range(both_signed.tree_size + 1, both_signed.tree_size + 300):  # W1 alone from here
            await witnesses.cosign(app.state.database, both_signed.note, size, "W1")
        served = await client.get("/v1/log/checkpoint")
        assert served.status_code == 200, served.text
        assert served.text.startswith(both_signed.note)
        assert "\u2014 w1.example" in served.text and "\u2014 w2.example" in served.text


async def test_before_any_checkpoint_is_witnessed_the_index_history_is_kept_for_one_exchange_only(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failing open with no witness answering, no checkpoint older than an exchange can become the
    first witnessed one (the log submits only its newest): what passes overwrote before it goes."""
    monkeypatch.setattr(integrator, "HISTORY_SWEEP_SECONDS", 0.0)
    monkeypatch.setattr(tlog_service, "_SUBMISSION_SLACK_SECONDS", 0.0)
    silent = Ed25519PrivateKey.generate()
    vkey = verifier_key("w1.example/witness", raw_public_key(silent), COSIGNATURE_TYPE)
    (tmp_path / "policy.txt").write_text(f"witness W1 {vkey} http://127.0.0.1:{free_port()}\nquorum W1\n")
    app = create_app(settings.model_copy(update={"witness_policy_file": tmp_path / "policy.txt",
                                                "witness_fail_open": True, "witness_timeout_seconds": 0.5}))
    tokens = Tokens(app)
    async for client in serve(app):

        async def kept_after_a_pass(client: httpx.AsyncClient = client) -> tuple[int, set[int]]:
            await record_integrated(client, [access_event("cust-open")], tokens.service(), tokens.regulator())
            async with app.state.database.read_sessions() as session:
                leaf = await index_store.latest_index_leaf(session)
                kept = set((await session.execute(text("SELECT covers FROM customer_index_undo"))).scalars())
            assert leaf is not None
            return leaf.log_index, kept

        first, kept = await kept_after_a_pass()
        assert first in kept
        await asyncio.sleep(1.0)  # the first pass's checkpoint is now older than an exchange
        second, kept = await kept_after_a_pass()
        assert kept == {second}


async def test_a_snapshot_older_than_the_newest_witnessed_checkpoint_is_served_its_own(
    settings: Settings, tmp_path: Path
) -> None:
    """The newest size that met the quorum is where later searches stop, but a reader whose snapshot
    is older than its cosignatures still gets the newest witnessed checkpoint it can see."""
    witnesses = _HeldWitnesses(tmp_path)
    policy = witnesses.policy
    app = create_app(settings.model_copy(update={"witness_policy_file": witnesses.policy_file}))
    tokens = Tokens(app)
    async for client in serve(app):
        database = app.state.database

        async def witnessed_now(client: httpx.AsyncClient = client,
                                database: Any = database) -> StoredCheckpoint:
            await record_integrated(client, [access_event("cust-snap")], tokens.service(), tokens.regulator())
            async with database.read_sessions() as session:
                checkpoint = await tree_store.latest_checkpoint(session)
            assert checkpoint is not None
            await witnesses.cosign(database, checkpoint.note, checkpoint.tree_size, "W1", "W2")
            return checkpoint

        first = await witnessed_now()
        async with database.snapshot_sessions() as old, old.begin():
            await old.execute(text("SELECT count(*) FROM checkpoints"))  # the snapshot starts here
            second = await witnessed_now()
            async with database.snapshot_sessions() as new, new.begin():
                found = await witness_store.witnessed_checkpoint(new, policy)
                assert found is not None and found.tree_size == second.tree_size > first.tree_size
            seen = await witness_store.witnessed_checkpoint(old, policy)
            assert seen is not None and seen.tree_size == first.tree_size


async def test_completeness_proves_against_the_witnessed_checkpoint_while_the_log_has_moved_on(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkpoint served trails the latest pass while the witnesses have not cosigned it: a
    customer's completeness proof is then made against the index as of the served checkpoint's
    index leaf, and verifies, for customers whose heads moved since, who joined since, or none.
    What the passes overwrote is kept only back to the served checkpoint."""
    monkeypatch.setattr(integrator, "HISTORY_SWEEP_SECONDS", 0.0)  # swept at every pass
    witnesses = _HeldWitnesses(tmp_path)
    policy = witnesses.policy
    app = create_app(settings.model_copy(update={"witness_policy_file": witnesses.policy_file}))
    tokens = Tokens(app)
    early = [f"cust-early-{n}" for n in range(6)]
    async for client in serve(app):
        await record_integrated(client, [access_event(c) for c in early], tokens.service(),
                                tokens.regulator())
        async with app.state.database.read_sessions() as session:
            signed = await tree_store.latest_checkpoint(session)
        assert signed is not None

        async def cosigned_by_both(checkpoint: StoredCheckpoint) -> None:
            await witnesses.cosign(app.state.database, checkpoint.note, checkpoint.tree_size, "W1", "W2")

        async def kept_history() -> set[int]:
            async with app.state.database.read_sessions() as session:
                return set((await session.execute(text("SELECT covers FROM customer_index_undo"))).scalars())

        await cosigned_by_both(signed)
        for round_ in range(3):  # three more passes the witnesses never see
            moved = (early[0], early[1], f"cust-late-{round_}")
            await record_integrated(client, [access_event(c) for c in moved], tokens.service(),
                                    tokens.regulator())
        served = await client.get("/v1/log/checkpoint")
        assert served.status_code == 200 and served.text.startswith(signed.note)
        verifier = parse_verifier_key((await client.get("/v1/log/key")).text.strip())
        for customer in (early[0], early[2], "cust-late-0", "cust-nobody"):
            proof = await client.get(f"/v1/customers/{customer}/completeness",
                                     headers=tokens.regulator())
            assert proof.status_code == 200, proof.text
            document = proof.json()
            assert document["checkpoint"] == served.text
            witnessed(document["checkpoint"], policy)
            shown = [item for item in await fetch_chain(client, customer, tokens.regulator())
                     if item["log_index"] is not None and item["log_index"] < signed.tree_size]
            said = completeness(document, shown, verifier, customer)
            # Up to the index leaf of the witnessed checkpoint: its last leaf.
            assert said.startswith(f"complete: {len(shown)} entr") and said.endswith(
                f"up to log size {signed.tree_size - 1}"), said
        passes_since = await kept_history()
        assert len(passes_since) == 3 and min(passes_since) > signed.tree_size, passes_since
        # The witnesses catch up with the latest checkpoint, the log moves on once more: only the
        # newest pass is kept.
        async with app.state.database.read_sessions() as session:
            caught_up = await tree_store.latest_checkpoint(session)
        assert caught_up is not None
        await cosigned_by_both(caught_up)
        await record_integrated(client, [access_event(early[0])], tokens.service(), tokens.regulator())
        assert min(await kept_history()) > caught_up.tree_size
        proof = (await client.get(f"/v1/customers/{early[0]}/completeness",
                                  headers=tokens.regulator())).json()
        shown = [item for item in await fetch_chain(client, early[0], tokens.regulator())
                 if item["log_index"] is not None and item["log_index"] < caught_up.tree_size]
        assert completeness(proof, shown, verifier, early[0]).startswith(f"complete: {len(shown)} entries")
        # History the log did not keep (as for a policy newer than the passes) is not made up: 503.
        async with app.state.database.write([]) as session:
            await session.execute(text("DELETE FROM customer_index_undo"))
        refused = await client.get(f"/v1/customers/{early[0]}/completeness", headers=tokens.regulator())
        assert refused.status_code == 503, refused.text


async def test_a_witness_holding_another_history_is_caught_and_its_evidence_kept(
    settings: Settings, tmp_path: Path
) -> None:
    log_key = load_keys(settings).signing_key
    log_vkey = verifier_key(settings.log_origin, raw_public_key(log_key))
    with witness_process(tmp_path / "w1", "w1.example/witness", log_vkey) as (url1, vkey1):
        # Someone with the log's key showed this witness a different tree of one entry.
        fork = sign_checkpoint(Checkpoint(settings.log_origin, 1, bytes(range(32))), log_key)
        async with httpx.AsyncClient() as http:
            shown = await http.post(f"{url1}/add-checkpoint", content=submission(0, [], fork))
        assert shown.status_code == 200
        policy_file = tmp_path / "policy.txt"
        policy_file.write_text(f"witness W1 {vkey1} {url1}\nquorum W1\n")
        app = create_app(settings.model_copy(update={"witness_policy_file": policy_file}))
        tokens = Tokens(app)
        async for client in serve(app):
            sample = 'seenby_witness_conflicts_total{witness="W1"}'
            before = _metric(await client.get("/metrics"), sample)  # one registry for every test
            await record_integrated(client, [access_event("cust-split") for _ in range(2)], tokens.service(),
                                    tokens.regulator())
            deadline = time.monotonic() + 20
            while _metric(await client.get("/metrics"), sample) <= before:
                assert time.monotonic() < deadline, "the conflict was never reported"
                await asyncio.sleep(0.1)
            assert (await client.get("/v1/log/checkpoint")).status_code == 503  # never cosigned
    # The evidence: what was sent (the log's checkpoint and proof) and what the witness answered.
    rows = await _conflicts(settings)
    assert rows and rows[0].witness == "W1" and rows[0].status == 422
    assert rows[0].request.startswith("old 1\n") and "inconsistent" in rows[0].response


def _metric(response: httpx.Response, sample: str) -> float:
    found = re.search(re.escape(sample) + r" ([0-9.e+]+)", response.text)
    return float(found.group(1)) if found else 0.0


async def test_two_of_three_witnesses_keep_it_published_and_it_catches_up_after_an_outage(
    fresh_pg: Backend, tmp_path: Path
) -> None:
    settings = fresh_pg.settings
    log_vkey = verifier_key(settings.log_origin, raw_public_key(load_keys(settings).signing_key))
    names = [f"w{n}.example/witness" for n in (1, 2, 3)]
    running: dict[int, contextlib.ExitStack] = {}
    urls, vkeys = {}, {}
    for n in (1, 2, 3):
        running[n] = contextlib.ExitStack()
        urls[n], vkeys[n] = running[n].enter_context(
            witness_process(tmp_path / f"w{n}", names[n - 1], log_vkey))
    policy_file = tmp_path / "policy.txt"
    policy_file.write_text("".join(f"witness W{n} {vkeys[n]} {urls[n]}\n" for n in (1, 2, 3))
                           + "group two-of-three 2 W1 W2 W3\nquorum two-of-three\n")
    policy = parse_policy(policy_file.read_text())
    app = create_app(settings.model_copy(update={"witness_policy_file": policy_file}))
    tokens = Tokens(app)
    try:
        async for client in serve(app):
            size = await _recorded_to(client, tokens, "cust-2of3-a")
            note = await _served_with(client, size, set())
            assert len(policy.cosigned(note)) >= 2 and policy.satisfied_by(policy.cosigned(note))
            running.pop(3).close()  # one witness down: still published
            size = await _recorded_to(client, tokens, "cust-2of3-b")
            note = await _served_with(client, size, set())
            assert policy.satisfied_by(policy.cosigned(note))
            running.pop(2).close()  # two down: the served checkpoint stops advancing
            stuck_at = int((await client.get("/v1/log/checkpoint")).text.split("\n")[1])
            size = await _recorded_to(client, tokens, "cust-2of3-c")
            await asyncio.sleep(1.5)
            assert int((await client.get("/v1/log/checkpoint")).text.split("\n")[1]) == stuck_at < size
            assert _metric(await client.get("/metrics"), "seenby_witnessed_checkpoint_age_seconds") > 0
            running[2] = contextlib.ExitStack()  # back, from its state file: caught up, no restart
            running[2].enter_context(witness_process(tmp_path / "w2", names[1], log_vkey))
            note = await _served_with(client, size, set())
            assert policy.satisfied_by(policy.cosigned(note))
            # The restarted witness remembers what it cosigned: a fork of that tree gets 422.
            await _refuses_a_fork(urls[2], settings, int(note.split("\n")[1]))
    finally:
        for stack in running.values():
            stack.close()


async def _refuses_a_fork(url: str, settings: Settings, size: int) -> None:
    """Someone with the log's key shows the witness another tree of the size it holds: 422."""
    fork = sign_checkpoint(Checkpoint(settings.log_origin, size, bytes(32)), load_keys(settings).signing_key)
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{url}/add-checkpoint", content=submission(size, [], fork))
        if answer.status_code == 409:  # the log advanced it meanwhile: fork the size it now holds
            held = int(answer.text)
            fork = sign_checkpoint(Checkpoint(settings.log_origin, held, bytes(32)),
                                   load_keys(settings).signing_key)
            answer = await http.post(f"{url}/add-checkpoint", content=submission(held, [], fork))
    assert answer.status_code == 422, answer.text
    assert "inconsistent" in answer.text


async def _conflicts(settings: Settings) -> list[Any]:
    engine = create_async_engine(settings.resolved_database_url)
    try:
        async with engine.connect() as connection:
            return list((await connection.execute(
                text("SELECT witness, request, status, response FROM witness_conflicts"))).all())
    finally:
        await engine.dispose()


@pytest.fixture
def fork_settings(settings: Settings, tmp_path: Path) -> Settings:
    """A second seenby on a database of its own (SQLite), with the first one's origin and key."""
    fork = base_settings(tmp_path / "fork", log_origin=settings.log_origin,
                         signing_key_file=settings.data_dir / DEV_SIGNING_KEY_FILE)
    upgrade(fork)
    return fork


async def test_a_second_log_with_the_same_key_and_another_database_is_caught_by_the_witness(
    settings: Settings, fork_settings: Settings, tmp_path: Path
) -> None:
    """A split view: the operator runs a second seenby with the log's key on a database that says
    other things. The witness that cosigned the first log's tree answers the second 422; the second
    keeps the evidence and serves no witnessed checkpoint; the first goes on being cosigned."""
    log_vkey = verifier_key(settings.log_origin, raw_public_key(load_keys(settings).signing_key))
    assert load_keys(fork_settings).signing_key.private_bytes_raw() == \
        load_keys(settings).signing_key.private_bytes_raw()
    with witness_process(tmp_path / "w1", "w1.example/witness", log_vkey) as (url1, vkey1):
        policy_file = tmp_path / "policy.txt"
        policy_file.write_text(f"witness W1 {vkey1} {url1}\nquorum W1\n")

        async def run(log_settings: Settings, customer: str, entries: int) -> tuple[int, httpx.Response]:
            app = create_app(log_settings.model_copy(update={"witness_policy_file": policy_file}))
            tokens = Tokens(app)
            async for client in serve(app):
                await record_integrated(client, [access_event(customer) for _ in range(entries)],
                                        tokens.service(), tokens.regulator())
                size = int((await fetch_chain(client, customer, tokens.regulator()))[-1]["log_index"]) + 1
                if log_settings is fork_settings:
                    deadline = time.monotonic() + 20
                    while not await _conflicts(fork_settings):
                        assert time.monotonic() < deadline, "the witness never refused the fork"
                        await asyncio.sleep(0.1)
                    return size, await client.get("/v1/log/checkpoint")
                await _served_with(client, size, {"w1.example/witness"})
                return size, await client.get("/v1/log/checkpoint")
            raise AssertionError("unreachable")

        first_size, first = await run(settings, "cust-honest", 2)
        fork_size, forked = await run(fork_settings, "cust-forked", 6)
        assert fork_size > first_size
        assert forked.status_code == 503  # the fork has no witnessed checkpoint to show anyone
        (conflict,) = await _conflicts(fork_settings)
        assert conflict.witness == "W1" and conflict.status == 422
        # What the fork sent: a proof from the size the witness holds (learnt from its 409).
        assert conflict.request.startswith(f"old {first.text.split(chr(10))[1]}\n")
        # The first log is unaffected: it goes on, cosigned, and holds no conflict.
        later_size, later = await run(settings, "cust-honest", 2)
        assert later.status_code == 200 and later_size > first_size
        assert not await _conflicts(settings)
        async with httpx.AsyncClient() as http:
            origin_hash = hashlib.sha256(settings.log_origin.encode()).hexdigest()
            held = (await http.get(f"{url1}/{origin_hash}/checkpoint")).text
        assert held.split("\n")[2] == later.text.split("\n")[2]  # the witness holds the first log's root


async def _recorded_to(client: httpx.AsyncClient, tokens: Tokens, customer: str) -> int:
    """Record one access; the tree size that holds it."""
    await record_integrated(client, [access_event(customer)], tokens.service(), tokens.regulator())
    return int((await fetch_chain(client, customer, tokens.regulator()))[-1]["log_index"]) + 1


async def test_a_slow_huge_malformed_or_forging_witness_delays_nothing_past_its_timeout_and_is_not_kept(
    settings: Settings,
) -> None:
    """A witness's answer is untrusted input: read within the timeout and a size cap, and kept only
    once its cosignature verifies for the policy's key."""
    honest_key = Ed25519PrivateKey.generate()
    vkey = verifier_key("w1.example/witness", raw_public_key(honest_key), COSIGNATURE_TYPE)
    policy = parse_policy(f"witness W1 {vkey} http://w1.example\nquorum W1\n")

    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(20):  # a byte every 0.1 s: no single read times out, the exchange does
            yield b"x"
            await asyncio.sleep(0.1)

    forged = Ed25519PrivateKey.generate()
    answers = {
        "timeout": lambda body: httpx.Response(200, content=trickle()),
        "answer_too_large": lambda body: httpx.Response(200, text="\u2014 w1.example/witness " * 10_000),
        "bad_cosignature": lambda body: httpx.Response(200, text="\u2014 w1.example/witness not-base64\n"),
        "forged": lambda body: httpx.Response(200, text=cosign(_body_of(body), "w1.example/witness", forged,
                                                                int(time.time())).line()),
        "http_500": lambda body: httpx.Response(500, text="oops"),
    }
    app = create_app(settings)
    tokens = Tokens(app)
    async for client in serve(app):
        await record_integrated(client, [access_event("cust-hostile")], tokens.service(), tokens.regulator())
        for kind, answer in answers.items():

            async def handler(request: httpx.Request, answer: Any = answer) -> httpx.Response:
                return answer(request.content)

            submitter = Submitter(app.state.database, policy, timeout=0.5,
                                  transport=httpx.MockTransport(handler))
            expected = "bad_cosignature" if kind == "forged" else kind
            sample = f'seenby_witness_failures_total{{kind="{expected}",witness="W1"}}'
            before = _metric(await client.get("/metrics"), sample)
            started = time.monotonic()
            await submitter.submit_newest(policy.witnesses["W1"])
            assert time.monotonic() - started < 1.5, kind
            await submitter.close()
            assert _metric(await client.get("/metrics"), sample) == before + 1, kind
            async with app.state.database.read_sessions() as session:
                assert await witness_store.witnessed_checkpoint(session, policy) is None, kind


def _body_of(submitted: bytes) -> str:
    """The checkpoint body inside an add-checkpoint request (after the blank line, before signatures)."""
    note = submitted.decode().split("\n\n", 1)[1]
    return note[:note.index("\n\n") + 1]
