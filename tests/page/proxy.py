"""A proxy in front of seenby that lies: what an operator who wanted to hide something could serve.

It passes everything through (the page too, so the page's origin is the proxy's) except, by mode:
- "flip": one byte of one entry's canonical bytes in the chain the page checks;
- "drop": one entry left out of a page of the chain;
- "key": checkpoints signed by another key under the log's name;
- "shown": one history row (not the chain) showing another organization than the entry says;
- "honest": nothing.

And, by mode, it answers some requests with an error status instead of passing them on (the
history and everything else still pass): what an expired token, a failing seenby or a proxy that
withholds a proof look like to the page's check. In any mode, `cut_streams()` ends the answers
still streaming (the live stream), and goes on ending those that start until `restore()`: what
the page sees of a server going down.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from service.ledger.checkpoint import parse_checkpoint, sign_checkpoint, split_note
from tests.pg import free_port

# Mode -> {path: the status answered instead of seenby's answer}.
REFUSALS = {
    "refuse_checks": {"/v1/me/completeness": 401, "/v1/me/entries": 401},  # the token refused
    "checks_failing": {"/v1/me/entries": 503},  # seenby failing under the check
    "no_completeness": {"/v1/me/completeness": 503},  # the completeness proof withheld
}
MODES = ("flip", "drop", "key", "shown", "honest", *REFUSALS)
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


def flip_one_byte(canonical_b64: str) -> str:
    raw = bytearray(base64.b64decode(canonical_b64))
    at = raw.index(b'"clip_id":"') + len(b'"clip_id":"')
    raw[at] ^= 0x01  # "clip-1" becomes "bkip-1": still valid JSON, a different entry
    return base64.b64encode(bytes(raw)).decode()


def resign(note: str) -> str:
    """The same checkpoint body, signed by a stranger's key that claims the log's name."""
    body, _ = split_note(note)
    return sign_checkpoint(parse_checkpoint(body), Ed25519PrivateKey.generate())


class LyingProxy:
    def __init__(self, upstream: str, mode: str, target_seq: int) -> None:
        assert mode in MODES
        self.upstream, self.mode, self.target_seq = upstream, mode, target_seq
        self.tampered = 0  # how many answers it changed: a test that changed nothing proves nothing
        self.streams_cut = threading.Event()
        self.client = httpx.AsyncClient(base_url=upstream, timeout=60.0)
        self.app = Starlette(routes=[Route("/{path:path}", self.forward,
                                           methods=["GET", "POST", "PUT", "DELETE"])],
                             lifespan=self._lifespan)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        yield
        await self.client.aclose()

    async def forward(self, request: Request) -> Response:
        refused = REFUSALS.get(self.mode, {}).get(request.url.path)
        if refused is not None:
            self.tampered += 1
            return Response(orjson.dumps({"title": "refused by the proxy", "status": refused}),
                            status_code=refused, media_type="application/problem+json")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in {"host", "accept-encoding"}}
        outgoing = self.client.build_request(request.method, request.url.path, params=request.query_params,
                                             headers=headers, content=await request.body())
        upstream = await self.client.send(outgoing, stream=True)
        out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
        path = request.url.path
        rewrite = self._rewriter(path)
        if rewrite is None or upstream.status_code != 200:
            return StreamingResponse(self._until_cut(upstream.aiter_raw()), status_code=upstream.status_code,
                                     headers=out_headers, background=BackgroundTask(upstream.aclose))
        body = await upstream.aread()
        await upstream.aclose()
        changed = rewrite(body)
        if changed != body:
            self.tampered += 1
        return Response(changed, status_code=upstream.status_code, headers=out_headers)

    def cut_streams(self) -> None:
        """Ends every answer still streaming, as a server that goes down would (from any thread)."""
        self.streams_cut.set()

    def restore(self) -> None:
        self.streams_cut.clear()

    async def _until_cut(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        iterator = aiter(chunks)
        pending: asyncio.Future[bytes] | None = None
        try:
            while not self.streams_cut.is_set():
                pending = pending or asyncio.ensure_future(anext(iterator))
                done, _ = await asyncio.wait({pending}, timeout=0.1)
                if not done:
                    continue
                try:
                    chunk = pending.result()
                except StopAsyncIteration:
                    return
                pending = None
                yield chunk
        finally:
            if pending is not None:
                pending.cancel()

    def _rewriter(self, path: str) -> Any:
        if self.mode in ("flip", "drop") and path == "/v1/me/entries":
            return self._chain_page
        if self.mode == "key" and path == "/v1/log/checkpoint":
            return lambda body: resign(body.decode()).encode()
        if self.mode == "key" and path == "/v1/me/completeness":
            return self._completeness
        if self.mode == "shown" and path == "/v1/me/accesses":
            return self._history_page
        return None

    def _chain_page(self, body: bytes) -> bytes:
        page = orjson.loads(body)
        kept = []
        for item in page["items"]:
            if item["customer_seq"] == self.target_seq:
                if self.mode == "drop":
                    continue
                item["canonical"] = flip_one_byte(item["canonical"])
            kept.append(item)
        page["items"] = kept
        return orjson.dumps(page)

    def _history_page(self, body: bytes) -> bytes:
        page = orjson.loads(body)
        for item in page["items"]:
            if item["customer_seq"] == self.target_seq:
                item["actor"]["organization"] = "Your vendor's own support team"
        return orjson.dumps(page)

    def _completeness(self, body: bytes) -> bytes:
        document = orjson.loads(body)
        document["checkpoint"] = resign(document["checkpoint"])
        return orjson.dumps(document)


@contextlib.contextmanager
def lying_proxy(upstream: str, mode: str, target_seq: int) -> Iterator[tuple[str, LyingProxy]]:
    proxy = LyingProxy(upstream, mode, target_seq)
    port = free_port()
    # The plain asyncio loop: uvloop's does not share a process with the test's own loop well.
    server = uvicorn.Server(uvicorn.Config(proxy.app, host="127.0.0.1", port=port, log_level="warning",
                                           loop="asyncio", http="h11", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the proxy never started"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", proxy
    finally:
        server.should_exit = True
        thread.join(timeout=10)
