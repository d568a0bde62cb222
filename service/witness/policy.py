"""C2SP tlog-policy: the logs a reader accepts, the witnesses it knows, and the quorum of them
that must have cosigned a checkpoint before it is believed."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from service.ledger.checkpoint import (
    COSIGNATURE_TYPE,
    ED25519_TYPE,
    Verifier,
    parse_verifier_key,
    split_note,
)
from service.witness.cosignature import cosigned_by

NONE = "none"  # the predefined quorum that needs no cosignature
# tlog-policy "Character set": tab, 0x20-0x7E and 0x80-0xFF besides the newlines between lines.
_NOT_ALLOWED = re.compile(rb"[^\t\x20-\x7e\x80-\xff]")
_WHITESPACE = re.compile(rb"[ \t]+")  # ASCII space and tab only, never U+00A0 or U+0085


class PolicyError(ValueError):
    pass


@dataclass(frozen=True)
class Witness:
    name: str  # the policy's name for it
    verifier: Verifier  # its cosignature key (0x04), whose own name is the cosigner's
    url: str | None  # its submission prefix


@dataclass(frozen=True)
class Group:
    threshold: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class Policy:
    logs: tuple[Verifier, ...]
    log_urls: dict[str, str | None]
    witnesses: dict[str, Witness]
    groups: dict[str, Group] = field(default_factory=dict)
    quorum: str = NONE

    def satisfied_by(self, cosigned: Collection[str]) -> bool:
        """Whether the witnesses (by policy name) that cosigned meet the quorum."""
        return self._witnessed(self.quorum, cosigned)

    def _witnessed(self, name: str, cosigned: Collection[str]) -> bool:
        if name == NONE:
            return True
        group = self.groups.get(name)
        if group is None:
            return name in cosigned
        return sum(self._witnessed(member, cosigned) for member in group.members) >= group.threshold

    def cosigned(self, note: str) -> dict[str, int]:
        """The policy's witnesses with a valid cosignature in this note: policy name -> timestamp.
        Each witness by its own name and key: two witnesses whose keys share a name are two, and
        one's cosignature never counts for the other."""
        body, signatures = split_note(note)
        return {name: stamp for name, witness in self.witnesses.items()
                if (stamp := cosigned_by(body, signatures, witness.verifier)) is not None}

    def log(self, origin: str) -> Verifier | None:
        return next((log for log in self.logs if log.name == origin), None)


def load_policy(path: Path | None) -> Policy | None:
    """SEENBY_WITNESS_POLICY_FILE: its policy, which must name at least one witness to submit to."""
    if path is None:
        return None
    try:
        policy = parse_policy(path.read_bytes())
    except OSError as exc:
        raise PolicyError(f"{path} cannot be read: {exc}") from exc
    except PolicyError as exc:
        raise PolicyError(f"{path}: {exc}") from exc
    if not any(witness.url for witness in policy.witnesses.values()):
        raise PolicyError(f"{path} gives no witness a URL to submit checkpoints to")
    # The log keeps witness names as text in its database and in metrics, and calls the URLs.
    for witness in policy.witnesses.values():
        if not all(_is_utf8(text) for text in (witness.name, witness.url or "")):
            raise PolicyError(f"{path}: the name or URL of witness {witness.name!r} is not UTF-8")
    return policy


def parse_policy(data: bytes | str, *, quorum_required: bool = True) -> Policy:
    """A policy file; a witness's list of the logs it witnesses is one too, its quorum line optional.
    Names and URLs are opaque octets, held as UTF-8 decoded with surrogateescape: one string for each
    octet string, text as itself."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    logs: list[Verifier] = []
    log_urls: dict[str, str | None] = {}
    witnesses: dict[str, Witness] = {}
    groups: dict[str, Group] = {}
    quorum: str | None = None
    keys: set[bytes] = set()
    for number, line in enumerate(data.split(b"\n"), 1):
        if _NOT_ALLOWED.search(line):
            raise PolicyError(f"line {number}: a control character")
        words = [word.decode("utf-8", "surrogateescape") for word in _WHITESPACE.split(line) if word]
        if not words or words[0].startswith("#"):
            continue
        keyword, args = words[0], words[1:]
        try:
            if keyword == "log" and len(args) in (1, 2):
                log = _verifier(args[0])
                _unique_key(keys, log)
                logs.append(log)
                log_urls[log.name] = args[1] if len(args) == 2 else None
            elif keyword == "witness" and len(args) in (2, 3):
                name = _new_name(args[0], witnesses, groups)
                verifier = _verifier(args[1], COSIGNATURE_TYPE)
                _unique_key(keys, verifier)
                witnesses[name] = Witness(name, verifier, args[2] if len(args) == 3 else None)
            elif keyword == "group" and len(args) >= 3:
                name = _new_name(args[0], witnesses, groups)
                members = tuple(args[2:])
                for member in members:
                    if member not in witnesses and member not in groups:
                        raise PolicyError(f"group {name}: {member} is not defined on an earlier line")
                if len(set(members)) != len(members):
                    raise PolicyError(f"group {name} lists a member twice")
                threshold = {"all": len(members), "any": 1}.get(args[1])
                if threshold is None:
                    if not (args[1].isascii() and args[1].isdigit()) or args[1] != str(int(args[1])):
                        raise PolicyError(f"group {name}: threshold {args[1]!r} is not all, any or a number")
                    threshold = int(args[1])
                if not 1 <= threshold <= len(members):
                    raise PolicyError(f"group {name}: threshold {threshold} is outside 1..{len(members)}")
                groups[name] = Group(threshold, members)
            elif keyword == "quorum" and len(args) == 1:
                if quorum is not None:
                    raise PolicyError("a second quorum line")
                if args[0] != NONE and args[0] not in witnesses and args[0] not in groups:
                    raise PolicyError(f"quorum {args[0]} is not defined on an earlier line")
                quorum = args[0]
            else:
                raise PolicyError(f"{keyword!r} with {len(args)} arguments is not a policy line")
        except ValueError as exc:
            raise PolicyError(f"line {number}: {exc}") from exc
    if quorum is None and quorum_required:
        raise PolicyError("the policy has no quorum line")
    return Policy(tuple(logs), log_urls, witnesses, groups, quorum or NONE)


def _verifier(vkey: str, key_type: int = ED25519_TYPE) -> Verifier:
    if not _is_utf8(vkey):
        raise PolicyError("a verifier key is UTF-8 (signed-note key names are)")
    return parse_verifier_key(vkey, key_type)


def _is_utf8(text: str) -> bool:
    """False for a string decoded with surrogateescape from octets that are not UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _new_name(name: str, witnesses: dict[str, Witness], groups: dict[str, Group]) -> str:
    if name == NONE or name in witnesses or name in groups:
        raise PolicyError(f"the name {name} is taken")
    return name


def _unique_key(keys: set[bytes], verifier: Verifier) -> None:
    public = verifier.public_key.public_bytes_raw()
    if public in keys:
        raise PolicyError(f"the key of {verifier.name} is listed twice")
    keys.add(public)
