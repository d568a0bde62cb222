"""A deadline for a request's head, for `seenby serve` and `seenby witness serve`."""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_TIMEOUT_SECONDS = 10.0


class HeaderDeadline(HttpToolsProtocol):
    """uvicorn closes a connection left idle after a response, but has no limit on a request's line
    and headers (its data_received cancels the idle timer): a client sending a request line and one
    header and nothing more would hold its connection forever. This closes a connection whose request
    head is not whole `timeout` seconds after it opened or after its last response."""

    timeout = HEADER_TIMEOUT_SECONDS
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        waiting = not self.pipeline  # else the next request, its head whole, starts now
        super().on_response_complete()
        if waiting and not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.timeout, self.transport.close)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


def with_header_deadline(seconds: float) -> type[HttpToolsProtocol]:
    class Protocol(HeaderDeadline):
        timeout = seconds

    return Protocol
