"""tlog-policy files as C2SP specifies them, and quorums over valid cosignatures only."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.ledger.checkpoint import COSIGNATURE_TYPE, NoteError, raw_public_key, verifier_key
from service.witness.cosignature import cosign
from service.witness.policy import PolicyError, parse_policy
from tests.witness.logs import TestLog

WITNESS_KEYS = {name: Ed25519PrivateKey.generate() for name in ("X1", "X2", "X3", "Y1", "Y2", "Y3")}


def _vkey(name: str) -> str:
    return verifier_key(f"{name.lower()}.example/w", raw_public_key(WITNESS_KEYS[name]), COSIGNATURE_TYPE)


def _spec_example(log: TestLog) -> str:
    """The two-level example of tlog-policy's "Example policy", with keys."""
    return "\n".join([
        f"log {log.verifier.text()} https://log.example/",
        *(f"witness {name} {_vkey(name)}" for name in ("X1", "X2", "X3")),
        "group X-witnesses 2 X1 X2 X3",
        "# comments and blank lines are ignored",
        "",
        *(f"  witness\t{name} {_vkey(name)} https://{name}.example/" for name in ("Y1", "Y2", "Y3")),
        "group Y-witnesses any Y1 Y2 Y3",
        "group X-and-Y all X-witnesses Y-witnesses",
        "quorum X-and-Y",
    ]) + "\n"


def _cosigned(checkpoint: str, *names: str) -> str:
    body = checkpoint[:checkpoint.index("\n\n") + 1]
    return checkpoint + "".join(
        cosign(body, f"{name.lower()}.example/w", WITNESS_KEYS[name], 1_700_000_000).line() for name in names)


def test_the_specs_example_policy_and_its_quorum() -> None:
    log = TestLog()
    policy = parse_policy(_spec_example(log))
    assert [v.name for v in policy.logs] == [log.origin]
    assert policy.witnesses["Y2"].url == "https://Y2.example/"
    checkpoint = log.grow(3)
    for names, met in (((), False), (("X1", "X2"), False), (("X1", "Y3"), False),
                       (("X1", "X3", "Y2"), True), (("X1", "X2", "X3", "Y1", "Y2", "Y3"), True)):
        cosigned = policy.cosigned(_cosigned(checkpoint, *names))
        assert set(cosigned) == set(names)
        assert policy.satisfied_by(cosigned) is met, names


def test_a_cosignature_over_another_checkpoint_does_not_count_and_a_bad_one_is_an_error() -> None:
    log = TestLog()
    policy = parse_policy(_spec_example(log))
    earlier = log.grow(2)
    later = log.grow(2)
    moved = later + _cosigned(earlier, "X1").split("\n\n", 1)[1].split("\n", 1)[1]  # X1's line for `earlier`
    with pytest.raises(NoteError, match="does not verify"):
        policy.cosigned(moved)
    assert policy.cosigned(later) == {}


@pytest.mark.parametrize("lines, problem", [
    (["quorum none", "quorum none"], "second quorum"),
    ([], "no quorum"),
    (["quorum W"], "not defined"),
    (["group G any W", "quorum G"], "not defined"),
    (["witness W {X1}", "group G 2 W", "quorum G"], "outside 1..1"),
    (["witness W {X1}", "group G 0 W", "quorum G"], "outside"),
    (["witness W {X1}", "group G 01 W", "quorum G"], "threshold"),
    (["witness W {X1}", "group G any W W", "quorum G"], "twice"),
    (["witness W {X1}", "witness W {X2}", "quorum W"], "taken"),
    (["witness none {X1}", "quorum none"], "taken"),
    (["witness W {X1}", "witness V {X1}", "quorum W"], "listed twice"),
    (["witness W {LOGKEY}", "quorum W"], "0x04"),
    (["frobnicate", "quorum none"], "not a policy line"),
    (["witness W {X1}\x01", "quorum none"], "control character"),
])
def test_malformed_policies_are_refused_naming_the_problem(lines: list[str], problem: str) -> None:
    log = TestLog()
    text = "\n".join(lines).replace("{X1}", _vkey("X1")).replace("{X2}", _vkey("X2"))
    text = text.replace("{LOGKEY}", log.verifier.text())
    with pytest.raises(PolicyError, match=problem):
        parse_policy(text)


def test_quorum_none_needs_no_cosignature() -> None:
    log = TestLog()
    policy = parse_policy(f"log {log.verifier.text()}\nquorum none\n")
    assert policy.satisfied_by({})
    assert policy.log(log.origin) == log.verifier and policy.log("other") is None


def test_witnesses_whose_keys_share_a_name_are_told_apart_by_their_keys() -> None:
    """A hostile witness naming its key after an honest one's cannot stand in for it: each policy
    witness counts only for a cosignature by its own key."""
    log = TestLog()
    honest, hostile = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    shared = "honest.example/w"
    policy = parse_policy("\n".join([
        f"log {log.verifier.text()}",
        f"witness A {verifier_key(shared, raw_public_key(honest), COSIGNATURE_TYPE)}",
        f"witness B {verifier_key(shared, raw_public_key(hostile), COSIGNATURE_TYPE)}",
        "group both all A B",
        "quorum both",
    ]) + "\n")
    checkpoint = log.grow(2)
    body = checkpoint[:checkpoint.index("\n\n") + 1]
    by_hostile = checkpoint + cosign(body, shared, hostile, 1_700_000_000).line()
    assert set(policy.cosigned(by_hostile)) == {"B"}
    assert not policy.satisfied_by(policy.cosigned(by_hostile))
    both = by_hostile + cosign(body, shared, honest, 1_700_000_001).line()
    assert set(policy.cosigned(both)) == {"A", "B"} and policy.satisfied_by(policy.cosigned(both))
