"""Reads from a PostgreSQL hot standby (CONTRACT "Reads from a standby"): a primary and a standby
started here (`pg_basebackup -R`), the app reading from the standby and writing to the primary."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pydantic
import pytest

from service.ledger import merkle
from service.main import create_app
from service.migrate import upgrade
from service.settings import Settings
from tests.chains import fetch_chain
from tests.conftest import Tokens, _create_database, base_settings, serve
from tests.factories import access_event
from tests.pg import ThrowawayPostgres
from tests.servers import record_integrated, wait_until_integrated
from tests.tlog.test_log import signed_checkpoint


@dataclass
class Pair:
    primary: ThrowawayPostgres
    standby: ThrowawayPostgres
    settings: Settings  # writes to the primary, reads from the standby
    primary_only: Settings  # the same database, everything on the primary

    async def replay(self, paused: bool) -> None:
        action = 'pause' if paused else 'resume'
        await _execute(self.standby.url("postgres"), f"SELECT pg_wal_replay_{action}()")


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    primary, standby = ThrowawayPostgres(), ThrowawayPostgres()
    try:
        admin = primary.start()
        owner_url, app_url, _ = asyncio.run(_create_database(admin))
        reader = app_url.split("://", 1)[1].split("@", 1)[0].replace("_app_", "_reader_")
        asyncio.run(_execute(admin, f"CREATE ROLE {reader} LOGIN"))
        # As for the app role (README "Deploy on Kubernetes"): the schema's owner lets it in.
        asyncio.run(_execute(owner_url, f"GRANT USAGE ON SCHEMA public TO {reader}"))
        primary_only = base_settings(tmp_path, database_url=app_url, migration_database_url=owner_url)
        read_url = app_url.replace(f":{primary.port}/", f":{standby.port}/").replace("_app_", "_reader_")
        settings = primary_only.model_copy(update={"read_database_url": read_url,
                                                   "read_max_lag_seconds": 1.0})
        upgrade(settings)  # grants the reader role SELECT, on the primary: the standby replays it
        standby.start_standby_of(primary)
        yield Pair(primary, standby, settings, primary_only)
    finally:
        standby.stop()
        primary.stop()


async def _execute(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def _both(pair: Pair) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, Tokens]]:
    """A client of the app reading from the standby, and one of an app on the primary alone."""
    app, direct = create_app(pair.settings), create_app(pair.primary_only)
    async for reader in serve(app):
        async for writer in serve(direct):
            yield reader, writer, Tokens(app)


async def _same_checkpoint(client: httpx.AsyncClient, direct: httpx.AsyncClient,
                           within: float = 20.0) -> None:
    """Until the standby serves the checkpoint the primary serves."""
    deadline = time.monotonic() + within
    while await signed_checkpoint(client) != await signed_checkpoint(direct):
        assert time.monotonic() < deadline, "the standby did not replay the primary's checkpoint"
        await asyncio.sleep(0.1)


async def _caught_up(client: httpx.AsyncClient, within: float = 20.0) -> dict:
    deadline = time.monotonic() + within
    while True:
        ready = await client.get("/readyz")
        if ready.status_code == 200:
            return ready.json()
        assert time.monotonic() < deadline, ready.text
        await asyncio.sleep(0.1)


async def test_reads_from_the_standby_verify_against_the_primarys_checkpoints(pair: Pair) -> None:
    customers = [f"cust-standby-{n}" for n in range(4)]
    async for client, direct, tokens in _both(pair):
        # Written through the app that reads from the standby: the writes go to the primary.
        response = await client.post("/v1/accesses:batch", headers=tokens.service(),
                                     json={"events": [access_event(c) for c in customers * 3]})
        assert response.status_code == 201, response.text
        await wait_until_integrated(direct, "", customers, tokens.regulator())
        await _same_checkpoint(client, direct)
        ready = await _caught_up(client)
        assert 0 <= ready["read_database"]["lag_seconds"] < 1
        signed = await signed_checkpoint(direct)  # the primary's
        for customer in customers:
            chain = await fetch_chain(client, customer, tokens.regulator())
            assert len(chain) == 3
            for item in chain:
                proof = (await client.get("/v1/log/proof/inclusion", params={
                    "log_index": item["log_index"], "tree_size": signed.size})).json()
                leaf = merkle.leaf_hash(base64.b64decode(item["canonical"]))
                merkle.verify_inclusion(leaf, item["log_index"], signed.size,
                                        [bytes.fromhex(h) for h in proof["hashes"]], signed.root_hash)

        # Replay paused: the standby falls behind while the primary takes more.
        await pair.replay(paused=True)
        late = "cust-standby-late"
        await record_integrated(direct, [access_event(late) for _ in range(2)], tokens.service(),
                                tokens.regulator())
        newer = await signed_checkpoint(direct)
        assert newer.size > signed.size
        # Histories come from the standby (it has not seen the new entries)...
        assert await fetch_chain(client, late, tokens.regulator()) == []
        assert await signed_checkpoint(client) == signed
        # ...but a checkpoint the primary has just served is provable through the same app.
        consistency = await client.get("/v1/log/proof/consistency",
                                       params={"first": signed.size, "second": newer.size})
        assert consistency.status_code == 200, consistency.text
        merkle.verify_consistency(signed.size, newer.size,
                                  [bytes.fromhex(h) for h in consistency.json()["hashes"]],
                                  signed.root_hash, newer.root_hash)
        [item, *_] = await fetch_chain(direct, late, tokens.regulator())
        inclusion = await client.get("/v1/log/proof/inclusion",
                                     params={"log_index": item["log_index"], "tree_size": newer.size})
        assert inclusion.status_code == 200, inclusion.text
        merkle.verify_inclusion(merkle.leaf_hash(base64.b64decode(item["canonical"])), item["log_index"],
                                newer.size, [bytes.fromhex(h) for h in inclusion.json()["hashes"]],
                                newer.root_hash)
        chain = await client.get(f"/v1/customers/{late}/entries", headers=tokens.regulator(),
                                 params={"tree_size": newer.size})
        assert chain.status_code == 200, chain.text
        assert len(chain.json()["items"]) == 2
        export = await client.get("/v1/exports/accesses", headers=tokens.regulator(),
                                  params={"tree_size": newer.size, "customer_id": late})
        assert export.status_code == 200, export.text
        assert export.headers["seenby-tree-size"] == str(newer.size)
        assert len(export.text.strip().splitlines()) == 2

        # The lag passes SEENBY_READ_MAX_LAG_SECONDS (1 s here): out of rotation, saying why.
        await asyncio.sleep(1.5)
        lagging = await client.get("/readyz")
        assert lagging.status_code == 503, lagging.text
        assert lagging.headers["content-type"] == "application/problem+json"
        assert "behind the primary" in lagging.json()["detail"]

        await pair.replay(paused=False)
        await _caught_up(client)
        await _same_checkpoint(client, direct)
        assert len(await fetch_chain(client, late, tokens.regulator())) == 2
    # Every request above went through the app that reads from the standby, writes included:
    # none sent the standby a write (it would have refused it, and logged the refusal).
    assert "read-only transaction" not in pair.standby.log
    assert "ERROR" not in pair.standby.log, pair.standby.log[-2000:]


async def test_an_unreachable_standby_takes_the_replica_out_of_rotation(pair: Pair) -> None:
    pair.standby.crash()
    async for client in serve(create_app(pair.settings)):
        ready = await client.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert ready.json()["detail"] == "the read database (standby) is unreachable"
        pair.standby.resume()
        await _caught_up(client)


async def test_the_read_urls_role_can_only_select(pair: Pair) -> None:
    """SECURITY.md: even pointed at the primary, the read URL could change nothing."""
    on_primary = pair.settings.read_database_url.replace(f":{pair.standby.port}/", f":{pair.primary.port}/")
    for statement in ("SELECT count(*) FROM ledger_entries", "SELECT count(*) FROM checkpoints"):
        await _execute(on_primary, statement)
    for statement in ("DELETE FROM notices", "UPDATE customer_heads SET last_seq = 0",
                      "INSERT INTO notice_batches VALUES (1, 0, 0, '')", "TRUNCATE ledger_entries"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await _execute(on_primary, statement)


def test_a_read_database_is_a_postgresql_standby(tmp_path: Path) -> None:
    with pytest.raises(pydantic.ValidationError, match="PostgreSQL standby"):
        base_settings(tmp_path, read_database_url=f"sqlite+aiosqlite:///{tmp_path}/other.db")
