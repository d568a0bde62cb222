"""Serving the customer page: its files, under a Content-Security-Policy that lets it reach nothing
but seenby itself and run nothing but its own scripts."""

from __future__ import annotations

from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

STATIC = Path(__file__).parent / "static"


def content_security_policy(frame_ancestors: list[str]) -> str:
    return "; ".join((
        "default-src 'none'",
        "script-src 'self'",
        "worker-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors " + (" ".join(frame_ancestors) or "'none'"),
    ))


class PageFiles(StaticFiles):
    """The page's files, each answered with headers that keep the token and the page to themselves."""

    def __init__(self, frame_ancestors: list[str]) -> None:
        super().__init__(directory=STATIC, html=True)
        headers = {
            "Content-Security-Policy": content_security_policy(frame_ancestors),
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
            "Cross-Origin-Opener-Policy": "same-origin",
            "Cross-Origin-Resource-Policy": "same-origin",
            "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
            # Revalidated on every load: a new release's modules never mix with an old one's.
            "Cache-Control": "no-cache",
        }
        if not frame_ancestors:
            headers["X-Frame-Options"] = "DENY"
        self._headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                for name, value in self._headers.items():
                    response_headers[name] = value
            await send(message)

        await super().__call__(scope, receive, send_with_headers)
