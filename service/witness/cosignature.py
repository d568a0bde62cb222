"""tlog-cosignature v1 with Ed25519: a witness's timestamped signature over a checkpoint's body.

The line is `— <name> base64(key id || u64 timestamp || signature)`, where the key id is that of a
0x04 verifier key and the signature covers "cosignature/v1\ntime <timestamp>\n" and the body.
"""

from __future__ import annotations

from collections.abc import Iterable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.ledger.checkpoint import (
    COSIGNATURE_TYPE,
    ED25519_SIGNATURE_SIZE,
    NoteError,
    NoteSignature,
    Verifier,
    key_id,
    raw_public_key,
    split_note,
)

_TIMESTAMP_SIZE = 8
MAX_TIMESTAMP = (1 << 63) - 1


def signed_message(body: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode() + body.encode("utf-8")


def cosign(body: str, name: str, private_key: Ed25519PrivateKey, timestamp: int) -> NoteSignature:
    if not 0 < timestamp <= MAX_TIMESTAMP:
        raise ValueError("a cosignature's timestamp is a POSIX time in 1..2**63-1")
    signature = private_key.sign(signed_message(body, timestamp))
    return NoteSignature(name, key_id(name, raw_public_key(private_key), COSIGNATURE_TYPE),
                         timestamp.to_bytes(_TIMESTAMP_SIZE, "big") + signature)


def cosigned_by(body: str, signatures: Iterable[NoteSignature], witness: Verifier) -> int | None:
    """The timestamp of the witness's valid cosignature on `body`, or None if it has none there.
    A line with the witness's name and key id that does not verify is an error, as signed-note has
    it for a known key."""
    found = None
    for line in signatures:
        if line.name != witness.name or line.key_id != witness.key_id:
            continue
        stamp, signature = line.signature[:_TIMESTAMP_SIZE], line.signature[_TIMESTAMP_SIZE:]
        timestamp = int.from_bytes(stamp, "big")
        if (len(signature) != ED25519_SIGNATURE_SIZE or not 0 < timestamp <= MAX_TIMESTAMP
                or not witness.verifies(signed_message(body, timestamp), signature)):
            raise NoteError(f"the cosignature by {witness.name} does not verify")
        found = timestamp
    return found


def cosignatures(note: str, witnesses: Iterable[Verifier]) -> dict[str, int]:
    """Which of these witnesses validly cosigned the checkpoint in `note`: name -> timestamp."""
    body, signatures = split_note(note)
    found = {}
    for witness in witnesses:
        timestamp = cosigned_by(body, signatures, witness)
        if timestamp is not None:
            found[witness.name] = timestamp
    return found
