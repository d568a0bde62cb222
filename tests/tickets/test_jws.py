"""service.jws: tickets jose signs verify with another JOSE library, kids are RFC 7638 thumbprints,
and nothing of jose's escapes."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jose import jws as jose_jws
from jose.exceptions import JOSEError

from service import jws

TICKET_TYP = "seenby-ticket+jwt"

# RFC 8037 Appendix A.1 (the key), A.3 (its thumbprint) and A.4 (a signature by it).
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
RFC8037_JWS = (
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
    ".hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def rfc8037_private() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(b64url_decode(RFC8037_D))


def rfc8037_public() -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(b64url_decode(RFC8037_X))


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": "seenby.dev/log", "aud": "clip-store-eu", "sub": "cust-1042",
        "jti": "6f1c2a9e-3b0d-4c8e-9a57-0c1d2e3f4a5b", "clip_id": "clip-77a1", "action": "view",
        "media": ["video", "audio"], "purpose": "model_training", "entry_hash": "ab" * 32,
        "customer_seq": 17, "iat": now, "exp": now + 300,
    }
    values.update(overrides)
    return values


def hand_signed(key: Ed25519PrivateKey, header: dict[str, Any], payload: bytes) -> str:
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(payload)}"
    return f"{signing_input}.{b64url(key.sign(signing_input.encode()))}"


# --- keys --------------------------------------------------------------------------------------

def test_the_kid_is_the_rfc7638_thumbprint_of_rfc8037s_example_key() -> None:
    assert jws.thumbprint(rfc8037_public()) == RFC8037_THUMBPRINT
    assert jws.thumbprint(rfc8037_private().public_key()) == RFC8037_THUMBPRINT


def test_public_jwk_is_an_okp_ed25519_signature_key_named_by_its_thumbprint() -> None:
    assert jws.public_jwk(rfc8037_public()) == {
        "kty": "OKP", "crv": "Ed25519", "x": RFC8037_X, "kid": RFC8037_THUMBPRINT, "alg": "EdDSA",
        "use": "sig",
    }


def test_another_key_has_another_thumbprint() -> None:
    assert jws.thumbprint(Ed25519PrivateKey.generate().public_key()) != RFC8037_THUMBPRINT


def test_ed25519_from_jwk_reads_back_public_jwk() -> None:
    key = Ed25519PrivateKey.generate().public_key()
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    assert jws.ed25519_from_jwk(jws.public_jwk(key)).public_bytes(*raw) == key.public_bytes(*raw)


@pytest.mark.parametrize("change", [
    {"kty": "RSA"}, {"crv": "Ed448"}, {"crv": "X25519"}, {"alg": "HS256"}, {"alg": "RS256"},
    {"use": "enc"}, {"d": RFC8037_D}, {"x": RFC8037_X + "A"}, {"x": RFC8037_X[:-1]},
    {"x": RFC8037_X[:-1] + "p"},  # the same bytes with a non-zero unused bit: not canonical
    {"x": RFC8037_X + "="}, {"x": 1234},
    # Small-order points: with one as the key, a forged signature verifies on every message (in
    # OpenSSL, which API tokens go through): the identity, (0, -1) of order 2, and y = 0 of order 4.
    *({"x": base64.urlsafe_b64encode(point).rstrip(b"=").decode()}
      for point in (bytes([1]) + bytes(31), b"\xec" + b"\xff" * 30 + b"\x7f", bytes(32))),
])
def test_ed25519_from_jwk_refuses_every_other_key(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        jws.ed25519_from_jwk({**jws.public_jwk(rfc8037_public()), **change})


# --- signing: jose signs, PyJWT verifies -------------------------------------------------------

def test_a_ticket_signed_by_sign_eddsa_verifies_with_pyjwt_against_public_jwk() -> None:
    key = Ed25519PrivateKey.generate()
    sent = claims()
    ticket = jws.sign_eddsa(sent, key, typ=TICKET_TYP)

    header = pyjwt.get_unverified_header(ticket)
    assert header == {"alg": "EdDSA", "typ": TICKET_TYP, "kid": jws.thumbprint(key.public_key())}
    verifying_key = pyjwt.PyJWK(jws.public_jwk(key.public_key())).key
    decoded = pyjwt.decode(ticket, verifying_key, algorithms=["EdDSA"], audience="clip-store-eu",
                           issuer="seenby.dev/log")
    assert decoded == sent


def test_pyjwt_refuses_a_ticket_signed_by_another_key() -> None:
    ticket = jws.sign_eddsa(claims(), Ed25519PrivateKey.generate(), typ=TICKET_TYP)
    other = pyjwt.PyJWK(jws.public_jwk(Ed25519PrivateKey.generate().public_key())).key
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(ticket, other, algorithms=["EdDSA"], audience="clip-store-eu")


def test_the_rfc8037_key_signs_what_pyjwt_verifies() -> None:
    ticket = jws.sign_eddsa({"sub": "x"}, rfc8037_private(), typ=TICKET_TYP)
    rfc_jwk = {"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X}
    assert pyjwt.decode(ticket, pyjwt.PyJWK(rfc_jwk).key, algorithms=["EdDSA"]) == {"sub": "x"}


def test_a_public_jwk_never_signs_through_jose() -> None:
    with pytest.raises(JOSEError):
        jose_jws.sign({"sub": "x"}, jws.public_jwk(rfc8037_public()), algorithm="EdDSA")


# --- verifying ---------------------------------------------------------------------------------

def test_verify_eddsa_reads_what_pyjwt_signs() -> None:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    sent = claims()
    token = pyjwt.encode(sent, pem, algorithm="EdDSA", headers={"typ": TICKET_TYP})
    assert jws.verify_eddsa(token, key.public_key()) == sent


def test_verify_eddsa_checks_rfc8037s_signature() -> None:
    # The signature verifies; the payload is text, not a JSON object, so it is malformed (not forged).
    with pytest.raises(jws.MalformedToken):
        jws.verify_eddsa(RFC8037_JWS, rfc8037_public())
    header, payload, signature = RFC8037_JWS.split(".")
    flipped = b64url(bytes([b64url_decode(signature)[0] ^ 1]) + b64url_decode(signature)[1:])
    with pytest.raises(jws.BadSignature):
        jws.verify_eddsa(f"{header}.{payload}.{flipped}", rfc8037_public())


def test_verify_eddsa_refuses_a_changed_payload_another_key_and_another_alg() -> None:
    key = Ed25519PrivateKey.generate()
    ticket = jws.sign_eddsa(claims(), key, typ=TICKET_TYP)
    header, _, signature = ticket.split(".")
    changed = f"{header}.{b64url(json.dumps(claims(clip_id='clip-other')).encode())}.{signature}"
    with pytest.raises(jws.BadSignature):
        jws.verify_eddsa(changed, key.public_key())
    with pytest.raises(jws.BadSignature):
        jws.verify_eddsa(ticket, Ed25519PrivateKey.generate().public_key())
    as_ed25519 = hand_signed(key, {"alg": "Ed25519", "typ": TICKET_TYP}, json.dumps(claims()).encode())
    with pytest.raises(jws.BadSignature):
        jws.verify_eddsa(as_ed25519, key.public_key())


@pytest.mark.parametrize("payload", [
    b'{"jti": "a", "jti": "b"}', b'{"exp": NaN}', b'{"exp": Infinity}', b"[1, 2]", b"not json",
    b"[" * 100_000 + b"]" * 100_000,
])
def test_verify_eddsa_refuses_a_signed_payload_that_is_not_one_plain_json_object(payload: bytes) -> None:
    key = Ed25519PrivateKey.generate()
    with pytest.raises(jws.MalformedToken):
        jws.verify_eddsa(hand_signed(key, {"alg": "EdDSA"}, payload), key.public_key())


def test_verify_eddsa_accepts_one_spelling_of_the_signature() -> None:
    key = Ed25519PrivateKey.generate()
    ticket = jws.sign_eddsa(claims(), key, typ=TICKET_TYP)
    for spelling in (ticket + "=", ticket + "*", ticket[:-1] + chr(ord(ticket[-1]) ^ 1), ticket + ".x"):
        with pytest.raises(jws.TokenError):
            jws.verify_eddsa(spelling, key.public_key())
    assert jws.verify_eddsa(ticket, key.public_key())["clip_id"] == "clip-77a1"


EDDSA_HEADER = b'{"alg":"EdDSA"}'


@pytest.mark.parametrize("length", [1, 32, 63, 65, 128])
def test_verify_eddsa_refuses_a_signature_that_is_not_64_bytes(length: int) -> None:
    key = Ed25519PrivateKey.generate()
    header, payload, signature = jws.sign_eddsa(claims(), key, typ=TICKET_TYP).split(".")
    wrong = (b64url_decode(signature) * 3)[:length]
    with pytest.raises(jws.BadSignature):
        jws.verify_eddsa(f"{header}.{payload}.{b64url(wrong)}", key.public_key())


def test_a_small_order_key_verifies_no_forgery() -> None:
    # With the identity point as A, R = identity and S = 0 satisfy the cofactorless equation for any
    # message (OpenSSL accepts it); libsodium refuses small-order keys and R values.
    identity = bytes([1]) + bytes(31)
    token = f"{b64url(EDDSA_HEADER)}.{b64url(b'{}')}.{b64url(identity + bytes(32))}"
    with pytest.raises(jws.BadSignature):
        jws.verify_eddsa(token, Ed25519PublicKey.from_public_bytes(identity))


@pytest.mark.parametrize("payload", [
    json.dumps(claims()).encode(),  # spaces: the standard library's parser reads it
    json.dumps(claims(sub="café ☕", purpose="a/b\\c")).encode(),  # non-ASCII as \uXXXX
    json.dumps(claims(sub="café ☕"), ensure_ascii=False, separators=(",", ":")).encode(),
    json.dumps(claims(exp=2.5e9, customer_seq=2**70)).encode(),
    json.dumps(claims()).encode("utf-16"),
])
def test_verify_eddsa_reads_a_payload_as_the_standard_library_does(payload: bytes) -> None:
    key = Ed25519PrivateKey.generate()
    token = hand_signed(key, {"alg": "EdDSA"}, payload)
    assert jws.verify_eddsa(token, key.public_key()) == json.loads(payload)
    assert jws.verify_eddsa(jws.parse_compact(token), key.public_key()) == json.loads(payload)


def test_parse_compact_reads_the_header_as_jose_does() -> None:
    for header in (b'{"alg":"none","alg":"EdDSA"}', b'{"alg": "EdDSA", "n": NaN}', EDDSA_HEADER):
        token = f"{b64url(header)}.{b64url(b'{}')}.{b64url(bytes(64))}"
        parsed = jws.parse_compact(token)
        assert parsed.header["alg"] == "EdDSA"
        assert str(parsed.header) == str(jose_jws.get_unverified_header(token))  # str: NaN != NaN
        assert parsed.signing_input == token.rsplit(".", 1)[0].encode()


def test_an_unsecured_jws_is_parsed_only_when_asked_and_never_verifies() -> None:
    unsecured = f"{b64url(EDDSA_HEADER)}.{b64url(b'{}')}."
    with pytest.raises(jws.MalformedToken):
        jws.parse_compact(unsecured)
    parsed = jws.parse_compact(unsecured, unsecured=True)
    assert parsed.signature == b""
    with pytest.raises(jws.MalformedToken):
        jws.verify_eddsa(parsed, Ed25519PrivateKey.generate().public_key())


# --- decode (the API tokens): our exceptions, never jose's -------------------------------------

SECRET = "s" * 32
OPTIONS = {"require_aud": True, "require_iss": True, "require_exp": True, "leeway": 0}


def decode(token: str) -> dict[str, Any]:
    return jws.decode(token, SECRET, algorithm="HS256", audience="seenby", issuer="seenby.dev",
                      options=OPTIONS)


def test_decode_returns_the_claims_of_a_good_token() -> None:
    good = {"iss": "seenby.dev", "aud": "seenby", "sub": "a", "exp": int(time.time()) + 60}
    assert decode(jws.sign_hs256(good, SECRET)) == good


@pytest.mark.parametrize(("changes", "error"), [
    ({"exp": 1000}, jws.TokenExpired),
    ({"aud": "another"}, jws.ClaimsRejected),
    ({"iss": "another"}, jws.ClaimsRejected),
    ({"exp": "soon"}, jws.ClaimsRejected),
])
def test_decode_raises_our_exceptions(changes: dict[str, Any], error: type[jws.TokenError]) -> None:
    token = jws.sign_hs256({"iss": "seenby.dev", "aud": "seenby", "exp": int(time.time()) + 60,
                            **changes}, SECRET)
    with pytest.raises(error):
        decode(token)


ALG_NONE = f"{b64url(json.dumps({'alg': 'none'}).encode())}.{b64url(b'{}')}."


@pytest.mark.parametrize("token", [
    "e30.e30.", "a.b.c", "", "x", "e30.W10.", ALG_NONE,
    hand_signed(Ed25519PrivateKey.generate(), {"alg": "none"}, b"{}"),
])
def test_decode_turns_garbage_and_alg_none_into_token_errors(token: str) -> None:
    with pytest.raises(jws.TokenError):
        decode(token)
    with pytest.raises(jws.TokenError):
        jws.decode(token, SECRET, algorithm="none", audience="seenby", issuer="seenby.dev", options=OPTIONS)
