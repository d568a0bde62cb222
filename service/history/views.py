"""How an entry is shown: the recorded object at top level, plus where it sits in chain and log."""

from __future__ import annotations

import base64
from typing import Any

from service.ledger.canonical import decode


def entry_view(
    canonical: bytes,
    entry_hash: str,
    log_index: int | None,
    identity: tuple[str, str] | None,
    *,
    with_identity: bool,
) -> dict[str, Any]:
    """One history item; a regulator also gets a human actor's `id` and `id_salt`."""
    item = decode(canonical)
    if with_identity and identity is not None and isinstance(item.get("actor"), dict):
        employee_id, salt = identity
        item["actor"] = {**item["actor"], "id": employee_id, "id_salt": salt}
    item["entry_hash"] = entry_hash
    item["log_index"] = log_index
    return item


def chain_item(view: dict[str, Any], canonical: bytes) -> dict[str, Any]:
    """An item of the whole chain: the entry's view, the entry exactly as hashed, and its bytes."""
    view["entry"] = decode(canonical)
    view["canonical"] = base64.b64encode(canonical).decode()
    return view
