"""Helpers for export tests: record, wait for the log, fetch exports and manifests as a regulator would."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx

from tests.conftest import Tokens

EXPORT = "/v1/exports/accesses"
MANIFEST = "/v1/exports/accesses/manifest"


async def record(client: httpx.AsyncClient, tokens: Tokens, events: list[dict[str, Any]]) -> list[dict]:
    response = await client.post("/v1/accesses:batch", json={"events": events}, headers=tokens.service())
    assert response.status_code == 201, response.text
    return response.json()["receipts"]


async def chain(client: httpx.AsyncClient, tokens: Tokens, customer_id: str) -> list[dict]:
    response = await client.get(f"/v1/customers/{customer_id}/entries", params={"limit": 500},
                                headers=tokens.regulator())
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def settled(client: httpx.AsyncClient, tokens: Tokens, customer_id: str, count: int,
                  within: float = 5.0) -> list[dict]:
    """The customer's whole chain, once `count` entries are all in the log (and so in a checkpoint)."""
    deadline = time.monotonic() + within
    while True:
        items = await chain(client, tokens, customer_id)
        if len(items) == count and all(i["log_index"] is not None for i in items):
            return items
        assert time.monotonic() < deadline, f"{customer_id}: {len(items)} entries, not {count} in the log"
        await asyncio.sleep(0.05)


async def set_countries(client: httpx.AsyncClient, tokens: Tokens, countries: dict[str, str]) -> None:
    response = await client.put("/v1/admin/customers", headers=tokens.admin(), json={
        "customers": [{"customer_id": c, "country": k} for c, k in countries.items()]})
    assert response.status_code == 200, response.text


async def export(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> httpx.Response:
    response = await client.get(EXPORT, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response


async def manifest(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = await client.get(MANIFEST, params=params, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return json.loads(response.content)


def lines(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.content == b"" or response.content.endswith(b"\n")
    return [json.loads(line) for line in response.content.decode().splitlines()]
