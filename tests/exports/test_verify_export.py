"""`seenby verify export`, offline: it accepts what the server exported and names every tampering."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from service.cli import app as cli
from service.exports import check, formats
from service.ledger.checkpoint import parse_verifier_key
from tests.conftest import Tokens
from tests.exports.support import EXPORT, MANIFEST, record, settled
from tests.exports.test_exports import mixed_events
from tests.servers import seenby_command


async def save(client: httpx.AsyncClient, tokens: Tokens, folder: Path, name: str, **params: str) -> Path:
    described = await client.get(MANIFEST, params=params, headers=tokens.regulator())
    assert described.status_code == 200
    pinned = {**params, "tree_size": described.headers["Seenby-Tree-Size"]}
    data = await client.get(EXPORT, params=pinned, headers=tokens.regulator())
    assert data.status_code == 200
    (folder / name).write_bytes(data.content)
    (folder / f"{name}.manifest.json").write_bytes(described.content)
    return folder / name


def verify(data: Path, manifest: Path | None = None) -> tuple[int, str]:
    manifest = manifest or data.with_name(data.name + ".manifest.json")
    result = CliRunner().invoke(cli, ["verify", "export", str(data), "--manifest", str(manifest),
                                      "--key", str(data.parent / "key.txt")])
    return result.exit_code, result.output


def tampered(data: Path, name: str, content: bytes) -> Path:
    """A changed copy of an export's data, beside a copy of its original manifest."""
    path = data.with_name(name)
    path.write_bytes(content)
    path.with_name(name + ".manifest.json").write_bytes(
        data.with_name(data.name + ".manifest.json").read_bytes())
    return path


@pytest.fixture(autouse=True, params=["proofs checked in one process", "proofs checked beside"])
def proof_checking(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every check twice: with the manifest's proofs checked in the same process as the data (small
    exports), and in a second process beside it (large ones, written a proof a line)."""
    if request.param == "proofs checked beside":
        monkeypatch.setattr(check, "BESIDE_FROM_BYTES", 0)
        monkeypatch.setattr(check, "BESIDE_BATCH", 2)  # a few proofs a message: several messages
    return str(request.param)


@pytest.fixture
async def exports(client: httpx.AsyncClient, tokens: Tokens, customer_id: str, tmp_path: Path
                  ) -> dict[str, Path]:
    other = f"{customer_id}-other"
    await record(client, tokens, mixed_events(customer_id, 4))
    await client.put(f"/v1/customers/{customer_id}/consent", headers=tokens.customer(customer_id),
                     json={"human_review": True, "model_training": True})
    await record(client, tokens, mixed_events(customer_id, 3))
    await record(client, tokens, mixed_events(other, 3))
    await settled(client, tokens, customer_id, 8)
    await settled(client, tokens, other, 3)
    (tmp_path / "key.txt").write_text((await client.get("/v1/log/key")).text)
    return {
        "chain": await save(client, tokens, tmp_path, "chain.jsonl", customer_id=customer_id, kind="all"),
        "accesses": await save(client, tokens, tmp_path, "accesses.jsonl", customer_id=customer_id),
        "csv": await save(client, tokens, tmp_path, "accesses.csv", customer_id=customer_id, format="csv"),
        "other": await save(client, tokens, tmp_path, "other.jsonl", customer_id=other),
    }


async def test_an_untouched_export_verifies(exports: dict[str, Path], customer_id: str) -> None:
    code, output = verify(exports["chain"])
    assert code == 0, output
    assert output.startswith("OK: 8 entries") and "chain is complete from customer_seq 0 to 7" in output
    for name in ("accesses", "csv", "other"):
        code, output = verify(exports[name])
        assert code == 0 and output.startswith("OK:"), (name, output)
        assert "chain" not in output  # only a customer's whole chain can prove nothing was left out


def _entries(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


async def test_a_changed_byte_is_named(exports: dict[str, Path]) -> None:
    data = exports["chain"]
    raw = data.read_bytes().splitlines(keepends=True)
    third = _entries(data)[2]
    where = f"line 3 (log_index {third['log_index']}, entry {third['entry_hash']})"

    shown = raw[2].replace(b'"action":"view"', b'"action":"vieW"')
    code, output = verify(tampered(data, "field.jsonl", b"".join([*raw[:2], shown, *raw[3:]])))
    assert code == 1 and "FAILED" in output
    assert f"{where}: shown field(s) action differ from its canonical bytes" in output
    assert "SHA-256" in output

    canonical = third["canonical"]
    flipped = canonical[:10] + ("A" if canonical[10] != "A" else "B") + canonical[11:]
    code, output = verify(tampered(data, "bytes.jsonl", b"".join(
        [*raw[:2], raw[2].replace(canonical.encode(), flipped.encode()), *raw[3:]])))
    assert code == 1 and where in output
    assert "hash to" in output or "not the base64 of an entry" in output

    csv_raw = exports["csv"].read_bytes()
    code, output = verify(tampered(exports["csv"], "cell.csv", csv_raw.replace(b",quality_review,",
                                                                               b",quality_reviex,", 1)))
    assert code == 1 and "row 2 (log_index" in output and "column(s) purpose differ" in output


async def test_a_dropped_line_is_named(exports: dict[str, Path]) -> None:
    data = exports["chain"]
    raw, entries = data.read_bytes().splitlines(keepends=True), _entries(data)
    code, output = verify(tampered(data, "dropped.jsonl", b"".join(raw[:3] + raw[4:])))
    assert code == 1
    assert f"log_index {entries[3]['log_index']}: in the manifest, but missing from the data" in output
    assert "the data holds 7 entries; the manifest says 8" in output
    assert "customer_seq 4 where 3 was expected: the customer's chain is not complete" in output


async def test_a_reordered_pair_is_named(exports: dict[str, Path]) -> None:
    data = exports["accesses"]
    raw, entries = data.read_bytes().splitlines(keepends=True), _entries(data)
    code, output = verify(tampered(data, "swapped.jsonl", b"".join([raw[0], raw[2], raw[1], *raw[3:]])))
    assert code == 1
    assert (f"line 3 (log_index {entries[1]['log_index']}, entry {entries[1]['entry_hash']}): out of log "
            f"order or repeated (it comes after log_index {entries[2]['log_index']})") in output
    assert "missing from the data" not in output  # both entries are there, and both still prove


async def test_a_line_from_another_export_is_named(exports: dict[str, Path], customer_id: str) -> None:
    data = exports["accesses"]
    raw, stranger = data.read_bytes().splitlines(keepends=True), _entries(exports["other"])[0]
    foreign = exports["other"].read_bytes().splitlines(keepends=True)[0]
    code, output = verify(tampered(data, "foreign.jsonl", b"".join([*raw[:4], foreign, *raw[5:]])))
    assert code == 1
    where = f"line 5 (log_index {stranger['log_index']}, entry {stranger['entry_hash']})"
    assert f"{where}: the manifest has no proof for it (not part of this export)" in output
    assert f"an entry of customer {customer_id}-other, not of {customer_id}" in output


async def test_a_forged_manifest_is_named(exports: dict[str, Path], proof_checking: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    data = exports["chain"]
    manifest_path = data.with_name(data.name + ".manifest.json")
    manifest = json.loads(manifest_path.read_text())
    entries = _entries(data)
    second_processes: list[Path] = []
    beside = check._CheckedBeside.__init__

    def counted(self: check._CheckedBeside, manifest: Any, path: Path, batch: int) -> None:
        second_processes.append(path)
        beside(self, manifest, path, batch)

    monkeypatch.setattr(check._CheckedBeside, "__init__", counted)

    def forged(name: str, document: dict) -> Path:
        """Laid out as seenby writes a manifest, whose proofs a second process can read a line at a
        time; or in any other layout of the same JSON, read whole."""
        path = data.with_name(name)
        if proof_checking == "proofs checked beside":
            head = {k: document[k] for k in ("checkpoint", "tree_size", "parameters")}
            trailer = {k: document[k] for k in ("count", "first_log_index", "last_log_index", "sha256")}
            path.write_bytes(formats.manifest_head(head) + b"".join(
                formats.manifest_proof(proof, first=position == 0)
                for position, proof in enumerate(document["proofs"])
            ) + formats.manifest_tail(trailer, any_proofs=bool(document["proofs"])))
        else:
            path.write_text(json.dumps(document, indent=1))
        return path

    size = manifest["tree_size"]
    bigger = manifest["checkpoint"].replace(f"\n{size}\n", f"\n{size + 1}\n", 1)
    code, output = verify(data, forged("cp.json", {**manifest, "checkpoint": bigger}))
    assert code == 1 and "checkpoint does not verify" in output

    proofs = [dict(p) for p in manifest["proofs"]]
    proofs[1]["hashes"] = ["00" * 32, *proofs[1]["hashes"][1:]]
    code, output = verify(data, forged("proof.json", {**manifest, "proofs": proofs}))
    assert code == 1
    assert (f"line 2 (log_index {entries[1]['log_index']}, entry {entries[1]['entry_hash']}): not "
            f"included in the signed checkpoint of {size}") in output

    # A forger who drops an entry from both data and manifest, and fixes count and digest to match,
    # is still caught: the customer's chain has a gap.
    raw = data.read_bytes().splitlines(keepends=True)
    shorter = tampered(data, "short.jsonl", b"".join(raw[:2] + raw[3:]))
    consistent = {**manifest, "proofs": manifest["proofs"][:2] + manifest["proofs"][3:], "count": 7,
                  "sha256": hashlib.sha256(shorter.read_bytes()).hexdigest()}
    code, output = verify(shorter, forged("short.json", consistent))
    assert code == 1 and "customer_seq 3 where 2 was expected" in output

    # The proofs before a bad one still meet their lines, wherever the proofs are checked (the check
    # reads one proof ahead, and the second process sends the third proof alone in its message):
    # the second line is still found not included.
    proofs = [dict(p) for p in manifest["proofs"]]
    proofs[1]["hashes"] = ["00" * 32, *proofs[1]["hashes"][1:]]
    proofs[3]["hashes"] = [*proofs[3]["hashes"][:-1], "zz" * 32]
    code, output = verify(data, forged("late.json", {**manifest, "proofs": proofs}))
    assert code == 1 and "holds a hash that is not hex" in output
    assert (f"line 2 (log_index {entries[1]['log_index']}, entry {entries[1]['entry_hash']}): not "
            f"included in the signed checkpoint of {size}") in output

    for hash_that_is_not, said in ((7, "a proof is not {log_index, leaf_hash, hashes}"),
                                   ("zz" * 32, "holds a hash that is not hex")):
        proofs = [dict(p) for p in manifest["proofs"]]
        proofs[2]["hashes"] = [*proofs[2]["hashes"][:-1], hash_that_is_not]
        code, output = verify(data, forged("odd.json", {**manifest, "proofs": proofs}))
        assert code == 1 and "the manifest is not valid" in output and said in output

    code, output = verify(data, forged("count.json", {**manifest, "count": 9, "sha256": "0" * 64}))
    assert code == 1 and "the manifest says 9" in output and "SHA-256" in output
    (data.parent / "broken.json").write_text(manifest_path.read_text()[:-40])
    code, output = verify(data, data.parent / "broken.json")
    assert code == 1 and "the manifest is not valid" in output
    # Every manifest laid out as seenby writes it went to the second process in that mode, none else.
    assert len(second_processes) == (8 if proof_checking == "proofs checked beside" else 0), second_processes


async def test_the_installed_command_verifies(exports: dict[str, Path]) -> None:
    data = exports["csv"]
    args = [*seenby_command(), "verify", "export", str(data), "--manifest",
            str(data.with_name(data.name + ".manifest.json")), "--key", str(data.parent / "key.txt")]
    good = await asyncio.to_thread(subprocess.run, args, capture_output=True, text=True, timeout=60)
    assert good.returncode == 0 and good.stdout.startswith("OK"), good.stderr
    raw = data.read_bytes()
    last_record = max(m.start() for m in re.finditer(rb"\r\n[0-9]", raw)) + 2
    args[args.index(str(data))] = str(tampered(data, "dropped.csv", raw[:last_record]))
    bad = await asyncio.to_thread(subprocess.run, args, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "FAILED" in bad.stderr and "missing from the data" in bad.stderr


async def test_an_employee_id_that_does_not_match_its_commitment_is_named(exports: dict[str, Path]) -> None:
    data = exports["accesses"]
    raw, entries = data.read_bytes().splitlines(keepends=True), _entries(data)
    number = next(i for i, e in enumerate(entries) if "id_salt" in e["actor"])
    employee = entries[number]["actor"]["id"]
    swapped = raw[number].replace(f'"id":"{employee}"'.encode(), b'"id":"emp-00001"')
    assert swapped != raw[number]
    code, output = verify(tampered(data, "employee.jsonl", b"".join([*raw[:number], swapped,
                                                                       *raw[number + 1:]])))
    assert code == 1
    assert (f"line {number + 1} (log_index {entries[number]['log_index']}, entry "
            f"{entries[number]['entry_hash']}): actor.id and actor.id_salt do not match "
            "actor.id_commitment") in output

    csv_raw = exports["csv"].read_bytes()
    code, output = verify(tampered(exports["csv"], "employee.csv",
                                   csv_raw.replace(f",{employee},".encode(), b",emp-00001,", 1)))
    assert code == 1 and "actor.id and actor.id_salt do not match actor.id_commitment" in output


async def test_a_line_respelled_with_the_same_fields_is_named(exports: dict[str, Path]) -> None:
    data = exports["accesses"]
    raw, entries = data.read_bytes().splitlines(keepends=True), _entries(data)
    spaced = json.dumps(entries[0]).encode() + b"\n"  # ", " and ": ", keys in another order
    code, output = verify(tampered(data, "spaced.jsonl", b"".join([spaced, *raw[1:]])))
    assert code == 1
    assert "line 1 (log_index" in output and "not written as seenby writes it" in output
    assert "shown field(s)" not in output


async def test_a_missing_file_is_named_not_read(exports: dict[str, Path]) -> None:
    result = CliRunner().invoke(cli, ["verify", "export", "nowhere.jsonl", "--key",
                                      str(exports["chain"].parent / "key.txt")])
    assert result.exit_code == 2 and "nowhere.jsonl is not a file" in result.output


async def test_a_customers_whole_export_with_its_completeness_proof_is_complete(
    client: httpx.AsyncClient, tokens: Tokens, exports: dict[str, Path], customer_id: str
) -> None:
    response = await client.get(f"/v1/customers/{customer_id}/completeness", headers=tokens.regulator())
    assert response.status_code == 200, response.text
    proof = exports["chain"].with_name("complete.json")
    proof.write_text(response.text)

    def verify_with_proof(data: Path) -> tuple[int, str]:
        key = str(data.parent / "key.txt")
        result = CliRunner().invoke(cli, ["verify", "export", str(data), "--key", key,
                                          "--completeness", str(proof)])
        return result.exit_code, result.output

    code, output = verify_with_proof(exports["chain"])
    assert code == 0, output
    assert "the export is complete: 8 entries up to log size " in output
    # Only a customer's whole chain can be complete; another customer's proof fits no export of this one.
    code, output = verify_with_proof(exports["accesses"])
    assert code == 1 and "applies to one customer's export of every kind" in output
    other = exports["other"].with_name("other-all.jsonl")
    await save(client, tokens, other.parent, other.name, customer_id=f"{customer_id}-other", kind="all")
    code, output = verify_with_proof(other)
    assert code == 1 and "not customer" in output


@pytest.mark.parametrize("name", ["accesses", "csv"])
async def test_the_progress_reports_every_byte_of_the_data(
    exports: dict[str, Path], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setattr(check, "PROGRESS_STEP", 100)  # several reports, and a rest at the end
    data, reported = exports[name], []
    manifest = data.with_name(data.name + ".manifest.json")
    verifier = parse_verifier_key((data.parent / "key.txt").read_text().strip())
    verdict = check.verify_export(data, manifest, verifier, reported.append)
    assert not verdict.faults
    assert sum(reported) == data.stat().st_size and len(reported) > 2
