"""JSON Web Signatures and JWKs through python-jose: the only module that imports it.

A compact JWS signed with EdDSA (the access tickets a clip store checks) is read and verified here
without jose, as its hot path: parse_compact splits and decodes it once, verify_eddsa checks the
signature with libsodium (PyNaCl), about twice as fast as OpenSSL's Ed25519 and no more lenient:
it also refuses small-order keys and R values and non-canonical keys, which no honest signer makes.

    TokenError          a token that does not verify or decode (never one of jose's own exceptions)
    ├── MalformedToken  not a compact JWS, or a header or payload that is not a JSON object
    ├── BadSignature    the signature does not verify with the given key under the pinned algorithm
    ├── TokenExpired    jose's `exp` check refused it (decode only)
    └── ClaimsRejected  jose's claim checks refused it: aud, iss, sub, iat, nbf (decode only)

jose 3.5.0's traps (SECURITY.md) are kept here: `algorithms` is always a one-element list, a JWK
is constructed by our own Ed25519 key class and never from the token, and every exception jose or
its JSON decoding can raise for a hostile token comes out as a TokenError.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jose import jwk, jwt
from jose import jws as jose_jws
from jose.backends.base import Key
from jose.exceptions import ExpiredSignatureError, JOSEError, JWTClaimsError
from jose.utils import base64url_decode
from nacl.bindings import crypto_core_ed25519_is_valid_point
from nacl.exceptions import CryptoError
from nacl.signing import VerifyKey

from service.ledger.checkpoint import ed25519_verifies

EDDSA = "EdDSA"
# RFC 9864 names the algorithm fully ("Ed25519") where RFC 8037's "EdDSA" left the curve to the key;
# for an Ed25519 key the two are one algorithm. Each name is accepted only where it is configured.
EDDSA_NAMES = frozenset({EDDSA, "Ed25519"})
# RFC 7515 §7.1: three unpadded base64url segments. jose's decoder skips stray characters and padding,
# so without this one signature has many spellings ("sig", "sig=", "sig****").
COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
# The same, or an unsecured JWS (RFC 7519 §6: empty signature), so that a caller can name alg "none".
COMPACT_OR_UNSECURED_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")

# What jose and its JSON decoding raise for garbage besides its own errors: alg none is a JWKError
# (not a JWTError), an infinite exp an OverflowError, JSON nested past the recursion limit a
# RecursionError, odd claim types a TypeError or AttributeError.
_GARBAGE = (JOSEError, ValueError, TypeError, KeyError, OverflowError, AttributeError, RecursionError)


class TokenError(Exception):
    pass


class MalformedToken(TokenError):
    pass


class BadSignature(TokenError):
    pass


class TokenExpired(TokenError):
    pass


class ClaimsRejected(TokenError):
    pass


class _Ed25519Key(Key):  # type: ignore[misc]  # jose ships no types: its Key is Any
    """EdDSA over Ed25519 (RFC 8037, RFC 9864) for python-jose, which ships without it.

    Built from an OKP Ed25519 JWK or an Ed25519PublicKey it only verifies; only an Ed25519PrivateKey
    object (never a JWK, so never anything a token or a JWKS carries) makes it sign. Never an HMAC
    secret, never another curve.
    """

    def __init__(self, key: Any, algorithm: str) -> None:
        if algorithm not in EDDSA_NAMES:
            raise JOSEError("Ed25519 keys serve EdDSA and Ed25519 only")
        self._private: Ed25519PrivateKey | None = None
        if isinstance(key, Ed25519PrivateKey):
            self._private, self._public = key, key.public_key()
        elif isinstance(key, Ed25519PublicKey):
            self._public = key
        elif isinstance(key, dict) and key.get("kty") == "OKP" and key.get("crv") == "Ed25519":
            self._public = Ed25519PublicKey.from_public_bytes(base64url_decode(key["x"].encode()))
        else:
            raise JOSEError("an EdDSA key must be an OKP Ed25519 JWK")

    def sign(self, msg: bytes) -> bytes:
        if self._private is None:
            raise JOSEError("an Ed25519 public key cannot sign")
        return self._private.sign(msg)

    def verify(self, msg: bytes, sig: bytes) -> bool:
        return ed25519_verifies(self._public, msg, sig)


for _name in EDDSA_NAMES:
    jwk.register_key(_name, _Ed25519Key)


def canonical_base64url(segment: str) -> bool:
    """The decoder ignores the unused low bits of the last character, so without this one signature
    has up to 16 spellings that all verify (RFC 7515 §2 base64url, RFC 4648 §3.5 canonical)."""
    try:
        decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except ValueError:
        return False
    return _b64url(decoded) == segment


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header, read before anything is verified: trust none of it beyond choosing a key."""
    try:
        header = jwt.get_unverified_header(token)
    except _GARBAGE as exc:
        raise MalformedToken("the token's header is not a JSON object") from exc
    if not isinstance(header, dict):
        raise MalformedToken("the token's header is not a JSON object")
    return header


def decode(
    token: str, key: Any, *, algorithm: str, audience: str, issuer: str, options: Mapping[str, Any],
) -> dict[str, Any]:
    """jose's decode with one algorithm allowed and `key` the only key tried (pick it by kid first)."""
    try:
        claims = jwt.decode(
            token, key, algorithms=[algorithm], audience=audience, issuer=issuer, options=dict(options),
        )
    except ExpiredSignatureError as exc:
        raise TokenExpired(str(exc)) from exc
    except JWTClaimsError as exc:
        raise ClaimsRejected(str(exc)) from exc
    except _GARBAGE as exc:
        raise TokenError("the token is not valid") from exc
    if not isinstance(claims, dict):
        raise MalformedToken("the token's payload is not a JSON object")
    return claims


class CompactJws(NamedTuple):
    """A compact JWS split and decoded by parse_compact: nothing of it is verified yet."""

    header: dict[str, Any]
    signing_input: bytes  # ASCII: base64url(header) "." base64url(payload), what the signature covers
    payload: bytes
    signature: bytes  # empty for an unsecured JWS


def parse_compact(token: str, *, unsecured: bool = False) -> CompactJws:
    """A compact JWS split into its decoded parts, its header read as jose reads it (a duplicated
    member: the last one wins); trust none of the header beyond choosing a key. MalformedToken unless
    it is three segments of base64url, the signature's canonical (empty only when `unsecured`) and
    the header a JSON object."""
    if not (COMPACT_OR_UNSECURED_JWS if unsecured else COMPACT_JWS).fullmatch(token):
        raise MalformedToken("the token is not a compact JWS in canonical base64url")
    ascii_token = token.encode()
    header_end, signature_start = ascii_token.index(b"."), ascii_token.rindex(b".")
    standard = ascii_token.translate(_URLSAFE_TO_STANDARD)  # the regex let no other character through
    signature_segment = _padded(standard[signature_start + 1:])
    try:
        signature = binascii.a2b_base64(signature_segment)
        header_json = binascii.a2b_base64(_padded(standard[:header_end]))
        payload = binascii.a2b_base64(_padded(standard[header_end + 1:signature_start]))
    except binascii.Error as exc:
        raise MalformedToken("the token is not a compact JWS in canonical base64url") from exc
    if binascii.b2a_base64(signature, newline=False) != signature_segment:
        raise MalformedToken("the token is not a compact JWS in canonical base64url")
    header = _json(header_json)
    if header is None:
        try:
            header = json.loads(header_json.decode())
        except (ValueError, RecursionError) as exc:
            raise MalformedToken("the token's header is not a JSON object") from exc
    if not isinstance(header, dict):
        raise MalformedToken("the token's header is not a JSON object")
    return CompactJws(header, ascii_token[:signature_start], payload, signature)


def _padded(segment: bytes) -> bytes:
    return segment + b"=" * (-len(segment) % 4)


def _json(data: bytes) -> Any:
    """`data` parsed, when it is exactly what orjson writes for what it reads (so it has no member
    twice, no NaN, no whitespace: what seenby's tickets are); else None, for the standard library's
    slower parser to judge it. For such a document both parsers agree on every value."""
    try:
        value = orjson.loads(data)
        if orjson.dumps(value) == data:
            return value
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        pass
    return None


def verify_eddsa(token: str | CompactJws, public_key: Ed25519PublicKey) -> dict[str, Any]:
    """The payload of a compact JWS (or one parse_compact split) that `public_key` signed with EdDSA,
    signature checked and nothing else: the caller checks every claim itself. A payload with a
    duplicated member is refused (JSON parsers disagree on which one wins)."""
    parsed = token if isinstance(token, CompactJws) else parse_compact(token)
    if not parsed.signature:
        raise MalformedToken("the token is not a compact JWS in canonical base64url")
    if parsed.header.get("alg") != EDDSA:
        raise BadSignature("the token is not signed with EdDSA")
    try:
        _verify_key(public_key).verify(parsed.signing_input, parsed.signature)
    except (CryptoError, ValueError, TypeError) as exc:  # a forgery, or a signature not 64 bytes long
        raise BadSignature("the token's signature does not verify") from exc
    claims = _json(parsed.payload)
    if claims is None:
        try:
            claims = json.loads(parsed.payload, object_pairs_hook=_unique_members,
                                parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            raise MalformedToken(f"the token's payload is not valid JSON: {exc}") from exc
    if not isinstance(claims, dict):
        raise MalformedToken("the token's payload is not a JSON object")
    return claims


# libsodium's key for each public key verified with lately, by the key object's identity: the entry
# holds the object, so its id is not reused while the entry lasts. A JWKS has a few keys; a refetch
# brings new objects, and the cache starts afresh once it is full.
_VERIFY_KEYS: dict[int, tuple[Ed25519PublicKey, VerifyKey]] = {}
_MAX_VERIFY_KEYS = 64


def _verify_key(public_key: Ed25519PublicKey) -> VerifyKey:
    cached = _VERIFY_KEYS.get(id(public_key))
    if cached is not None and cached[0] is public_key:
        return cached[1]
    verify_key = VerifyKey(_raw(public_key))
    if len(_VERIFY_KEYS) >= _MAX_VERIFY_KEYS:
        _VERIFY_KEYS.clear()
    _VERIFY_KEYS[id(public_key)] = (public_key, verify_key)
    return verify_key


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("a member name appears twice")
    return members


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def sign_hs256(claims: dict[str, Any], secret: str) -> str:
    token: str = jwt.encode(claims, secret, algorithm="HS256")
    return token


def sign_eddsa(claims: dict[str, Any], private_key: Ed25519PrivateKey, *, typ: str) -> str:
    """A compact JWS with header {"alg": "EdDSA", "typ": typ, "kid": <RFC 7638 thumbprint>}."""
    headers = {"typ": typ, "kid": thumbprint(private_key.public_key())}
    token: str = jose_jws.sign(claims, _Ed25519Key(private_key, EDDSA), headers=headers, algorithm=EDDSA)
    return token


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def thumbprint(public_key: Ed25519PublicKey) -> str:
    """RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace (RFC 8037
    §2 names crv, kty, x for an OKP key)."""
    members = {"crv": "Ed25519", "kty": "OKP", "x": _b64url(_raw(public_key))}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return _b64url(hashlib.sha256(canonical).digest())


def public_jwk(public_key: Ed25519PublicKey) -> dict[str, str]:
    return {
        "kty": "OKP", "crv": "Ed25519", "x": _b64url(_raw(public_key)), "kid": thumbprint(public_key),
        "alg": EDDSA, "use": "sig",
    }


def ed25519_from_jwk(key: Mapping[str, Any]) -> Ed25519PublicKey:
    """The public key of an OKP Ed25519 JWK for EdDSA signatures; ValueError for any other JWK
    (another type or curve, another alg or use, a private key, x not 32 bytes of canonical base64url)."""
    if key.get("kty") != "OKP" or key.get("crv") != "Ed25519":
        raise ValueError("not an OKP Ed25519 key")
    if key.get("alg", EDDSA) not in EDDSA_NAMES or key.get("use", "sig") != "sig":
        raise ValueError("not a key for EdDSA signatures")
    if "d" in key:
        raise ValueError("a private key has no place in a JWKS")
    x = key.get("x")
    if not isinstance(x, str) or not re.fullmatch(r"[A-Za-z0-9_-]{43}", x) or not canonical_base64url(x):
        raise ValueError("'x' is not 32 bytes of base64url")
    raw = base64url_decode(x.encode())
    # OpenSSL verifies against a small-order key (the identity point, say), for which a "signature"
    # anyone can make verifies on every message: such a key is no key. libsodium's check also refuses
    # a point off the curve or outside its prime-order subgroup, which no honest key is.
    if not crypto_core_ed25519_is_valid_point(raw):
        raise ValueError("'x' is not an Ed25519 public key of prime order (small order, or off the curve)")
    return Ed25519PublicKey.from_public_bytes(raw)
