"""Access events as internal services send them."""

from __future__ import annotations

import uuid
from typing import Any


def human_actor(employee_id: str = "emp-55812", **overrides: Any) -> dict[str, Any]:
    return {"type": "human", "id": employee_id, "role": "Quality reviewer",
            "organization": "Annotation vendor B", "country": "IN", **overrides}


def algorithm_actor(model_id: str = "clip-classifier", **overrides: Any) -> dict[str, Any]:
    return {"type": "algorithm", "id": model_id, "role": "clip classifier", "version": "4.2.0",
            **overrides}


def access_event(customer_id: str, **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "customer_id": customer_id,
        "clip_id": "clip-77a1",
        "occurred_at": "2026-11-24T09:15:02.120Z",
        "actor": human_actor(),
        "action": "view",
        "media": ["video", "audio"],
        "purpose": "quality_review",
        "justification": "labelling batch 2026-11-24/17",
        "authorization_id": None,
    }
    event.update(overrides)
    return event
