"""`seenby export`: an export and its manifest downloaded side by side, resumable after an interruption.

The manifest is asked for first and pins the cut (its Seenby-Tree-Size); the data is asked for at
that cut as soon as the manifest's headers arrive, so the data is exactly the export the manifest
describes. Both then stream at once: a server with two workers can render them side by side.

A state file beside the data (`<data>.partial.json`) remembers the request and the cut until the
download is complete; run the same command again to resume: the data is cut back to its last
complete line or row and the rest is asked for with `after_log_index`.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import orjson
from rich import filesize
from rich.progress import Progress, ProgressColumn, Task, TaskID
from rich.text import Text

from service.exports.check import read_trailer
from service.ledger.kinds import EntryKind

TREE_SIZE_HEADER = "Seenby-Tree-Size"
EXPORT_PATH = "/v1/exports/accesses"
MANIFEST_PATH = "/v1/exports/accesses/manifest"
MAX_RETRY_AFTER_SECONDS = 60.0
BUSY_PATIENCE_SECONDS = 600.0  # how long a download waits for a busy server (429, 503) to take it


class ServerBusy(Exception):
    """A 429 or 503: the server asks to be asked again after `retry_after` seconds."""

    def __init__(self, status: int, retry_after: float) -> None:
        super().__init__(f"the server answered {status} (busy; retry after {retry_after:g} s)")
        self.retry_after = retry_after


RETRYABLE = (httpx.TransportError, httpx.RemoteProtocolError)
# Failing to connect at all on a run's first request is a wrong URL or a server that is down, not a
# flaky network: say so at once rather than after a minute of retries.
UNREACHABLE = (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol)


class DownloadError(Exception):
    pass


class ServerError(DownloadError):
    """The server could not be reached, refused the request, or is not a seenby server."""


@dataclass(frozen=True)
class ExportRequest:
    customer_id: str | None = None
    since: str | None = None
    until: str | None = None
    kind: str = EntryKind.ACCESS
    format: str = "jsonl"

    def params(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v is not None}


class ProgressTask(Protocol):
    def advance(self, amount: int) -> None: ...

    def set_total(self, total: int) -> None: ...


class Reporter(Protocol):
    def task(self, description: str, total: int | None, completed: int = 0, *,
             unit: str = "entries") -> ProgressTask: ...


class _Unreported:
    def advance(self, amount: int) -> None:
        pass

    def set_total(self, total: int) -> None:
        pass


class _Silent:
    def task(self, description: str, total: int | None, completed: int = 0, *,
             unit: str = "entries") -> ProgressTask:
        return _Unreported()


@dataclass(frozen=True)
class Downloaded:
    data: Path
    manifest: Path
    tree_size: int
    count: int
    resumed: bool


def manifest_path(data: Path) -> Path:
    return data.with_name(data.name + ".manifest.json")


def state_path(data: Path) -> Path:
    return data.with_name(data.name + ".partial.json")


async def download(client: httpx.AsyncClient, request: ExportRequest, data: Path, *,
                   tree_size: int | None = None, retries: int = 5,
                   reporter: Reporter | None = None) -> Downloaded:
    reporter = reporter or _Silent()
    manifest, state_file = manifest_path(data), state_path(data)
    state, resumed = _prepare(request, data, tree_size)
    cut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    if state["tree_size"] is not None:
        cut.set_result(state["tree_size"])

    async def fetch_data() -> None:
        cut_at = await cut
        await _retrying(client, retries, state["manifest_done"], lambda: _fetch_data(
            client, request, cut_at, data, progress))

    # A data download that fails lets the manifest finish, so that a rerun resumes the data alone;
    # a manifest that fails stops the data where it is (a rerun resumes it too).
    progress = _DataProgress(reporter)
    if state["manifest_done"]:
        progress.counted(_count(read_trailer(manifest), manifest))
    fetching_data = asyncio.create_task(fetch_data())
    try:
        if not state["manifest_done"]:
            await _retrying(client, retries, True, lambda: _fetch_manifest(
                client, request, state, (manifest, state_file), reporter, cut))
            progress.counted(_count(read_trailer(manifest), manifest))
        await fetching_data
    finally:
        fetching_data.cancel()
        await asyncio.gather(fetching_data, return_exceptions=True)
    trailer = read_trailer(manifest)
    count = _count(trailer, manifest)
    if _sha256(data) != trailer.get("sha256"):
        raise DownloadError(f"{data} does not match the SHA-256 in {manifest}; run `seenby verify export` "
                            "to see which entries are at fault")
    state_file.unlink()
    return Downloaded(data, manifest, state["tree_size"], count, resumed)


def _count(trailer: dict[str, Any], manifest: Path) -> int:
    count = trailer.get("count")
    if not isinstance(count, int):
        raise DownloadError(f"{manifest} holds no count")
    return count


class _DataProgress:
    """The data's progress bar: in entries, its total known once the manifest is complete."""

    def __init__(self, reporter: Reporter) -> None:
        self._reporter = reporter
        self._bar: ProgressTask | None = None
        self.count: int | None = None

    def start(self, tree_size: int, records: int) -> ProgressTask:
        self._bar = self._reporter.task(f"entries (tree size {tree_size})", self.count, records)
        return self._bar

    def counted(self, count: int) -> None:
        self.count = count
        if self._bar is not None:
            self._bar.set_total(count)


def _prepare(request: ExportRequest, data: Path, tree_size: int | None) -> tuple[dict[str, Any], bool]:
    """The state of a download to resume, or of a new one; refuses to overwrite finished files."""
    manifest, state_file = manifest_path(data), state_path(data)
    if not state_file.exists():
        if data.exists() or manifest.exists():
            raise DownloadError(f"{data} or its manifest already exists and is not a partial download; "
                                "choose another --out or remove them")
        return {"request": asdict(request), "tree_size": tree_size, "manifest_done": False}, False
    state = json.loads(state_file.read_text())
    if state["request"] != asdict(request):
        raise DownloadError(f"{state_file} is a partial download of another export "
                            f"({state['request']}); use the same options, or remove it to start over")
    if tree_size is not None and tree_size != state["tree_size"]:
        raise DownloadError(f"the partial download is cut at tree size {state['tree_size']}, not {tree_size}")
    return state, True


def _save(state_file: Path, state: dict[str, Any]) -> None:
    state_file.write_text(json.dumps(state))


def _resume_point(data: Path, export_format: str) -> tuple[int, int | None]:
    """Cut a partial download back to its last complete entry: (entries kept, that entry's log_index)."""
    complete, records, last_index = scan(data, export_format) if data.exists() else (0, 0, None)
    if records == 0:
        complete, last_index = 0, None
    with data.open("ab") as out:
        out.truncate(complete)
    return records, last_index


async def _retrying(client: httpx.AsyncClient, retries: int, first_contact: bool,
                    attempt: Callable[[], Any]) -> None:
    """`attempt` until it succeeds: up to `retries` more times after a network error, and for up to
    BUSY_PATIENCE_SECONDS of answers that the server is busy (429, 503), each after its Retry-After."""
    failures, busy_since = 0, None
    while True:
        try:
            await attempt()
            return
        except ServerBusy as exc:
            busy_since = busy_since if busy_since is not None else time.monotonic()
            if time.monotonic() - busy_since + exc.retry_after > BUSY_PATIENCE_SECONDS:
                raise ServerError(f"the server stayed busy for {BUSY_PATIENCE_SECONDS:g} s ({exc}); run "
                                  "the same command again later to resume") from exc
            await asyncio.sleep(exc.retry_after)
        except RETRYABLE as exc:
            if first_contact and failures == 0 and isinstance(exc, UNREACHABLE):
                raise ServerError(f"cannot reach the seenby server at {client.base_url}: "
                                  f"{exc or type(exc).__name__}") from exc
            if failures == retries:
                raise ServerError(f"the download failed {retries + 1} times, last with {exc!r}; run "
                                  "the same command again to resume") from exc
            await asyncio.sleep(min(2.0**failures * 0.5, 10.0))
            failures += 1


async def _check_response(response: httpx.Response) -> None:
    """4xx is final (named with the problem's detail); 429 and 5xx are worth another try."""
    if response.status_code < 400:
        return
    await response.aread()
    if response.status_code in (429, 503):
        raise ServerBusy(response.status_code, _retry_after(response))
    if response.status_code >= 500:
        raise httpx.RemoteProtocolError(f"the server answered {response.status_code}")
    try:
        detail = str(response.json().get("detail", response.text))
    except ValueError:
        detail = response.text[:500]
    raise ServerError(f"the server refused the export ({response.status_code}): {detail}")


def _retry_after(response: httpx.Response) -> float:
    """Retry-After in seconds (RFC 9110 also allows a date: then, and without one, a second)."""
    value = response.headers.get("retry-after", "")
    return min(float(value), MAX_RETRY_AFTER_SECONDS) if value.isascii() and value.isdigit() else 1.0


def _tree_size(response: httpx.Response) -> int:
    value = response.headers.get(TREE_SIZE_HEADER, "")
    if not (value.isascii() and value.isdigit()):
        raise ServerError(f"{response.url} answered without a {TREE_SIZE_HEADER} header: is it a seenby "
                          "server?")
    return int(value)


async def _fetch_manifest(client: httpx.AsyncClient, request: ExportRequest, state: dict[str, Any],
                          files: tuple[Path, Path], reporter: Reporter, cut: asyncio.Future[int]) -> None:
    """The manifest into its file; `cut` is told its tree size (with the state file) once known."""
    manifest, state_file = files
    params = request.params()
    if state["tree_size"] is not None:
        params["tree_size"] = str(state["tree_size"])
    partial = manifest.with_name(manifest.name + ".part")
    async with client.stream("GET", MANIFEST_PATH, params=params) as response:
        await _check_response(response)
        served = _tree_size(response)
        if state["tree_size"] not in (None, served):
            raise DownloadError(f"the server cut the manifest at {served}, not {state['tree_size']}")
        state["tree_size"] = served
        _save(state_file, state)
        if not cut.done():
            cut.set_result(served)
        bar = reporter.task(f"manifest (tree size {served})", None, unit="bytes")
        with partial.open("wb") as out:
            async for chunk in response.aiter_bytes():
                out.write(chunk)
                bar.advance(len(chunk))
    partial.replace(manifest)
    state["manifest_done"] = True
    _save(state_file, state)


async def _fetch_data(client: httpx.AsyncClient, request: ExportRequest, tree_size: int, data: Path,
                      progress: _DataProgress) -> None:
    records, last_index = _resume_point(data, request.format)
    bar = progress.start(tree_size, records)
    if progress.count is not None and records and records >= progress.count:
        return  # complete already (an empty CSV still needs its header)
    params = {**request.params(), "tree_size": str(tree_size)}
    if last_index is not None:
        params["after_log_index"] = str(last_index)
    async with client.stream("GET", EXPORT_PATH, params=params) as response:
        await _check_response(response)
        if (served := _tree_size(response)) != tree_size:
            raise DownloadError(f"the server cut the data at {served}, not at the manifest's {tree_size}")
        ends = _RecordEnds(request.format, header_follows=last_index is None)
        with data.open("ab") as out:
            async for chunk in response.aiter_bytes():
                out.write(chunk)
                bar.advance(ends.count(chunk))


class _RecordEnds:
    """Counts the entries a stream of chunks completes, for the progress bar: JSONL lines end in LF
    (never inside one: JSON escapes it), CSV records in CRLF (a field may hold a bare LF); a CSV
    download from the start opens with its header, which is no entry."""

    def __init__(self, export_format: str, *, header_follows: bool) -> None:
        self._end = b"\r\n" if export_format == "csv" else b"\n"
        self._uncounted = 1 if export_format == "csv" and header_follows else 0
        self._carry = b""  # a CR at a chunk's end may meet its LF in the next chunk

    def count(self, chunk: bytes) -> int:
        joined = self._carry + chunk
        self._carry = joined[-1:] if len(self._end) > 1 and joined.endswith(b"\r") else b""
        ended = joined.count(self._end)
        skipped = min(ended, self._uncounted)
        self._uncounted -= skipped
        return ended - skipped


def scan(data: Path, export_format: str) -> tuple[int, int, int | None]:
    """(bytes up to the end of the last complete entry, entries, that entry's log_index) of a partial
    download, read in constant memory."""
    offset, complete, records, last_index = 0, 0, 0, None
    with data.open("rb") as file:
        if export_format == "jsonl":
            for raw in file:
                if not raw.endswith(b"\n"):
                    break
                try:
                    index = orjson.loads(raw)["log_index"]
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    break
                offset += len(raw)
                complete, records, last_index = offset, records + 1, index
            return complete, records, last_index
        ended = True

        def lines() -> Any:
            nonlocal offset, ended
            for raw in file:
                offset += len(raw)
                ended = raw.endswith(b"\n")
                yield raw.decode("utf-8", errors="replace")

        try:
            for number, row in enumerate(csv.reader(lines())):
                if not ended:
                    break
                if number == 0:
                    complete = offset
                    continue
                if not row or not (row[0].isascii() and row[0].isdigit()):
                    break
                complete, records, last_index = offset, records + 1, int(row[0])
        except csv.Error:
            pass
    return complete, records, last_index


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class RichReporter:
    """Progress bars on the terminal, one per download: the manifest in bytes, the data in entries."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    @staticmethod
    def columns() -> tuple[ProgressColumn, ...]:
        return (*Progress.get_default_columns(), _Amount())

    def task(self, description: str, total: int | None, completed: int = 0, *,
             unit: str = "entries") -> ProgressTask:
        return _RichTask(self._progress, self._progress.add_task(description, total=total,
                                                                 completed=completed, unit=unit))


@dataclass(frozen=True)
class _RichTask:
    progress: Progress
    task: TaskID

    def advance(self, amount: int) -> None:
        self.progress.advance(self.task, amount)

    def set_total(self, total: int) -> None:
        self.progress.update(self.task, total=total)


class _Amount(ProgressColumn):
    """"1.2 MB" of a manifest, "7/12 entries" of the data."""

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "entries")
        done = int(task.completed)
        if unit == "bytes":
            return Text(filesize.decimal(done))
        total = "?" if task.total is None else f"{int(task.total):,}"
        return Text(f"{done:,}/{total} {unit}")
