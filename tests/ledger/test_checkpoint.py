"""Checkpoints and signed notes: the C2SP example, round trips, tampering, strict parsing."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.ledger.checkpoint import (
    SIGNATURE_PREFIX,
    Checkpoint,
    CheckpointError,
    NoteError,
    Verifier,
    key_id,
    open_checkpoint,
    open_note,
    parse_checkpoint,
    parse_verifier_key,
    raw_public_key,
    sign_checkpoint,
    sign_note,
    verifier_key,
)
from service.ledger.merkle import EMPTY_ROOT

ORIGIN = "seenby.example/log"
ROOT = bytes(range(32))
CHECKPOINT = Checkpoint(ORIGIN, 42, ROOT)


def private_key(seed: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


LOG_KEY = private_key(1)
OTHER_KEY = private_key(2)


def verifier_for(name: str, key: Ed25519PrivateKey) -> Verifier:
    return parse_verifier_key(verifier_key(name, raw_public_key(key)))


LOG_VERIFIER = verifier_for(ORIGIN, LOG_KEY)


def signature_blob(note: str) -> bytes:
    last_line = note.removesuffix("\n").rsplit("\n", 1)[1]
    return base64.b64decode(last_line.rsplit(" ", 1)[1])


def with_signature_blob(note: str, blob: bytes) -> str:
    head, _ = note.removesuffix("\n").rsplit(" ", 1)
    return f"{head} {base64.b64encode(blob).decode()}\n"


# --- The C2SP signed-note example ------------------------------------------------------------


@pytest.fixture
def spec_example(testdata_dir: Path) -> dict[str, str]:
    return json.loads((testdata_dir / "signed-note" / "example.json").read_text())


def test_spec_example_verifies(spec_example: dict[str, str]) -> None:
    verifier = parse_verifier_key(spec_example["verifier_key"])
    note = f"{spec_example['signed_text']}\n{spec_example['signature_line']}\n"

    assert verifier.name == spec_example["key_name"]
    assert verifier.key_id.hex() == spec_example["key_id_hex"]
    public = verifier.public_key.public_bytes_raw()
    assert key_id(verifier.name, public).hex() == spec_example["key_id_hex"]
    assert verifier_key(verifier.name, public) == spec_example["verifier_key"]
    assert open_note(note, verifier) == spec_example["signed_text"]


def test_spec_example_with_edited_text_fails(spec_example: dict[str, str]) -> None:
    verifier = parse_verifier_key(spec_example["verifier_key"])
    text = spec_example["signed_text"].replace("example", "exemplary")
    with pytest.raises(NoteError, match="does not verify"):
        open_note(f"{text}\n{spec_example['signature_line']}\n", verifier)


# --- Signing and opening -----------------------------------------------------------------------


def test_checkpoint_round_trip() -> None:
    note = sign_checkpoint(CHECKPOINT, LOG_KEY)

    assert note.startswith(f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\n\n{SIGNATURE_PREFIX}")
    assert note.count("\n") == 5
    blob = signature_blob(note)
    assert len(blob) == 4 + 64
    assert blob[:4] == key_id(ORIGIN, raw_public_key(LOG_KEY))
    assert open_checkpoint(note, LOG_VERIFIER) == CHECKPOINT


def test_empty_tree_checkpoint_round_trip() -> None:
    empty = Checkpoint(ORIGIN, 0, EMPTY_ROOT)
    assert open_checkpoint(sign_checkpoint(empty, LOG_KEY), LOG_VERIFIER) == empty


def test_note_text_may_hold_blank_lines() -> None:
    text = "first paragraph\n\nsecond paragraph\n"
    assert open_note(sign_note(text, ORIGIN, LOG_KEY), LOG_VERIFIER) == text


@pytest.mark.parametrize("position", [0, len(ORIGIN) + 1, len(CHECKPOINT.body()) - 2])
def test_edited_text_fails(position: int) -> None:
    note = sign_checkpoint(CHECKPOINT, LOG_KEY)
    edited = note[:position] + chr(ord(note[position]) ^ 1) + note[position + 1 :]
    with pytest.raises(NoteError):
        open_checkpoint(edited, LOG_VERIFIER)


@pytest.mark.parametrize("position", [0, 3, 4, 35, 67])
def test_flipped_signature_byte_fails(position: int) -> None:
    note = sign_checkpoint(CHECKPOINT, LOG_KEY)
    blob = bytearray(signature_blob(note))
    blob[position] ^= 0x01
    with pytest.raises(NoteError):
        open_checkpoint(with_signature_blob(note, bytes(blob)), LOG_VERIFIER)


def test_signature_by_another_key_fails() -> None:
    note = sign_checkpoint(CHECKPOINT, OTHER_KEY)
    with pytest.raises(NoteError, match="no signature by"):
        open_checkpoint(note, LOG_VERIFIER)


def test_signature_under_another_name_fails() -> None:
    note = sign_note(CHECKPOINT.body(), "other.example/log", LOG_KEY)
    with pytest.raises(NoteError, match="no signature by"):
        open_checkpoint(note, LOG_VERIFIER)


def test_known_name_and_key_id_with_a_bad_signature_fails() -> None:
    # Same name and key id as our key, but a different public key: the signature must fail.
    impostor = Verifier(ORIGIN, LOG_VERIFIER.key_id, OTHER_KEY.public_key())
    with pytest.raises(NoteError, match="does not verify"):
        open_note(sign_checkpoint(CHECKPOINT, LOG_KEY), impostor)


@pytest.mark.parametrize(
    "note",
    [CHECKPOINT.body(), CHECKPOINT.body() + "\n", CHECKPOINT.body()[:-1]],
    ids=["no blank line", "blank line but no signature", "no final newline"],
)
def test_missing_signature_line_fails(note: str) -> None:
    with pytest.raises(NoteError):
        open_note(note, LOG_VERIFIER)


def test_signatures_from_other_keys_are_ignored() -> None:
    note = sign_checkpoint(CHECKPOINT, LOG_KEY)
    witness = sign_note(CHECKPOINT.body(), "witness.example/w1", OTHER_KEY).rsplit("\n", 2)[1]
    cosigned = f"{note}{witness}\n"
    same_name = sign_note(CHECKPOINT.body(), ORIGIN, OTHER_KEY).rsplit("\n", 2)[1]

    assert open_checkpoint(cosigned, LOG_VERIFIER) == CHECKPOINT
    assert open_checkpoint(f"{note}{same_name}\n", LOG_VERIFIER) == CHECKPOINT
    with pytest.raises(NoteError, match="no signature by"):
        open_checkpoint(f"{CHECKPOINT.body()}\n{witness}\n", LOG_VERIFIER)


@pytest.mark.parametrize(
    "signature_line",
    [
        "- seenby.example/log AAAAAAAA",
        "\u2014seenby.example/log AAAAAAAA",
        f"{SIGNATURE_PREFIX}seenby.example/log",
        f"{SIGNATURE_PREFIX}seenby.example/log ",
        f"{SIGNATURE_PREFIX}seenby.example/log AAAA",
        f"{SIGNATURE_PREFIX}seenby.example/log not*base64",
        f"{SIGNATURE_PREFIX} AAAAAAAAAAAAAAAAAAAA",
        f"{SIGNATURE_PREFIX}a+b AAAAAAAAAAAAAAAAAAAA",
        "",
    ],
)
def test_malformed_signature_lines_reject_the_note(signature_line: str) -> None:
    note = sign_checkpoint(CHECKPOINT, LOG_KEY)
    with pytest.raises(NoteError):
        open_note(f"{note}{signature_line}\n", LOG_VERIFIER)


def test_control_characters_reject_the_note() -> None:
    note = sign_checkpoint(CHECKPOINT, LOG_KEY)
    with pytest.raises(NoteError, match="control character"):
        open_note(note.replace("\n", "\r\n", 1), LOG_VERIFIER)


def test_sign_note_needs_a_final_newline() -> None:
    with pytest.raises(NoteError, match="newline"):
        sign_note("no newline", ORIGIN, LOG_KEY)


def test_checkpoint_from_another_origin_is_refused() -> None:
    foreign = Checkpoint("elsewhere.example/log", 1, ROOT)
    note = sign_note(foreign.body(), ORIGIN, LOG_KEY)
    with pytest.raises(CheckpointError, match="not the log"):
        open_checkpoint(note, LOG_VERIFIER)


# --- Verifier keys -----------------------------------------------------------------------------


def test_verifier_key_format() -> None:
    public = raw_public_key(LOG_KEY)
    text = verifier_key(ORIGIN, public)
    name, id_hex, encoded = text.split("+")

    assert (name, id_hex) == (ORIGIN, key_id(ORIGIN, public).hex())
    assert base64.b64decode(encoded) == b"\x01" + public


LOG_PUBLIC = raw_public_key(LOG_KEY)


def _verifier_text(name: str, id_hex: str, key: bytes) -> str:
    return f"{name}+{id_hex}+{base64.b64encode(key).decode()}"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(_verifier_text(ORIGIN, "00000000", b"\x01" + LOG_PUBLIC), id="wrong key id"),
        pytest.param(_verifier_text(ORIGIN, key_id(ORIGIN, bytes(32)).hex(), b"\x02" + bytes(32)),
                     id="not ed25519"),
        pytest.param(_verifier_text(ORIGIN, key_id(ORIGIN, bytes(31)).hex(), b"\x01" + bytes(31)),
                     id="short key"),
        pytest.param(_verifier_text(ORIGIN, "1234567", b"\x01" + LOG_PUBLIC), id="short key id"),
        pytest.param(f"{ORIGIN}+{key_id(ORIGIN, LOG_PUBLIC).hex()}+not*base64", id="bad base64"),
        pytest.param(f"{ORIGIN}+{key_id(ORIGIN, LOG_PUBLIC).hex()}", id="missing key"),
        pytest.param("a+b" + verifier_key(ORIGIN, LOG_PUBLIC).removeprefix(ORIGIN), id="plus in name"),
        pytest.param(" " + verifier_key(ORIGIN, LOG_PUBLIC), id="space in name"),
    ],
)
def test_malformed_verifier_keys_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_verifier_key(text)


# --- Checkpoint text ---------------------------------------------------------------------------

ROOT_B64 = base64.b64encode(ROOT).decode()


def test_parse_checkpoint_reads_the_body_back() -> None:
    assert parse_checkpoint(CHECKPOINT.body()) == CHECKPOINT


def test_parse_checkpoint_of_the_spec_example() -> None:
    body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    checkpoint = parse_checkpoint(body)
    assert (checkpoint.origin, checkpoint.size) == ("example.com/behind-the-sofa", 20852163)
    assert checkpoint.body() == body


def test_extension_lines_are_ignored() -> None:
    assert parse_checkpoint(f"{CHECKPOINT.body()}ext one\next two\n") == CHECKPOINT


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(f"{ORIGIN}\n42\n{ROOT_B64}", id="no final newline"),
        pytest.param(f"{ORIGIN}\n42\n", id="no root line"),
        pytest.param(f"\n42\n{ROOT_B64}\n", id="empty origin"),
        pytest.param(f"{ORIGIN}\n042\n{ROOT_B64}\n", id="leading zero"),
        pytest.param(f"{ORIGIN}\n00\n{ROOT_B64}\n", id="zero with leading zero"),
        pytest.param(f"{ORIGIN}\n-1\n{ROOT_B64}\n", id="negative"),
        pytest.param(f"{ORIGIN}\n+1\n{ROOT_B64}\n", id="plus sign"),
        pytest.param(f"{ORIGIN}\n4.2\n{ROOT_B64}\n", id="not an integer"),
        pytest.param(f"{ORIGIN}\n 42\n{ROOT_B64}\n", id="leading space"),
        pytest.param(f"{ORIGIN}\n\u0664\u0662\n{ROOT_B64}\n", id="non-ASCII digits"),
        pytest.param(f"{ORIGIN}\n{1 << 64}\n{ROOT_B64}\n", id="beyond 2**64-1"),
        pytest.param(f"{ORIGIN}\n\n{ROOT_B64}\n", id="empty size"),
        pytest.param(f"{ORIGIN}\n42\n{base64.b64encode(ROOT[:31]).decode()}\n", id="31-byte root"),
        pytest.param(f"{ORIGIN}\n42\n{base64.b64encode(ROOT + b'x').decode()}\n", id="33-byte root"),
        pytest.param(f"{ORIGIN}\n42\n{ROOT_B64.rstrip('=')}\n", id="unpadded base64"),
        pytest.param(f"{ORIGIN}\n42\n{ROOT_B64[:-2]}B=\n", id="non-canonical base64"),
        pytest.param(f"{ORIGIN}\n42\n{ROOT.hex()}\n", id="hex root"),
        pytest.param(f"{ORIGIN}\n42\n{ROOT_B64}\n\n", id="empty extension line"),
        pytest.param(f"{ORIGIN}\n42\n{ROOT_B64}\next\n\nmore\n", id="empty line between extensions"),
    ],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(CheckpointError):
        parse_checkpoint(text)


@pytest.mark.parametrize(
    ("origin", "size", "root"),
    [("", 1, ROOT), ("a\nb", 1, ROOT), (ORIGIN, -1, ROOT), (ORIGIN, 1, ROOT[:31])],
)
def test_impossible_checkpoints_cannot_be_built(origin: str, size: int, root: bytes) -> None:
    with pytest.raises(CheckpointError):
        Checkpoint(origin, size, root)


def test_verifier_keys_round_trip_when_their_base64_holds_plus_signs() -> None:
    seen_plus = 0
    for _ in range(64):
        public = raw_public_key(Ed25519PrivateKey.generate())
        text = verifier_key(ORIGIN, public)
        seen_plus += "+" in text.split("+", 2)[2]
        assert raw_public_key_bytes(parse_verifier_key(text)) == public
    assert seen_plus, "64 random keys should include base64 with '+'"


def raw_public_key_bytes(verifier: Verifier) -> bytes:
    return verifier.public_key.public_bytes_raw()
