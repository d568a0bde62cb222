"""Tickets for the clip-store tests: real ones from service.jws, forged ones by hand, and a local
HTTP server that counts what is asked of it."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service import jws
from service.tickets.check import TICKET_TYP

ISSUER = "seenby.dev/log"
AUDIENCE = "clip-store-eu"
CLIP = "clip-77a1"
DROP: Any = object()  # as a claim's value: leave the claim out


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: Any) -> str:
    return b64url(value if isinstance(value, bytes) else json.dumps(value).encode())


class FromNow(int):
    """A time claim given as seconds from when the ticket is minted, not from when the test module
    was collected (a parametrized time goes stale in a suite that runs for minutes)."""


def ticket_claims(**overrides: Any) -> dict[str, Any]:
    """The claims seenby puts in a ticket (CONTRACT.md), some replaced or left out (DROP)."""
    now = int(time.time())
    overrides = {name: now + value if isinstance(value, FromNow) else value
                 for name, value in overrides.items()}
    values: dict[str, Any] = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": "cust-1042", "jti": str(uuid.uuid4()), "clip_id": CLIP,
        "action": "view", "media": ["video", "audio"], "purpose": "quality_review",
        "entry_hash": hashlib.sha256(b"entry").hexdigest(), "customer_seq": 17, "iat": now, "exp": now + 300,
    }
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not DROP}


def mint(key: Ed25519PrivateKey, **overrides: Any) -> str:
    """A ticket as seenby signs it (service.jws.sign_eddsa)."""
    return jws.sign_eddsa(ticket_claims(**overrides), key, typ=TICKET_TYP)


def header_of(key: Ed25519PrivateKey, **changes: Any) -> dict[str, Any]:
    header = {"alg": "EdDSA", "typ": TICKET_TYP, "kid": jws.thumbprint(key.public_key()), **changes}
    return {name: value for name, value in header.items() if value is not DROP}


def forge(header: dict[str, Any], payload: Any, sign: Callable[[bytes], bytes]) -> str:
    """A compact JWS with any header and payload, signed by `sign` over the signing input."""
    signing_input = f"{segment(header)}.{segment(payload)}"
    return f"{signing_input}.{b64url(sign(signing_input.encode()))}"


def eddsa_signer(key: Ed25519PrivateKey) -> Callable[[bytes], bytes]:
    return key.sign


def hmac_signer(secret: bytes) -> Callable[[bytes], bytes]:
    return lambda message: hmac.new(secret, message, hashlib.sha256).digest()


def with_payload(token: str, payload: dict[str, Any]) -> str:
    """The same header and signature around another payload."""
    header, _, signature = token.split(".")
    return f"{header}.{segment(payload)}.{signature}"


def jwks_of(*keys: Ed25519PrivateKey) -> dict[str, Any]:
    return {"keys": [jws.public_jwk(key.public_key()) for key in keys]}


class RecordingServer:
    """Answers every GET with `document` as JSON (after `delay` seconds) and records each path."""

    def __init__(self, document: Any = None) -> None:
        self.document: Any = document if document is not None else {"keys": []}
        self.body: bytes | None = None  # when set, sent as it is instead of the document
        self.status = 200
        self.headers: dict[str, str] = {}
        self.delay = 0.0  # before the answer
        self.drip = 0.0  # between the bytes of the body
        self.send_length = True
        self.paths: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.paths.append(self.path)
                time.sleep(owner.delay)
                body = owner.body if owner.body is not None else json.dumps(owner.document).encode()
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                if owner.send_length:
                    self.send_header("Content-Length", str(len(body)))
                for name, value in owner.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                with contextlib.suppress(ConnectionError):  # a client that gave up (too slow, too large)
                    chunk = 1 if owner.drip else max(len(body), 1)
                    for start in range(0, len(body), chunk):
                        self.wfile.write(body[start:start + chunk])
                        self.wfile.flush()
                        time.sleep(owner.drip)

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.url = f"{self.base_url}/v1/tickets/jwks.json"

    @property
    def requests(self) -> int:
        return len(self.paths)


@contextlib.contextmanager
def recording_server(document: Any = None) -> Iterator[RecordingServer]:
    server = RecordingServer(document)
    thread = threading.Thread(target=server.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
