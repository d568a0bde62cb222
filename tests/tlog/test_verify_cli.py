"""`seenby verify`, offline, on what a customer or auditor saved from the API."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import Tokens
from tests.factories import access_event, algorithm_actor
from tests.servers import seenby_command
from tests.tlog.test_log import wait_for_log_index


def verify(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*seenby_command(), "verify", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60)


async def test_verify_accepts_what_the_api_served_and_rejects_edits(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str, tmp_path: Path
) -> None:
    (tmp_path / "key.txt").write_text((await client.get("/v1/log/key")).text)
    (tmp_path / "old.txt").write_text((await client.get("/v1/log/checkpoint")).text)
    await client.post("/v1/accesses:batch", json={"events": [access_event(customer_id) for _ in range(6)]},
                      headers=tokens.service())
    items = await wait_for_log_index(client, customer_id, tokens.customer(customer_id), 6)
    (tmp_path / "new.txt").write_text((await client.get("/v1/log/checkpoint")).text)
    document = (await client.get(f"/v1/me/entries/{items[2]['entry_hash']}",
                                 headers=tokens.customer(customer_id))).json()
    (tmp_path / "entry.json").write_text(json.dumps(document))
    (tmp_path / "chain.json").write_text(json.dumps({"items": items}))
    old_size = int((tmp_path / "old.txt").read_text().split("\n")[1])
    new_size = int((tmp_path / "new.txt").read_text().split("\n")[1])
    if old_size:
        proof = (await client.get("/v1/log/proof/consistency",
                                  params={"first": old_size, "second": new_size})).json()
    else:
        proof = {"hashes": []}
    (tmp_path / "proof.json").write_text(json.dumps(proof))

    good = [
        ("checkpoint", "new.txt", "--key", "key.txt"),
        ("entry", "entry.json", "--key", "key.txt"),
        ("consistency", "old.txt", "new.txt", "--proof", "proof.json", "--key", "key.txt"),
        ("chain", "chain.json"),
    ]
    for args in good:
        result = verify(*args, cwd=tmp_path)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        assert result.stdout.startswith("OK")

    (tmp_path / "bad-cp.txt").write_text((tmp_path / "new.txt").read_text().replace(
        f"\n{new_size}\n", f"\n{new_size + 1}\n"))
    forged_entry = dict(document, entry={**document["entry"], "purpose": "security"})
    (tmp_path / "bad-entry.json").write_text(json.dumps(forged_entry))
    (tmp_path / "bad-chain.json").write_text(json.dumps({"items": items[:2] + items[3:]}))
    bad = [
        (("checkpoint", "bad-cp.txt", "--key", "key.txt"), "signature"),
        (("entry", "bad-entry.json", "--key", "key.txt"), items[2]["entry_hash"]),
        (("consistency", "new.txt", "bad-cp.txt", "--proof", "proof.json", "--key", "key.txt"), "FAILED"),
        (("chain", "bad-chain.json"), "customer_seq 3"),
    ]
    for args, named in bad:
        result = verify(*args, cwd=tmp_path)
        assert result.returncode == 1, args
        assert "FAILED" in result.stderr and named in result.stderr, (args, result.stderr)


# --- every shown field is checked against the canonical bytes ------------------------------------

@pytest.fixture
async def saved(client: httpx.AsyncClient, tokens: Tokens, customer_id: str, tmp_path: Path) -> Saved:
    """A customer's chain as the customer and as a regulator saved it, and one entry of each."""
    (tmp_path / "key.txt").write_text((await client.get("/v1/log/key")).text)
    events = [access_event(customer_id), access_event(customer_id, actor=algorithm_actor()),
              access_event(customer_id)]
    await client.post("/v1/accesses:batch", json={"events": events}, headers=tokens.service())
    mine = await wait_for_log_index(client, customer_id, tokens.customer(customer_id), 3)
    seen = (await client.get(f"/v1/customers/{customer_id}/entries", headers=tokens.regulator())).json()
    entry = (await client.get(f"/v1/me/entries/{mine[2]['entry_hash']}",
                              headers=tokens.customer(customer_id))).json()
    regulated = (await client.get(f"/v1/customers/{customer_id}/entries/{mine[0]['entry_hash']}",
                                  headers=tokens.regulator())).json()
    assert "id_salt" in seen["items"][0]["actor"] and "id_salt" in regulated["actor"]
    return Saved(tmp_path, {"items": mine}, seen, entry, regulated)


@dataclass(frozen=True)
class Saved:
    folder: Path
    chain: dict
    regulator_chain: dict
    entry: dict
    regulator_entry: dict

    def write(self, name: str, document: object) -> str:
        (self.folder / name).write_text(json.dumps(document))
        return name


def edited(document: dict, path: str, value: object) -> dict:
    """A deep copy of a shown item with one (dotted) field set to another value."""
    copy = json.loads(json.dumps(document))
    *parents, last = path.split(".")
    target = copy
    for name in parents:
        target = target[name]
    target[last] = value
    return copy


def test_the_saved_chains_and_entries_verify(saved: Saved) -> None:
    for args in (("chain", saved.write("c.json", saved.chain)),
                 ("chain", saved.write("rc.json", saved.regulator_chain)),
                 ("entry", saved.write("e.json", saved.entry), "--key", "key.txt"),
                 ("entry", saved.write("re.json", saved.regulator_entry), "--key", "key.txt")):
        result = verify(*args, cwd=saved.folder)
        assert result.returncode == 0, (args, result.stderr)
    assert "OK: chain of 3 entries is intact" in verify("chain", "c.json", cwd=saved.folder).stdout
    one = saved.write("one.json", {"items": saved.chain["items"][:1]})
    assert "OK: chain of 1 entry is intact" in verify("chain", one, cwd=saved.folder).stdout


@pytest.mark.parametrize(("field", "value"), [
    ("justification", "routine check"),
    ("actor.organization", "Another vendor"),
    ("purpose", "security"),
    ("flags", ["needs_review"]),
    ("actor.pseudonym", "psn_0000"),
    ("prev_hash", "0" * 64),
])
def test_an_edited_field_of_a_saved_chain_is_named(saved: Saved, field: str, value: object) -> None:
    items = saved.chain["items"]
    forged = [items[0], edited(items[1], field, value), items[2]]
    result = verify("chain", saved.write("forged.json", {"items": forged}), cwd=saved.folder)
    assert result.returncode == 1, result.stdout
    assert (f"customer_seq 1 (entry {items[1]['entry_hash']}): shown field(s) {field} differ from its "
            "canonical bytes") in result.stderr


def test_an_added_or_dropped_field_of_a_saved_chain_is_named(saved: Saved) -> None:
    items = saved.chain["items"]
    added = edited(items[0], "actor.employer", "Acme")
    dropped = {k: v for k, v in items[2].items() if k != "justification"}
    result = verify("chain", saved.write("forged.json", [added, items[1], dropped]), cwd=saved.folder)
    assert result.returncode == 1
    assert f"customer_seq 0 (entry {items[0]['entry_hash']}): shown field(s) actor.employer" in result.stderr
    assert f"customer_seq 2 (entry {items[2]['entry_hash']}): shown field(s) justification" in result.stderr
    assert "2 fault(s) in the chain" in result.stderr


def test_a_regulators_chain_checks_the_employee_id_against_its_commitment(saved: Saved) -> None:
    items = saved.regulator_chain["items"]
    swapped = edited(items[0], "actor.id", "emp-00001")
    result = verify("chain", saved.write("forged.json", [swapped, *items[1:]]), cwd=saved.folder)
    assert result.returncode == 1
    assert (f"customer_seq 0 (entry {items[0]['entry_hash']}): actor.id and actor.id_salt do not match "
            "actor.id_commitment") in result.stderr
    # An algorithm's id is in the entry itself: changing it is a plain shown-field edit.
    renamed = edited(items[1], "actor.id", "another-model")
    result = verify("chain", saved.write("forged2.json", [items[0], renamed, items[2]]), cwd=saved.folder)
    assert result.returncode == 1 and "shown field(s) actor.id differ" in result.stderr


@pytest.mark.parametrize(("which", "field", "value"), [
    ("entry", "justification", "routine check"),
    ("entry", "actor.organization", "Another vendor"),
    ("entry", "entry.purpose", "security"),
    ("regulator_entry", "actor.country", "DE"),
    ("regulator_entry", "actor.id_salt", "00" * 16),
])
def test_an_edited_field_of_a_saved_entry_is_named(saved: Saved, which: str, field: str,
                                                   value: object) -> None:
    document = getattr(saved, which)
    result = verify("entry", saved.write("forged.json", edited(document, field, value)), "--key", "key.txt",
                    cwd=saved.folder)
    assert result.returncode == 1, result.stdout
    label = f"customer_seq {document['customer_seq']} (entry {document['entry_hash']})"
    named = "actor.id and actor.id_salt" if field == "actor.id_salt" else field.split(".")[0] \
        if field.startswith("entry.") else field
    assert label in result.stderr and named in result.stderr, result.stderr
