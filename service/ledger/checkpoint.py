"""C2SP tlog-checkpoint bodies in C2SP signed notes, signed and verified with Ed25519."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

HASH_SIZE = 32
ED25519_TYPE = 0x01  # signed-note "Signature types"
COSIGNATURE_TYPE = 0x04  # tlog-cosignature v1, Ed25519
ED25519_KEY_SIZE = 32
ED25519_SIGNATURE_SIZE = 64
KEY_ID_SIZE = 4
SIGNATURE_PREFIX = "\u2014 "  # em dash, space
# signed-note: verifiers MUST accept at least 16 signatures and SHOULD cap them.
MAX_SIGNATURES = 100
MAX_TREE_SIZE = (1 << 64) - 1

_TREE_SIZE = re.compile(r"0|[1-9][0-9]*")
_KEY_ID_HEX = re.compile(r"[0-9a-fA-F]{8}")


class NoteError(ValueError):
    """A signed note that is malformed or carries no valid signature from the expected key."""


class CheckpointError(ValueError):
    """A checkpoint body that does not follow tlog-checkpoint, or is not from the expected log."""


# --- Checkpoints -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes

    def __post_init__(self) -> None:
        if not self.origin or _has_control_characters(self.origin):
            raise CheckpointError("checkpoint origin must be a non-empty single line")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointError(f"tree size {self.size} is outside 0..2**64-1")
        if len(self.root_hash) != HASH_SIZE:
            raise CheckpointError(f"root hash is {len(self.root_hash)} bytes, expected {HASH_SIZE}")

    def body(self) -> str:
        root = base64.b64encode(self.root_hash).decode("ascii")
        return f"{self.origin}\n{self.size}\n{root}\n"


def parse_checkpoint(text: str) -> Checkpoint:
    if not text.endswith("\n"):
        raise CheckpointError("checkpoint text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError("checkpoint needs origin, tree size and root hash lines")
    origin, size_line, root_line, *extensions = lines
    if not origin:
        raise CheckpointError("checkpoint origin is empty")
    # tlog-checkpoint: ASCII decimal, no leading zeros unless the tree is empty.
    if not _TREE_SIZE.fullmatch(size_line) or int(size_line) > MAX_TREE_SIZE:
        raise CheckpointError(f"tree size {size_line!r} is not a decimal number in 0..2**64-1")
    root = _decode_base64(root_line, canonical=True)
    if root is None or len(root) != HASH_SIZE:
        raise CheckpointError(f"root hash {root_line!r} is not the base64 of {HASH_SIZE} bytes")
    # Extension lines are opaque and ignored, but the spec requires them non-empty.
    if any(not line for line in extensions):
        raise CheckpointError("checkpoint extension lines must be non-empty")
    return Checkpoint(origin, int(size_line), root)


# --- Keys --------------------------------------------------------------------------------------


def _check_key_name(name: str) -> None:
    # signed-note: key names are non-empty and hold no Unicode spaces and no "+".
    if not name or "+" in name or any(ch.isspace() for ch in name):
        raise ValueError(f"invalid note key name {name!r}")
    if _has_control_characters(name):
        raise ValueError(f"invalid note key name {name!r}")


def key_id(name: str, public_key_bytes: bytes, key_type: int = ED25519_TYPE) -> bytes:
    # signed-note "Ed25519 signatures": SHA-256(name || 0x0A || 0x01 || public key)[:4]; a
    # tlog-cosignature v1 key puts 0x04 in the type's place.
    material = name.encode("utf-8") + b"\n" + bytes([key_type]) + public_key_bytes
    return hashlib.sha256(material).digest()[:KEY_ID_SIZE]


def raw_public_key(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.public_key().public_bytes_raw()


def verifier_key(name: str, public_key_bytes: bytes, key_type: int = ED25519_TYPE) -> str:
    """`<name>+<hex key id>+<base64(type || public key)>`, the form Go's note package reads."""
    _check_key_name(name)
    if len(public_key_bytes) != ED25519_KEY_SIZE:
        raise ValueError(f"an Ed25519 public key is {ED25519_KEY_SIZE} bytes")
    encoded = base64.b64encode(bytes([key_type]) + public_key_bytes).decode("ascii")
    return f"{name}+{key_id(name, public_key_bytes, key_type).hex()}+{encoded}"


@dataclass(frozen=True)
class Verifier:
    name: str
    key_id: bytes
    public_key: Ed25519PublicKey
    key_type: int = ED25519_TYPE  # COSIGNATURE_TYPE for a witness

    @classmethod
    def for_public_key(cls, name: str, public_key_bytes: bytes, key_type: int = ED25519_TYPE) -> Verifier:
        _check_key_name(name)
        return cls(name, key_id(name, public_key_bytes, key_type),
                   Ed25519PublicKey.from_public_bytes(public_key_bytes), key_type)

    def text(self) -> str:
        return verifier_key(self.name, self.public_key.public_bytes_raw(), self.key_type)

    def verifies(self, message: bytes, signature: bytes) -> bool:
        return ed25519_verifies(self.public_key, message, signature)


def ed25519_verifies(public_key: Ed25519PublicKey, message: bytes, signature: bytes) -> bool:
    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def parse_verifier_key(text: str, key_type: int = ED25519_TYPE) -> Verifier:
    # Split on the first two "+" only: the base64 key data may itself contain "+" (as Go's note does).
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise ValueError("a verifier key is <name>+<hex key id>+<base64 key>")
    name, id_hex, key_text = parts
    _check_key_name(name)
    if not _KEY_ID_HEX.fullmatch(id_hex):
        raise ValueError(f"verifier key id {id_hex!r} is not 8 hex digits")
    key = _decode_base64(key_text, canonical=False)
    if key is None or len(key) != 1 + ED25519_KEY_SIZE or key[0] != key_type:
        raise ValueError(f"verifier key is not 0x{key_type:02x} followed by a 32-byte Ed25519 public key")
    verifier = Verifier.for_public_key(name, key[1:], key_type)
    if verifier.key_id != bytes.fromhex(id_hex):
        raise ValueError(f"verifier key id {id_hex} does not match the key and name")
    return verifier


# --- Signed notes ------------------------------------------------------------------------------


def sign_note(text: str, name: str, private_key: Ed25519PrivateKey) -> str:
    _check_key_name(name)
    _check_note_characters(text)
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    signature = private_key.sign(text.encode("utf-8"))
    blob = key_id(name, raw_public_key(private_key)) + signature
    return f"{text}\n{SIGNATURE_PREFIX}{name} {base64.b64encode(blob).decode('ascii')}\n"


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes  # after the key id

    def line(self) -> str:
        blob = base64.b64encode(self.key_id + self.signature).decode("ascii")
        return f"{SIGNATURE_PREFIX}{self.name} {blob}\n"


def split_note(note: str) -> tuple[str, list[NoteSignature]]:
    """A note's text and its signature lines, none of them checked yet; NoteError if malformed."""
    _check_note_characters(note)
    # signed-note: the text ends at the last blank line; signature lines follow it.
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line before its signatures")
    text, signature_block = note[: split + 1], note[split + 2 :]
    if not signature_block.endswith("\n"):
        raise NoteError("note must end with a newline-terminated signature line")
    lines = signature_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has more than {MAX_SIGNATURES} signatures")
    return text, [NoteSignature(*_parse_signature_line(line)) for line in lines]


def open_note(note: str, verifier: Verifier) -> str:
    """Return the note's text once a signature by `verifier` checks; NoteError otherwise."""
    text, signatures = split_note(note)
    message = text.encode("utf-8")
    verified = False
    for name, signer_id, signature in ((s.name, s.key_id, s.signature) for s in signatures):
        # signed-note: signatures from unknown keys are ignored, even when only the name or
        # only the key id matches; a known key's signature that fails rejects the note.
        if name != verifier.name or signer_id != verifier.key_id:
            continue
        if len(signature) != ED25519_SIGNATURE_SIZE or not verifier.verifies(message, signature):
            raise NoteError(f"signature by {name} does not verify")
        verified = True
    if not verified:
        raise NoteError(f"note has no signature by {verifier.name}+{verifier.key_id.hex()}")
    return text


def _parse_signature_line(line: str) -> tuple[str, bytes, bytes]:
    if not line.startswith(SIGNATURE_PREFIX):
        raise NoteError("signature line must start with an em dash and a space")
    name, space, blob_text = line[len(SIGNATURE_PREFIX) :].partition(" ")
    try:
        _check_key_name(name)
    except ValueError as error:
        raise NoteError(str(error)) from None
    blob = _decode_base64(blob_text, canonical=False) if space else None
    if blob is None or len(blob) <= KEY_ID_SIZE:
        raise NoteError(f"signature line of {name} has no base64 key id and signature")
    return name, blob[:KEY_ID_SIZE], blob[KEY_ID_SIZE:]


def _has_control_characters(text: str) -> bool:
    return any(ord(ch) < 0x20 for ch in text)


def _check_note_characters(text: str) -> None:
    # signed-note: valid UTF-8 with no ASCII control characters other than newline.
    if any(ord(ch) < 0x20 and ch != "\n" for ch in text):
        raise NoteError("note contains a control character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteError("note is not valid UTF-8") from None


def _decode_base64(text: str, *, canonical: bool) -> bytes | None:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if canonical and base64.b64encode(raw).decode("ascii") != text:
        return None
    return raw


# --- Checkpoints as signed notes ---------------------------------------------------------------


def sign_checkpoint(checkpoint: Checkpoint, private_key: Ed25519PrivateKey) -> str:
    # tlog-checkpoint: the log's key name should match the origin line; seenby makes it so.
    return sign_note(checkpoint.body(), checkpoint.origin, private_key)


def open_checkpoint(note: str, verifier: Verifier) -> Checkpoint:
    checkpoint = parse_checkpoint(open_note(note, verifier))
    if checkpoint.origin != verifier.name:
        raise CheckpointError(
            f"checkpoint origin {checkpoint.origin!r} is not the log {verifier.name!r}"
        )
    return checkpoint
