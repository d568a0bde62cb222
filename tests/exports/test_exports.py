"""Regulators' exports over HTTP: contents, formats, manifests, cuts, filters, roles, jurisdictions."""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import io
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from service.exports import service as export_service
from service.ledger import merkle
from service.ledger.checkpoint import open_checkpoint, parse_verifier_key
from service.ledger.kinds import EntryKind
from service.main import create_app
from service.settings import Settings
from tests.conftest import Tokens, serve
from tests.exports.support import (
    EXPORT,
    MANIFEST,
    export,
    lines,
    manifest,
    record,
    set_countries,
    settled,
)
from tests.factories import access_event, algorithm_actor, human_actor
from tests.tlog.test_faults import a_log_of_every_kind


def mixed_events(customer_id: str, count: int) -> list[dict]:
    purposes = ("quality_review", "model_training", "troubleshooting", "security")
    return [
        access_event(
            customer_id, clip_id=f"clip-{i % 3}", purpose=purposes[i % len(purposes)],
            actor=human_actor(f"emp-{i % 2}") if i % 3 else algorithm_actor(),
            justification=f"line one {i}\nline two, \"quoted\"",
        )
        for i in range(count)
    ]


async def test_export_equals_the_history_for_the_same_filter(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    await record(client, tokens, mixed_events(customer_id, 5))
    consent = await client.put(f"/v1/customers/{customer_id}/consent", headers=tokens.customer(customer_id),
                               json={"human_review": True, "model_training": False})
    assert consent.status_code == 200, consent.text
    await record(client, tokens, mixed_events(customer_id, 2))
    items = await settled(client, tokens, customer_id, 8)

    response = await export(client, tokens.regulator(), customer_id=customer_id)
    assert response.headers["content-type"].startswith("application/x-ndjson")
    exported = lines(response)
    history = (await client.get(f"/v1/customers/{customer_id}/accesses", params={"limit": 500},
                                headers=tokens.regulator())).json()["items"]
    assert [{k: v for k, v in line.items() if k != "canonical"} for line in exported] == history[::-1]
    assert all(line["actor"]["id"] and ("id_salt" in line["actor"]) == (line["actor"]["type"] == "human")
               for line in exported)

    everything = lines(await export(client, tokens.regulator(), customer_id=customer_id, kind="all"))
    assert everything == [{k: v for k, v in item.items() if k != "entry"} for item in items]
    assert [line["kind"] for line in everything].count("consent_changed") == 1
    assert [line["log_index"] for line in everything] == sorted(line["log_index"] for line in everything)
    for line in everything:
        assert hashlib.sha256(base64.b64decode(line["canonical"])).hexdigest() == line["entry_hash"]

    consents = lines(await export(client, tokens.regulator(), customer_id=customer_id,
                                  kind="consent_changed"))
    assert [line["kind"] for line in consents] == ["consent_changed"]


async def test_csv_parses_with_the_csv_module_and_carries_the_same_entries(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    await record(client, tokens, mixed_events(customer_id, 4))
    await settled(client, tokens, customer_id, 4)
    exported = lines(await export(client, tokens.regulator(), customer_id=customer_id))
    response = await export(client, tokens.regulator(), customer_id=customer_id, format="csv")
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode(), newline="")))
    assert len(rows) == len(exported) == 4
    for row, line in zip(rows, exported, strict=True):
        assert int(row["log_index"]) == line["log_index"]
        assert (row["entry_hash"], row["canonical"]) == (line["entry_hash"], line["canonical"])
        assert (row["clip_id"], row["purpose"], row["action"]) == (line["clip_id"], line["purpose"],
                                                                   line["action"])
        assert row["justification"] == line["justification"]  # newlines and quotes survive
        assert row["media"].split(";") == line["media"]
        assert row["flags"] == ";".join(line["flags"])
        assert int(row["customer_seq"]) == line["customer_seq"]
        assert row["actor_type"] == line["actor"]["type"]
        assert row["actor_id"] == line["actor"]["id"]
        assert row["actor_id_salt"] == line["actor"].get("id_salt", "")
        assert row["actor_pseudonym"] == line["actor"].get("pseudonym", "")


async def test_the_manifest_matches_the_bytes_and_proves_every_entry(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    await record(client, tokens, mixed_events(customer_id, 6))
    await settled(client, tokens, customer_id, 6)
    verifier = parse_verifier_key((await client.get("/v1/log/key")).text.strip())
    for export_format in ("jsonl", "csv"):
        params = {"customer_id": customer_id, "format": export_format}
        described = await manifest(client, tokens.regulator(), **params)
        size = described["tree_size"]
        data = await export(client, tokens.regulator(), **params, tree_size=size)
        assert int(data.headers["Seenby-Tree-Size"]) == size
        assert hashlib.sha256(data.content).hexdigest() == described["sha256"]
        checkpoint = open_checkpoint(described["checkpoint"], verifier)
        assert checkpoint.size == size
        assert described["parameters"] == {"customer_id": customer_id, "kind": "access", "since": None,
                                           "until": None, "format": export_format}
        exported = lines(await export(client, tokens.regulator(), customer_id=customer_id,
                                      tree_size=size))
        assert described["count"] == len(exported) == len(described["proofs"]) == 6
        assert described["first_log_index"] == exported[0]["log_index"]
        assert described["last_log_index"] == exported[-1]["log_index"]
        for line, proof in zip(exported, described["proofs"], strict=True):
            leaf = merkle.leaf_hash(base64.b64decode(line["canonical"]))
            assert (proof["log_index"], proof["leaf_hash"]) == (line["log_index"], leaf.hex())
            hashes = [bytes.fromhex(h) for h in proof["hashes"]]
            merkle.verify_inclusion(leaf, line["log_index"], size, hashes, checkpoint.root_hash)


async def test_the_proofs_do_not_depend_on_how_rows_and_node_reads_are_batched(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifest writes a leaf's proof from its neighbour's, renewing only the lowest siblings, and
    carries that from one batch of rows to the next; one customer's entries are scattered over the
    log. Batches of a few rows and node reads of a few nodes must give the same bytes, every proof
    exact."""
    other = f"{customer_id}-other"
    for round_ in range(5):
        await record(client, tokens, mixed_events(customer_id, 3 + round_ % 2))
        await record(client, tokens, mixed_events(other, 4))
    await settled(client, tokens, customer_id, 17)
    await settled(client, tokens, other, 20)
    for params in ({"customer_id": customer_id, "kind": "all"}, {"kind": "all"}):
        whole = await client.get(MANIFEST, params=params, headers=tokens.regulator())
        size = whole.json()["tree_size"]
        for rows_a_batch, nodes_a_read in ((1, 4_000), (3, 1), (7, 25)):
            with monkeypatch.context() as patched:
                patched.setattr(export_service, "BATCH", rows_a_batch)
                patched.setattr(export_service, "NODES_PER_QUERY", nodes_a_read)
                cut_short = await client.get(MANIFEST, params={**params, "tree_size": size},
                                             headers=tokens.regulator())
            assert cut_short.content == whole.content, (params, rows_a_batch, nodes_a_read)
        described = whole.json()
        checkpoint = open_checkpoint(described["checkpoint"], parse_verifier_key(
            (await client.get("/v1/log/key")).text.strip()))
        assert len(described["proofs"]) == described["count"] >= 17
        for proof in described["proofs"]:
            merkle.verify_inclusion(bytes.fromhex(proof["leaf_hash"]), proof["log_index"], size,
                                    [bytes.fromhex(h) for h in proof["hashes"]], checkpoint.root_hash)


async def test_an_empty_export_has_a_manifest_too(client: httpx.AsyncClient, tokens: Tokens,
                                                  customer_id: str) -> None:
    response = await export(client, tokens.regulator(), customer_id=customer_id)
    assert response.content == b""
    described = await manifest(client, tokens.regulator(), customer_id=customer_id)
    assert (described["count"], described["proofs"], described["first_log_index"]) == (0, [], None)
    assert described["sha256"] == hashlib.sha256(b"").hexdigest()
    header_only = await export(client, tokens.regulator(), customer_id=customer_id, format="csv")
    assert next(csv.reader(io.StringIO(header_only.text)))[:2] == ["log_index", "entry_hash"]


async def test_a_cut_never_includes_entries_beyond_its_checkpoint(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    await record(client, tokens, mixed_events(customer_id, 2))
    await settled(client, tokens, customer_id, 2)
    first_cut = int((await client.get("/v1/log/checkpoint")).text.split("\n")[1])
    await record(client, tokens, mixed_events(customer_id, 3))
    await settled(client, tokens, customer_id, 5)
    latest = int((await client.get("/v1/log/checkpoint")).text.split("\n")[1])
    assert latest >= first_cut + 3

    old = await export(client, tokens.regulator(), customer_id=customer_id, tree_size=first_cut)
    assert int(old.headers["Seenby-Tree-Size"]) == first_cut
    assert len(lines(old)) == 2 and all(line["log_index"] < first_cut for line in lines(old))
    described = await manifest(client, tokens.regulator(), customer_id=customer_id, tree_size=first_cut)
    assert described["count"] == 2 and described["tree_size"] == first_cut
    assert len(lines(await export(client, tokens.regulator(), customer_id=customer_id))) == 5

    resumed = await export(client, tokens.regulator(), customer_id=customer_id, tree_size=latest,
                           after_log_index=lines(old)[-1]["log_index"])
    assert [line["customer_seq"] for line in lines(resumed)] == [2, 3, 4]

    for bad in (latest + 1_000, first_cut + 1):  # beyond the log; a size no checkpoint was signed at
        for url in (EXPORT, MANIFEST):
            response = await client.get(url, params={"customer_id": customer_id, "tree_size": bad},
                                        headers=tokens.regulator())
            assert response.status_code == 422, (url, bad, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["errors"][0]["field"] == "query.tree_size"


async def test_a_period_exports_exactly_its_entries_whatever_else_the_log_holds(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    """A period's export of every customer reads only the range of the log its entries are in (on
    PostgreSQL, found from their ids): it must hold every entry of the period, whoever's, and
    nothing else, and its manifest prove each. (Other tests' entries share the log, some dated ahead
    by a moved clock: the whole export filtered by recorded_at is the reference.)"""
    other = f"{customer_id}-other"
    moments = []
    for count in (3, 4, 2):
        await record(client, tokens, mixed_events(customer_id, count))
        await record(client, tokens, mixed_events(other, count))
        await asyncio.sleep(0.01)
        moments.append(datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        await asyncio.sleep(0.01)
    await settled(client, tokens, customer_id, 9)
    await settled(client, tokens, other, 9)
    whole = await export(client, tokens.regulator(), kind="all")
    size = whole.headers["Seenby-Tree-Size"]
    everything = lines(whole)

    def recorded_in(since: str | None, until: str | None) -> list[dict]:
        return [line for line in everything
                if (since is None or line["recorded_at"] >= since)
                and (until is None or line["recorded_at"] < until)]

    for since, until in ((None, moments[0]), (moments[0], moments[1]), (moments[1], None),
                         (moments[0], moments[2]), (moments[2], None)):
        period = {k: v for k, v in (("since", since), ("until", until)) if v is not None}
        got = lines(await export(client, tokens.regulator(), kind="all", tree_size=size, **period))
        assert got == recorded_in(since, until), (since, until)
        described = await manifest(client, tokens.regulator(), kind="all", tree_size=size, **period)
        assert [proof["log_index"] for proof in described["proofs"]] == [line["log_index"] for line in got]
    ours = {customer_id, other}
    assert [line["customer_id"] for line in recorded_in(moments[0], moments[1])
            if line["customer_id"] in ours].count(customer_id) == 4
    assert not [line for line in recorded_in(moments[2], None) if line["customer_id"] in ours]


async def test_period_and_kind_filters(client: httpx.AsyncClient, tokens: Tokens, customer_id: str) -> None:
    await record(client, tokens, mixed_events(customer_id, 2))
    await asyncio.sleep(0.01)
    between = datetime.now(UTC)
    await asyncio.sleep(0.01)
    await record(client, tokens, mixed_events(customer_id, 3))
    await settled(client, tokens, customer_id, 5)
    later = lines(await export(client, tokens.regulator(), customer_id=customer_id,
                               since=between.isoformat()))
    earlier = lines(await export(client, tokens.regulator(), customer_id=customer_id,
                                 until=between.isoformat()))
    assert [line["customer_seq"] for line in earlier] == [0, 1]
    assert [line["customer_seq"] for line in later] == [2, 3, 4]
    described = await manifest(client, tokens.regulator(), customer_id=customer_id,
                               since=between.isoformat())
    assert described["count"] == 3 and described["parameters"]["since"].endswith("Z")

    for params in ({"since": "2030-01-01T00:00:00Z", "until": "2020-01-01T00:00:00Z"},
                   {"format": "xml"}, {"kind": "ACCESS"}, {"kind": "acess"}, {"kind": "zzz"},
                   {"tree_size": -1}, {"since": "yesterday"},
                   {"after_log_index": "x"}):
        response = await client.get(EXPORT, params=params, headers=tokens.regulator())
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"] == "application/problem+json"


async def test_a_bound_between_two_microseconds_is_met_first_by_the_later_one(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    """Times are microseconds: an entry recorded at t is before t plus a nanosecond, so `since`
    there leaves it out and `until` there keeps it in (nanoseconds are not cut off)."""
    await record(client, tokens, mixed_events(customer_id, 1))
    await settled(client, tokens, customer_id, 1)
    [entry] = lines(await export(client, tokens.regulator(), customer_id=customer_id))
    recorded_at = entry["recorded_at"]
    assert len(recorded_at) == len("2026-12-07T16:32:10.337011Z")
    a_nanosecond_later = recorded_at.removesuffix("Z") + "001Z"
    assert lines(await export(client, tokens.regulator(), customer_id=customer_id,
                              since=a_nanosecond_later)) == []
    assert lines(await export(client, tokens.regulator(), customer_id=customer_id,
                              until=a_nanosecond_later)) == [entry]
    assert lines(await export(client, tokens.regulator(), customer_id=customer_id,
                              since=recorded_at.removesuffix("Z") + "000Z")) == [entry]


async def test_only_regulators_export(client: httpx.AsyncClient, tokens: Tokens, customer_id: str) -> None:
    for headers in (tokens.customer(customer_id), tokens.service(), tokens.admin()):
        for url in (EXPORT, MANIFEST, "/v1/reports/transparency"):
            response = await client.get(url, params={"customer_id": customer_id}, headers=headers)
            assert response.status_code == 403, (url, response.text)
            assert response.headers["content-type"] == "application/problem+json"
    for url in (EXPORT, MANIFEST, "/v1/reports/transparency"):
        response = await client.get(url)
        assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")
        assert (await client.post(url, headers=tokens.regulator())).status_code == 405
    bad_claim = tokens.headers("regulator", "dpa", jurisdiction="Germany")
    assert (await client.get(EXPORT, headers=bad_claim)).status_code == 403


async def test_a_jurisdiction_limits_exports_to_its_customers(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    german, french, unknown = f"{customer_id}-de", f"{customer_id}-fr", f"{customer_id}-xx"
    for customer in (german, french, unknown):
        await record(client, tokens, mixed_events(customer, 2))
    await set_countries(client, tokens, {german: "DE", french: "FR"})
    for customer in (german, french, unknown):
        await settled(client, tokens, customer, 2)

    berlin = tokens.regulator(jurisdiction="DE")
    everything_german = lines(await export(client, berlin, kind="all"))
    customers = {line["customer_id"] for line in everything_german}
    assert german in customers and not customers & {french, unknown}
    for customer in customers:
        known = await client.get(f"/v1/admin/customers/{customer}", headers=tokens.admin())
        assert known.json()["country"] == "DE"
    assert (await manifest(client, berlin, kind="all"))["count"] == len(everything_german)
    assert len(lines(await export(client, berlin, customer_id=german))) == 2
    for customer in (french, unknown):
        for url in (EXPORT, MANIFEST):
            response = await client.get(url, params={"customer_id": customer}, headers=berlin)
            assert response.status_code == 404, response.text
    unlimited = {line["customer_id"] for line in lines(await export(client, tokens.regulator()))}
    assert {german, french, unknown} <= unlimited
    paris = lines(await export(client, tokens.regulator(jurisdiction="FR"), customer_id=french))
    assert len(paris) == 2


async def test_every_kind_recorded_is_one_an_export_takes_and_a_typo_is_422(settings: Settings) -> None:
    """A regulator's typo in `kind` must not look like "nothing of that kind was recorded": kinds are
    a closed list, and each kind in a log of nearly every kind (a_log_of_every_kind) is on it and
    exports exactly its entries."""
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    chain = await a_log_of_every_kind(settings, customer)
    recorded: dict[str, int] = {}
    for item in chain:
        recorded[item["kind"]] = recorded.get(item["kind"], 0) + 1
    assert set(recorded) <= set(EntryKind), set(recorded) - set(EntryKind)
    app = create_app(settings)
    tokens = Tokens(app)
    async for client in serve(app):
        for kind, count in recorded.items():
            exported = lines(await export(client, tokens.regulator(), customer_id=customer, kind=kind))
            assert [line["kind"] for line in exported] == [kind] * count
        typo = await client.get(EXPORT, params={"kind": "acess"}, headers=tokens.regulator())
        assert typo.status_code == 422
        assert typo.json()["errors"][0]["field"] == "query.kind"
        assert "access_refused" in typo.json()["detail"]
