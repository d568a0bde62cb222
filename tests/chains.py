"""Checks a customer's chain as a client would: dense sequence, every link, every hash."""

from __future__ import annotations

import base64
import hashlib

import httpx

from service.ledger.canonical import ChainLinks


async def fetch_chain(client: httpx.AsyncClient, customer_id: str, headers: dict[str, str],
                      base: str = "") -> list[dict]:
    items: list[dict] = []
    cursor = None
    while True:
        params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        response = await client.get(f"{base}/v1/customers/{customer_id}/entries", params=params,
                                    headers=headers)
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return items


def assert_chain_intact(items: list[dict]) -> None:
    for item in items:
        canonical = base64.b64decode(item["canonical"])
        assert hashlib.sha256(canonical).hexdigest() == item["entry_hash"]
    links = ChainLinks()
    assert [fault for i in items for fault in links.follow(i, i["entry_hash"])] == []
