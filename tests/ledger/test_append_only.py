"""The database itself refuses to change ledger rows, on both backends and for every role."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from service.db import make_engine
from tests.conftest import Backend, Served, Tokens
from tests.factories import access_event

CHANGES = (
    "UPDATE ledger_entries SET flags = 'edited' WHERE customer_id = :c",
    "DELETE FROM ledger_entries WHERE customer_id = :c",
    "UPDATE actor_identities SET employee_id = 'someone-else' "
    "WHERE entry_id IN (SELECT id FROM ledger_entries WHERE customer_id = :c)",
    "DELETE FROM actor_identities "
    "WHERE entry_id IN (SELECT id FROM ledger_entries WHERE customer_id = :c)",
)


async def _recorded(client: httpx.AsyncClient, tokens: Tokens, customer_id: str) -> None:
    response = await client.post("/v1/accesses", json=access_event(customer_id), headers=tokens.service())
    assert response.status_code == 201


async def _count(url: str, customer_id: str) -> int:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.scalar(
                text("SELECT count(*) FROM ledger_entries WHERE customer_id = :c"), {"c": customer_id}
            )
    finally:
        await engine.dispose()


@pytest.mark.parametrize("statement", CHANGES)
async def test_changes_are_refused_as_the_service_role(
    client: httpx.AsyncClient, tokens: Tokens, backend: Backend, customer_id: str, statement: str
) -> None:
    await _recorded(client, tokens, customer_id)
    engine = make_engine(backend.settings.resolved_database_url)
    try:
        with pytest.raises(DBAPIError) as refused:
            async with engine.begin() as connection:
                await connection.execute(text(statement), {"c": customer_id})
    finally:
        await engine.dispose()
    message = str(refused.value).lower()
    assert "append-only" in message or "permission denied" in message
    assert await _count(backend.settings.resolved_database_url, customer_id) == 1


async def test_owner_is_refused_by_triggers_too(
    pg: Served, pg_backend: Backend, customer_id: str
) -> None:
    await _recorded(pg.client, pg.tokens, customer_id)
    engine = create_async_engine(pg_backend.owner_url)
    try:
        for statement in (*CHANGES, "TRUNCATE ledger_entries CASCADE", "TRUNCATE actor_identities"):
            with pytest.raises(DBAPIError, match="append-only"):
                async with engine.begin() as connection:
                    await connection.execute(text(statement), {"c": customer_id})
    finally:
        await engine.dispose()
    assert await _count(pg_backend.owner_url, customer_id) == 1


async def test_service_role_has_only_select_and_insert_on_ledger_tables(pg_backend: Backend) -> None:
    engine = create_async_engine(pg_backend.owner_url)
    role = pg_backend.settings.resolved_database_url.split("://", 1)[1].split("@", 1)[0]
    try:
        async with engine.connect() as connection:
            for table in ("ledger_entries", "actor_identities"):
                granted = {
                    privilege: await connection.scalar(
                        text("SELECT has_table_privilege(:r, :t, :p)"),
                        {"r": role, "t": table, "p": privilege},
                    )
                    for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
                }
                assert granted == {"SELECT": True, "INSERT": True, "UPDATE": False,
                                   "DELETE": False, "TRUNCATE": False}, table
    finally:
        await engine.dispose()
