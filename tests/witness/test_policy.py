"""tlog-policy files as C2SP specifies them, and quorums over valid cosignatures only."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from service.cli import app as cli
from service.ledger.checkpoint import COSIGNATURE_TYPE, NoteError, raw_public_key, verifier_key
from service.witness.cosignature import cosign
from service.witness.policy import PolicyError, load_policy, parse_policy
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
    (["witness W\x0b{X1}", "quorum none"], "control character"),  # str.split() would take it as space
    (["witness W {X1}\r", "quorum none"], "control character"),
    (["witness W {X1}\x7f", "quorum none"], "control character"),
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


def test_only_ascii_space_and_tab_separate_and_high_octets_are_opaque() -> None:
    """tlog-policy "Structure" and "Character set": whitespace is ASCII space and tab only, and octets
    with the high bit set are opaque, in names and comments alike, UTF-8 or not."""
    log = TestLog()
    keys = {"X\u00a0Y": "X1", "X\u0085Y": "X2", "\u212a": "X3", "K": "Y1"}  # no-break space, NEL, Kelvin sign
    names = list(keys)
    data = b"\n".join([
        b"# cl\xe9 du journal (Latin-1, not UTF-8)",
        f"log {log.verifier.text()}\thttps://l\u00f6g.example/".encode(),
        *(f" witness {name}\t{_vkey(key)}  ".encode() for name, key in keys.items()),
        b"witness W\xe9 " + _vkey("Y2").encode(),
        "group G 5 X\u00a0Y X\u0085Y \u212a K".encode() + b" W\xe9",
        b"quorum G",
    ]) + b"\n"
    policy = parse_policy(data)
    assert list(policy.witnesses) == [*names, "W\udce9"]
    assert policy.groups["G"].members == (*names, "W\udce9")
    assert policy.log_urls[log.origin] == "https://l\u00f6g.example/"
    checkpoint = log.grow(2)
    everyone = _cosigned(checkpoint, "X1", "X2", "X3", "Y1", "Y2")
    assert policy.cosigned(everyone) == {name: 1_700_000_000 for name in policy.witnesses}
    assert policy.satisfied_by(policy.cosigned(everyone))
    assert not policy.satisfied_by(policy.cosigned(_cosigned(checkpoint, "X1", "X2", "X3", "Y2")))  # no K
    assert parse_policy(data.decode("utf-8", "surrogateescape")) == policy  # text in, the same octets
    with pytest.raises(PolicyError, match="taken"):
        parse_policy(data.replace(b"witness K\t", b"witness \xe2\x84\xaa\t"))  # now two Kelvin signs
    with pytest.raises(PolicyError, match="verifier key is UTF-8"):
        parse_policy(b"witness W x\xe9.example+00000000+AA==\nquorum W\n")


def test_the_logs_policy_keeps_only_utf8_witness_names_and_urls(tmp_path: Path) -> None:
    """Its witness names become text in the log's database and metrics, its URLs requests."""
    path = tmp_path / "policy.txt"
    path.write_bytes(b"# \xe9\nwitness \xc3\xa9 " + _vkey("X1").encode()
                     + b" https://w.example/\nquorum \xc3\xa9\n")
    policy = load_policy(path)
    assert policy is not None and list(policy.witnesses) == ["\u00e9"]
    path.write_bytes(b"witness \xe9 " + _vkey("X1").encode() + b" https://w.example/\nquorum \xe9\n")
    with pytest.raises(PolicyError, match="not UTF-8"):
        load_policy(path)


def test_verify_checkpoint_reads_the_policy_as_octets(tmp_path: Path) -> None:
    """`seenby verify checkpoint --policy`: a comment in Latin-1 and a name with a no-break space."""
    log = TestLog()
    policy = tmp_path / "policy.txt"
    policy.write_bytes(b"# t\xe9moin unique\n" + f"log {log.verifier.text()}\n"
                       f"witness Le\u00a0T\u00e9moin {_vkey('X1')}\nquorum Le\u00a0T\u00e9moin\n".encode())
    note = tmp_path / "checkpoint.txt"
    note.write_text(_cosigned(log.grow(3), "X1"))
    result = CliRunner().invoke(cli, ["verify", "checkpoint", str(note), "--key", log.verifier.text(),
                                      "--policy", str(policy)])
    assert result.exit_code == 0, result.output
    assert "witnessed by Le\u00a0T\u00e9moin" in result.output
