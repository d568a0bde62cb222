"""The customer page's verification library (service/page/static/verify/, ES modules on WebCrypto),
run in Node: against the shared vectors, against notes and cosignatures the Python code makes,
and end to end against a real `seenby serve`, as it is and with its answers tampered with."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.ledger.checkpoint import (
    COSIGNATURE_TYPE,
    Checkpoint,
    NoteSignature,
    raw_public_key,
    sign_checkpoint,
    split_note,
    verifier_key,
)
from service.migrate import upgrade
from service.witness.cosignature import cosign
from tests.ci import unavailable
from tests.conftest import Tokens, base_settings
from tests.factories import access_event, algorithm_actor
from tests.servers import running_server, settings_env

ROOT = Path(__file__).resolve().parents[2]
JS = Path(__file__).resolve().parent / "js"
TESTDATA_DIR = ROOT.parent / "shared" / "testdata"


@pytest.fixture(scope="session")
def node() -> str:
    path = shutil.which("node")
    if path is None:
        unavailable("node (v20 or later) is not installed")
    version = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
    if int(version.strip().lstrip("v").split(".")[0]) < 20:
        unavailable(f"node {version.strip()} is older than v20 (no Ed25519 in WebCrypto)")
    return path


@pytest.fixture(scope="session")
def testdata() -> Path:
    if not TESTDATA_DIR.is_dir():
        unavailable(f"shared test vectors not found: {TESTDATA_DIR} is missing")
    return TESTDATA_DIR


def run_node(node: str, script: str, *args: str, timeout: float = 120) -> Any:
    done = subprocess.run([node, str(JS / script), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().split("\n")[-1])


# --- Vectors -----------------------------------------------------------------------------------


def _vector_files(testdata: Path, kind: str) -> int:
    return len(list((testdata / "rfc6962" / kind).rglob("*.json")))


def test_every_rfc6962_inclusion_vector(node: str, testdata: Path) -> None:
    """Each vector through the one-off verification and through a fresh InclusionChecker."""
    outcome = run_node(node, "vectors.mjs", "inclusion", str(testdata))
    assert outcome["failures"] == []
    assert outcome["passed"] == 2 * _vector_files(testdata, "inclusion") > 0


def test_every_rfc6962_consistency_vector(node: str, testdata: Path) -> None:
    outcome = run_node(node, "vectors.mjs", "consistency", str(testdata))
    assert outcome["failures"] == []
    assert outcome["passed"] == _vector_files(testdata, "consistency") > 0


def test_customer_index_vectors(node: str, testdata: Path) -> None:
    """Keys and values match; every lookup verifies as present or absent; every invalid one fails."""
    cases = json.loads((testdata / "customer-index" / "vectors.json").read_text())["cases"]
    outcome = run_node(node, "vectors.mjs", "index", str(testdata))
    assert outcome["failures"] == []
    expected = sum(2 * len(c["keys"]) + 3 * len(c["lookups"]) + len(c.get("invalid_lookups", []))
                   for c in cases)
    assert outcome["passed"] == expected


def test_signed_note_example_and_negatives(node: str, testdata: Path) -> None:
    """The spec's example opens; a flipped byte of text, signature or key, another key, fail."""
    outcome = run_node(node, "vectors.mjs", "note", str(testdata))
    assert outcome["failures"] == []
    assert outcome["passed"] == 11


# --- Checkpoints, cosignatures and policies made by the Python code ----------------------------


@dataclass(frozen=True)
class WitnessKey:
    name: str
    key: Ed25519PrivateKey

    @property
    def vkey(self) -> str:
        return verifier_key(self.name, raw_public_key(self.key), COSIGNATURE_TYPE)

    def line(self, body: str, timestamp: int = 1_700_000_000) -> str:
        return cosign(body, self.name, self.key, timestamp).line()


def _witnesses() -> list[WitnessKey]:
    return [WitnessKey(f"witness.example/{n}", Ed25519PrivateKey.generate()) for n in ("w1", "w2", "w3")]


def _policy(log_vkey: str, witnesses: list[WitnessKey]) -> str:
    lines = [f"log {log_vkey}", *(f"witness w{n}\t{w.vkey} https://w{n}.example/" for n, w in
                                  enumerate(witnesses, 1)),
             "# two of three", "group two-of-three 2 w1 w2 w3", "quorum two-of-three"]
    return "\n".join(lines) + "\n"


def _tampered(line: str) -> str:
    prefix, blob = line.rstrip("\n").rsplit(" ", 1)
    raw = bytearray(base64.b64decode(blob))
    raw[-1] ^= 1
    return f"{prefix} {base64.b64encode(bytes(raw)).decode()}\n"


def test_checkpoints_and_cosignatures_from_python(node: str, tmp_path: Path) -> None:
    origin = "seenby.test/log"
    log_key = Ed25519PrivateKey.generate()
    log_vkey = verifier_key(origin, raw_public_key(log_key))
    root = bytes(range(32))
    note = sign_checkpoint(Checkpoint(origin, 123456, root), log_key)
    body, _ = split_note(note)
    w1, w2, w3 = witnesses = _witnesses()
    stranger = WitnessKey("witness.example/w9", Ed25519PrivateKey.generate())
    wrong = verifier_key(origin, raw_public_key(Ed25519PrivateKey.generate()))

    def want(cosigned: list[str], failed: list[str], satisfied: bool) -> dict[str, Any]:
        return {"size": 123456, "root": base64.b64encode(root).decode(), "cosigned": cosigned,
                "failed": failed, "satisfied": satisfied}

    cases = [
        ("all three", note + w1.line(body) + w2.line(body) + w3.line(body),
         want(["w1", "w2", "w3"], [], True)),
        ("two of three", note + w3.line(body) + w1.line(body), want(["w1", "w3"], [], True)),
        ("one of three", note + w2.line(body), want(["w2"], [], False)),
        ("none", note, want([], [], False)),
        ("a stranger's cosignature", note + stranger.line(body) + w1.line(body), want(["w1"], [], False)),
        ("w2's line tampered", note + w1.line(body) + _tampered(w2.line(body)) + w3.line(body),
         want(["w1", "w3"], ["w2"], True)),
        ("w3 cosigned another body", note + w1.line(body) + w3.line(body.replace("123456", "123457")),
         want(["w1"], ["w3"], False)),
        ("a zero timestamp", note + w1.line(body) + NoteSignature(
            w2.name, cosign(body, w2.name, w2.key, 1).key_id, bytes(8) + bytes(64)).line(),
         want(["w1"], ["w2"], False)),
        ("the log's signature tampered", _tampered(note), {"error": "NoteError"}),
        ("another origin", sign_checkpoint(Checkpoint("seenby.test/other", 1, root), log_key),
         {"error": "NoteError"}),
    ]
    fixture = {
        "log_key": log_vkey, "wrong_log_key": wrong, "policy": _policy(log_vkey, witnesses),
        "cases": [{"name": name, "note": text, "want": expected} for name, text, expected in cases],
        "bad_policies": [
            f"witness w1 {w1.vkey}\n",  # no quorum
            f"witness w1 {w1.vkey}\nquorum w2\n",  # undefined
            f"witness w1 {w1.vkey}\ngroup g 2 w1\nquorum g\n",  # threshold above the members
            f"witness w1 {w1.vkey}\ngroup g 1 w1 w1\nquorum g\n",  # a member twice
            f"witness w1 {w1.vkey}\nwitness w2 {w1.vkey}\nquorum w1\n",  # a key twice
            f"witness w1 {log_vkey}\nquorum w1\n",  # a log key (0x01) as a witness's
            f"witness w1 {w1.vkey}\nquorum w1\nquorum w1\n",  # two quorums
            f"witness none {w1.vkey}\nquorum none\n",  # a reserved name
            f"witness w1 {w1.vkey}\rquorum w1\n",  # a control character
        ],
    }
    path = tmp_path / "witness.json"
    path.write_text(json.dumps(fixture))
    outcome = run_node(node, "vectors.mjs", "witness", str(path))
    assert outcome["failures"] == []
    assert outcome["passed"] == len(cases) + len(fixture["bad_policies"]) + 1


# --- Many leaves of one tree -------------------------------------------------------------------


def test_ten_thousand_leaves_of_one_tree_verify_fast_and_nothing_wrong_passes(node: str) -> None:
    outcome = run_node(node, "checker.mjs", "500003", "10000", timeout=300)
    assert outcome["failures"] == []
    assert outcome["leaves"] == 10_000
    # A fresh walk is 19 hashes a leaf; shared nodes and proven siblings cut it to a handful.
    assert outcome["digestsPerLeaf"] < 10, outcome
    assert outcome["milliseconds"] < 5_000, outcome


# --- End to end against `seenby serve` ---------------------------------------------------------

CUSTOMER = "cust-page-verify"
RECORDED = 6
BULK = "cust-page-bulk"  # more entries than one page (500) holds
BULK_RECORDED = 1_100


@dataclass(frozen=True)
class Live:
    base: str
    tokens: Tokens
    verifier_key: str
    completeness: dict[str, Any]


def _wait_for_head(http: httpx.Client, headers: dict[str, str], seq: int,
                   within: float = 30.0) -> dict[str, Any]:
    """Until the completeness proof's head is the customer's entry `seq` (its index leaf signed)."""
    deadline = time.monotonic() + within
    while True:
        response = http.get("/v1/me/completeness", headers=headers)
        if response.status_code == 200 and (response.json()["head"] or {}).get("customer_seq") == seq:
            document: dict[str, Any] = response.json()
            return document
        assert time.monotonic() < deadline, f"the index never reached customer_seq {seq}: {response.text}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    work = tmp_path_factory.mktemp("page-verify")
    data = work / "seenby"
    settings = base_settings(data, database_url=f"sqlite+aiosqlite:///{data}/seenby.db")
    upgrade(settings)
    tokens = Tokens.for_settings(settings)
    with running_server(settings_env(settings), work) as base, \
            httpx.Client(base_url=base, timeout=30) as http:
        events = [
            access_event(CUSTOMER),
            access_event(CUSTOMER, justification="Prüfung «vorab» \u2013 ✓ \u2028 \"quoted\" \\ 😀"),
            access_event("cust-page-someone-else"),
            access_event(CUSTOMER, actor=algorithm_actor(), action="train", purpose="model_training"),
            access_event("cust-page-someone-else"),
        ]
        events += [access_event(CUSTOMER) for _ in range(RECORDED - 3)]
        for event in events:
            response = http.post("/v1/accesses", json=event, headers=tokens.service())
            assert response.status_code == 201, response.text
        for start in range(0, BULK_RECORDED, 1_000):
            batch = [access_event(BULK) for _ in range(min(1_000, BULK_RECORDED - start))]
            response = http.post("/v1/accesses:batch", json={"events": batch}, headers=tokens.service())
            assert response.status_code == 201, response.text
        _wait_for_head(http, tokens.customer(BULK), BULK_RECORDED - 1)
        document = _wait_for_head(http, tokens.customer(CUSTOMER), RECORDED - 1)
        key = http.get("/v1/log/key")
        assert key.status_code == 200, key.text
        yield Live(base, tokens, key.text.strip(), document)


def verify(node: str, live: Live, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    customer = overrides.get("customerId", CUSTOMER)
    token = overrides.pop("token", None) or live.tokens.mint("customer", customer)
    request = {"apiBase": live.base, "token": token, "verifierKey": live.verifier_key, "policy": None,
               "customerId": customer, **overrides}
    path = tmp_path / "input.json"
    path.write_text(json.dumps(request))
    outcome: dict[str, Any] = run_node(node, "run_verify.mjs", str(path))
    assert not outcome["tokenInUrl"]
    assert outcome["withoutToken"] == []
    return outcome


def checks(result: dict[str, Any]) -> set[str]:
    return {failure["check"] for failure in result["failures"]}


def test_a_customer_verifies_everything_it_is_shown(node: str, live: Live, tmp_path: Path) -> None:
    outcome = verify(node, live, tmp_path)
    result = outcome["result"]
    assert result["failures"] == []
    assert result["ok"] is True
    assert result["complete"] is True
    assert result["entries"] == RECORDED and result["pending"] == 0
    assert result["treeSize"] >= RECORDED + 2  # the other customer's entries and an index leaf
    assert len(result["verified"]) == RECORDED
    for entry_hash, text in result["verified"].items():
        assert json.loads(text)["customer_id"] == CUSTOMER
        assert len(entry_hash) == 64
    assert any("Prüfung" in text for text in result["verified"].values())
    phases = [message["phase"] for message in outcome["progress"]]
    assert {"checkpoint", "completeness", "entries"} <= set(phases)
    assert all(message["type"] == "progress" for message in outcome["progress"])
    assert outcome["requests"][0] == "/v1/me/completeness"
    assert any(path.startswith("/v1/me/entries?") and "tree_size=" in path for path in outcome["requests"])


def test_a_wrong_pinned_key_fails_the_checkpoint_signature(node: str, live: Live, tmp_path: Path) -> None:
    origin = live.verifier_key.split("+", 1)[0]
    wrong = verifier_key(origin, raw_public_key(Ed25519PrivateKey.generate()))
    result = verify(node, live, tmp_path, verifierKey=wrong)["result"]
    assert result["ok"] is False
    assert checks(result) == {"checkpoint_signature"}
    assert result["complete"] is None and result["treeSize"] is None
    assert result["verified"] == {}


def test_a_key_that_is_not_a_key_fails_the_checkpoint_signature(node: str, live: Live,
                                                                 tmp_path: Path) -> None:
    result = verify(node, live, tmp_path, verifierKey="not a key")["result"]
    assert result["ok"] is False and checks(result) == {"checkpoint_signature"}


@pytest.mark.parametrize(("tamper", "failed"), [
    ("field", {"fields"}),
    ("entry", {"fields"}),
    ("canonical", {"entry_hash", "fields", "chain", "inclusion"}),
    ("drop", {"chain", "completeness"}),
    ("inclusion", {"inclusion"}),
    ("head", {"completeness"}),
    ("index_proof", {"completeness"}),
    ("network", {"fetch"}),
    # Answers no seenby sends are a mismatch, not an outage: a lying server must not get the
    # neutral "could not check" for sending garbage.
    ("no_items", {"malformed"}),
    ("no_checkpoint", {"malformed"}),
    ("unreadable", {"malformed"}),
])
def test_what_seenby_answers_tampered_with_is_caught(node: str, live: Live, tmp_path: Path, tamper: str,
                                                     failed: set[str]) -> None:
    result = verify(node, live, tmp_path, tamper=tamper)["result"]
    assert result["ok"] is False
    assert checks(result) == failed, result["failures"]
    assert all(isinstance(failure["detail"], str) and failure["detail"] for failure in result["failures"])


@pytest.mark.parametrize("tamper", ["unavailable", "completeness_network"])
def test_completeness_unavailable_is_not_a_failure_but_is_said(node: str, live: Live, tmp_path: Path,
                                                               tamper: str) -> None:
    """No mismatch, so no failure; but the signed tree holds entries, so it commits to an index:
    the result says completeness went unchecked, and why, for the badge not to call it verified."""
    result = verify(node, live, tmp_path, tamper=tamper)["result"]
    assert result["failures"] == []
    assert result["ok"] is True and result["complete"] is None
    assert result["entries"] == RECORDED
    problem = {"unavailable": "GET /v1/me/completeness answered 503",
               "completeness_network": "GET /v1/me/completeness failed: fetch failed"}[tamper]
    assert result["completenessProblem"] == problem


def test_a_token_seenby_refuses_is_a_fetch_failure(node: str, live: Live, tmp_path: Path) -> None:
    """With its status: the page tells a refused token (sign in again) from a mismatch."""
    result = verify(node, live, tmp_path, token="not-a-token")["result"]
    assert result["ok"] is False
    assert result["failures"] == [{"check": "fetch", "status": 401,
                                   "detail": "GET /v1/me/completeness answered 401"}]


def test_an_unreachable_seenby_is_a_fetch_failure(node: str, live: Live, tmp_path: Path) -> None:
    result = verify(node, live, tmp_path, apiBase="http://127.0.0.1:9")["result"]
    assert result["ok"] is False and checks(result) == {"fetch"}
    assert {failure["status"] for failure in result["failures"]} == {0}


def _cosigned(live: Live, signers: list[WitnessKey], tampered: WitnessKey | None = None) -> list[str]:
    body, _ = split_note(live.completeness["checkpoint"])
    lines = [w.line(body) for w in signers]
    if tampered is not None:
        lines.append(_tampered(tampered.line(body)))
    return lines


def test_witnesses_of_a_policy_are_checked(node: str, live: Live, tmp_path: Path) -> None:
    """The real checkpoint with cosignature lines added as a witnessed seenby serves them."""
    w1, w2, w3 = witnesses = _witnesses()
    policy = _policy(live.verifier_key, witnesses)

    def run(signers: list[WitnessKey], tampered: WitnessKey | None = None) -> dict[str, Any]:
        lines = _cosigned(live, signers, tampered)
        result: dict[str, Any] = verify(node, live, tmp_path, policy=policy, completeness=live.completeness,
                                        cosignatures=lines)["result"]
        return result

    quorum = run([w1, w3])
    assert quorum["failures"] == [] and quorum["ok"] is True
    assert sorted(quorum["cosigners"]) == ["w1", "w3"]
    assert quorum["complete"] is True

    short = run([w2])
    assert short["ok"] is False and checks(short) == {"cosignatures"}
    assert short["cosigners"] == ["w2"]

    bad = run([w1, w3], tampered=w2)
    assert bad["ok"] is False
    assert [f["detail"].split(":")[0] for f in bad["failures"]] == ["w2"]
    assert checks(bad) == {"cosignatures"}

    unreadable = verify(node, live, tmp_path, policy="quorum nobody\n")["result"]
    assert unreadable["ok"] is False and checks(unreadable) == {"cosignatures"}


def test_a_chain_of_several_pages(node: str, live: Live, tmp_path: Path) -> None:
    outcome = verify(node, live, tmp_path, customerId=BULK)
    result = outcome["result"]
    assert result["failures"] == [] and result["ok"] is True and result["complete"] is True
    assert result["entries"] == BULK_RECORDED == len(result["verified"])
    entries = [m for m in outcome["progress"] if m["phase"] == "entries"]
    assert [m["done"] for m in entries] == [500, 1_000, 1_100]
    assert entries[-1]["total"] == 1_100
    assert sum(1 for path in outcome["requests"] if path.startswith("/v1/me/entries?")) == 3


def test_the_worker_module_posts_progress_and_one_result(node: str, live: Live, tmp_path: Path) -> None:
    """worker.js as a module worker runs it: its messages, with `self` as Node lacks it."""
    outcome = verify(node, live, tmp_path, viaWorker=True)
    assert outcome["result"]["ok"] is True
    assert outcome["progress"] and all(m["type"] == "progress" for m in outcome["progress"])


async def test_the_worker_in_chromium_under_the_page_csp(live: Live) -> None:
    """The page's origin and headers, Chromium's own WebCrypto (Ed25519): a module worker from
    /app/verify/worker.js verifies the customer's chain, and a wrong key fails."""
    chromium = (os.environ.get("SEENBY_CHROMIUM") or shutil.which("chromium")
                or shutil.which("chromium-browser"))
    if chromium is None:
        unavailable("no chromium to run the worker in (apt-get install chromium, or SEENBY_CHROMIUM)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        unavailable("playwright (Python) is not installed")

    origin = live.verifier_key.split("+", 1)[0]
    wrong = verifier_key(origin, raw_public_key(Ed25519PrivateKey.generate()))
    script = """async (input) => {
        const worker = new Worker("/app/verify/worker.js", {type: "module"});
        return await new Promise((resolve) => {
            const progress = [];
            worker.onmessage = (event) => {
                if (event.data.type === "result") resolve({result: event.data, progress});
                else progress.push(event.data);
            };
            worker.onerror = (event) => resolve({error: String(event.message)});
            worker.postMessage(input);
        });
    }"""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = await browser.new_page()
            response = await page.goto(f"{live.base}/app/")
            assert response is not None
            assert "connect-src 'self'" in response.headers["content-security-policy"]
            request = {"apiBase": live.base, "token": live.tokens.mint("customer", CUSTOMER),
                       "verifierKey": live.verifier_key, "policy": None, "customerId": CUSTOMER}
            good = await page.evaluate(script, request)
            bad = await page.evaluate(script, {**request, "verifierKey": wrong})
        finally:
            await browser.close()
    assert "error" not in good, good
    assert good["result"]["failures"] == [] and good["result"]["ok"] is True
    assert good["result"]["complete"] is True and good["result"]["entries"] == RECORDED
    assert {m["phase"] for m in good["progress"]} >= {"checkpoint", "completeness", "entries"}
    assert checks(bad["result"]) == {"checkpoint_signature"}
