"""The transparency report: every number checked against counts made here, from what was recorded."""

from __future__ import annotations

import asyncio
import csv
import io
import random
import statistics
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from service.clock import format_micros, to_micros
from service.deletions.tables import DeletionRequest
from service.ledger import store
from service.objections.tables import Objection
from tests.conftest import Tokens
from tests.exports.support import lines, set_countries

REPORT = "/v1/reports/transparency"
DAY_US = 86_400 * 1_000_000


def access_entry(customer: str, clip: str, actor_type: str, organization: str | None, country: str | None,
                 purpose: str, action: str, flags: list[str]) -> store.NewEntry:
    actor: dict[str, Any] = {"type": actor_type, "role": "reviewer" if actor_type == "human" else "model"}
    if actor_type == "algorithm":
        actor["id"] = "clip-classifier"
    else:
        actor |= {"pseudonym": "psn_" + "0" * 32, "id_commitment": "0" * 64}
    actor |= {k: v for k, v in (("organization", organization), ("country", country)) if v}
    event_id = str(uuid.uuid4())
    body = {"event_id": event_id, "customer_id": customer, "clip_id": clip, "actor": actor,
            "occurred_at": "2001-01-01T00:00:00.000Z", "action": action, "media": ["video"],
            "purpose": purpose}
    return store.NewEntry(customer_id=customer, kind="access", body=body, recorded_by="report-test",
                          flags=flags, columns={
                              "event_id": event_id, "request_digest": "0" * 64, "clip_id": clip,
                              "occurred_at_us": 978_307_200_000_000, "actor_type": actor_type,
                              "actor_country": country, "actor_organization": organization,
                              "purpose": purpose, "action": action})


def expected_accesses(specs: list[tuple]) -> dict[str, Any]:
    def count(position: int) -> dict[str, int]:
        return dict(Counter(spec[position] for spec in specs if spec[position] is not None))

    flags = Counter(flag for spec in specs for flag in spec[7])
    return {
        "total": len(specs), "by_purpose": count(5), "by_action": count(6), "by_actor_type": count(2),
        "by_organization": count(3), "by_actor_country": count(4),
        "flagged": {"unconsented": 0, "access_after_deletion": 0, **flags},
        "distinct_customers": len({spec[0] for spec in specs}),
        "distinct_clips_seen_by_humans": len({(spec[0], spec[1]) for spec in specs if spec[2] == "human"}),
        "refused": 0,
    }


def expected_deletions(rows: list[dict[str, Any]], now_us: int) -> dict[str, Any]:
    done = [(r["completed_at_us"] - r["filed_at_us"]) / DAY_US for r in rows if r["status"] == "completed"]
    return {
        "filed": len(rows),
        "by_status": {"pending": 0, "in_progress": 0, "completed": 0, "rejected": 0,
                      **Counter(r["status"] for r in rows)},
        "overdue": sum(r["status"] in ("pending", "in_progress") and r["due_at_us"] < now_us for r in rows),
        "median_days_to_complete": round(statistics.median(done), 3) if done else None,
    }


async def test_report_numbers_match_independent_counts(
    app: FastAPI, client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    de1, de2, fr, nowhere = (f"{customer_id}-{suffix}" for suffix in ("de1", "de2", "fr", "none"))
    await set_countries(client, tokens, {de1: "DE", de2: "DE", fr: "FR"})
    # A period of its own, years back, so that nothing else recorded in this database falls in it.
    start = datetime(2001, 1, 1, tzinfo=UTC) + timedelta(days=random.randrange(3_000))
    since_us = to_micros(start)
    specs = [
        (de1, "clip-a", "human", "Vendor B", "IN", "quality_review", "view", ["unconsented"]),
        (de1, "clip-a", "human", "Vendor B", "IN", "quality_review", "listen", []),
        (de1, "clip-b", "algorithm", None, None, "model_training", "train",
         ["unconsented", "access_after_deletion"]),
        (de2, "clip-a", "human", "Support desk", "DE", "customer_support", "view", ["needs_review"]),
        (de2, "clip-c", "algorithm", "Lab", None, "model_training", "infer", []),
        (fr, "clip-f", "human", "Vendor B", "FR", "troubleshooting", "download", ["access_after_deletion"]),
        (fr, "clip-g", "human", "Vendor C", "PT", "security", "view", ["needs_review"]),
        (nowhere, "clip-n", "human", "Vendor B", "IN", "quality_review", "view", ["unconsented"]),
    ]
    database = app.state.database
    async with database.write([de1, de2, fr, nowhere]) as session:
        await store.append(session, [access_entry(*specs[0][:7], [])], since_us - 1)  # just before
        for position, spec in enumerate(specs):
            await store.append(session, [access_entry(*spec)], since_us + position * 1_000)
        await store.append(session, [store.NewEntry(customer_id=de2, kind="consent_changed", body={
            "human_review": True, "model_training": False}, recorded_by=de2)], since_us + 9_000)
    now_us = time.time_ns() // 1000
    requests = [
        (de1, "completed", 2.0), (de1, "completed", 5.0), (de2, "completed", 3.5), (fr, "completed", 10.0),
        (de2, "pending", None), (nowhere, "in_progress", None), (fr, "rejected", None), (fr, "pending", None),
    ]
    rows = []
    for number, (customer, status, days) in enumerate(requests):
        filed = since_us + number * 3_600_000_000
        overdue_soon = status == "pending" and customer != fr
        rows.append({
            "id": str(uuid.uuid4()), "customer_id": customer, "scope": "all", "status": status,
            "filed_at_us": filed, "due_at_us": filed + 30 * DAY_US if overdue_soon else now_us + DAY_US,
            "completed_at_us": None if days is None else filed + int(days * DAY_US),
            "rejected_at_us": filed + DAY_US if status == "rejected" else None,
            "reject_reason": "legal hold" if status == "rejected" else None,
        })
    late = dict(rows[0], id=str(uuid.uuid4()), filed_at_us=since_us + 2 * DAY_US)  # outside the period
    async with database.write([]) as session:
        await session.execute(DeletionRequest.__table__.insert(), [*rows, late])
    # Objections, by the objected access's purpose and organization; one just before the period.
    objected = [(de1, "quality_review", "Vendor B"), (de2, "customer_support", "Support desk"),
                (fr, "quality_review", "Vendor B"), (nowhere, "quality_review", None)]
    filed_at = [since_us + 5_000 + position for position in range(len(objected))]
    async with database.write([]) as session:
        await session.execute(Objection.__table__.insert(), [
            {"customer_id": customer, "objected_entry_hash": uuid.uuid4().hex * 2,
             "entry_hash": uuid.uuid4().hex * 2, "filed_at_us": at, "reason": None, "purpose": purpose,
             "organization": organization}
            for at, (customer, purpose, organization) in zip(
                [*filed_at, since_us - 1], [*objected, (de1, "security", "Vendor X")], strict=True)
        ])

    period = {"since": format_micros(since_us), "until": format_micros(since_us + DAY_US)}
    report = (await client.get(REPORT, params=period, headers=tokens.regulator())).json()
    assert report == {
        "period": period,
        "accesses": expected_accesses(specs),
        "deletion_requests": expected_deletions(rows, now_us),
        "objections": {"total": 4, "by_purpose": {"customer_support": 1, "quality_review": 3},
                       "by_organization": {"Support desk": 1, "Vendor B": 2}},
    }
    assert report["deletion_requests"]["median_days_to_complete"] == 4.25
    assert report["deletion_requests"]["overdue"] == 1

    german = {de1, de2}
    berlin = (await client.get(REPORT, params=period, headers=tokens.regulator(jurisdiction="DE"))).json()
    assert berlin["accesses"] == expected_accesses([s for s in specs if s[0] in german])
    assert berlin["deletion_requests"] == expected_deletions([r for r in rows if r["customer_id"] in german],
                                                             now_us)
    assert berlin["deletion_requests"]["median_days_to_complete"] == 3.5
    assert berlin["objections"] == {"total": 2, "by_purpose": {"customer_support": 1, "quality_review": 1},
                                    "by_organization": {"Support desk": 1, "Vendor B": 1}}
    paris = (await client.get(REPORT, params=period, headers=tokens.regulator(jurisdiction="FR"))).json()
    assert paris["accesses"]["total"] == 2 and paris["deletion_requests"]["filed"] == 3
    nobody = (await client.get(REPORT, params=period, headers=tokens.regulator(jurisdiction="JP"))).json()
    assert nobody["accesses"]["total"] == 0 and nobody["deletion_requests"]["median_days_to_complete"] is None

    # The same period exported: the report's breakdowns recounted from the entries themselves.
    deadline = time.monotonic() + 5
    while len(exported := lines(await client.get("/v1/exports/accesses", params=period,
                                                 headers=tokens.regulator()))) < len(specs):
        assert time.monotonic() < deadline, "entries were not integrated in time"
        await asyncio.sleep(0.05)
    assert report["accesses"]["by_purpose"] == dict(Counter(line["purpose"] for line in exported))
    assert report["accesses"]["by_actor_type"] == dict(Counter(line["actor"]["type"] for line in exported))
    assert report["accesses"]["flagged"] == {"unconsented": 0, "access_after_deletion": 0,
                                             **Counter(f for line in exported for f in line["flags"])}

    as_csv = await client.get(REPORT, params={**period, "format": "csv"}, headers=tokens.regulator())
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows_read = list(csv.reader(io.StringIO(as_csv.text, newline="")))
    assert rows_read[0] == ["section", "metric", "key", "value"]
    flattened = set()
    for section, metrics in report.items():
        for metric, value in metrics.items():
            if isinstance(value, dict):
                flattened |= {(section, metric, key, str(count)) for key, count in value.items()}
            else:
                flattened.add((section, metric, "", "" if value is None else str(value)))
    assert {tuple(row) for row in rows_read[1:]} == flattened and len(rows_read) == len(flattened) + 1


async def test_report_input_is_checked(client: httpx.AsyncClient, tokens: Tokens) -> None:
    whole = await client.get(REPORT, headers=tokens.regulator())
    assert whole.status_code == 200 and whole.json()["period"] == {"since": None, "until": None}
    for params in ({"since": "2030-01-01T00:00:00Z", "until": "2020-01-01T00:00:00Z"},
                   {"format": "pdf"}, {"since": "last week"}):
        response = await client.get(REPORT, params=params, headers=tokens.regulator())
        assert response.status_code == 422, params
        assert response.headers["content-type"] == "application/problem+json"
