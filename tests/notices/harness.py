"""A webhook receiver process (tests/notices/receiver.py) and seenby settings that send to it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from service.settings import Settings
from tests.pg import free_port


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class Delivery:
    webhook_id: str
    verified: bool
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    raw: str
    answer_bytes: int = 0  # with --answer: how much of its endless answer the receiver sent


class Receiver:
    """`python -m tests.notices.receiver` on a fixed port: stopped and started again, it keeps its
    log, as a notification service that went down and came back."""

    def __init__(self, folder: Path, secret: str | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.secret = secret or new_secret()
        (folder / "secret").write_text(self.secret)
        self.log = folder / "received.jsonl"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks/seenby"
        self._process: subprocess.Popen[bytes] | None = None
        self._deliveries: list[Delivery] = []
        self._read_to = 0  # bytes of the log read into _deliveries

    def start(self, *, fail_first: int = 0, delay: float = 0.0, redirect: tuple[int, str] | None = None,
              answer: str | None = None, refuse_customer: str = "", refuse_status: int = 422) -> None:
        """`redirect`: (status, URL) answered to every request; `answer`: "huge" or "endless", a 200
        whose body goes on until seenby hangs up."""
        assert self._process is None
        command = [sys.executable, "-m", "tests.notices.receiver", "--port", str(self.port),
                   "--secret-file", str(self.folder / "secret"), "--log", str(self.log),
                   "--fail-first", str(fail_first), "--delay", str(delay)]
        if redirect:
            command += ["--redirect-status", str(redirect[0]), "--redirect-to", redirect[1]]
        if answer:
            command += ["--answer", answer]
        if refuse_customer:
            command += ["--refuse-customer", refuse_customer, "--refuse-status", str(refuse_status)]
        with (self.folder / "receiver.out").open("a") as output:
            self._process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                             cwd=Path(__file__).resolve().parents[2])
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url, timeout=1).status_code == 204:
                    return
            assert self._process.poll() is None, (self.folder / "receiver.out").read_text()
            assert time.monotonic() < deadline, "the receiver never answered"
            time.sleep(0.05)

    def use_secret(self, secret: str) -> None:
        """The secret it verifies with from its next start: a receiver moved to a rotated secret."""
        self.secret = secret
        (self.folder / "secret").write_text(secret)

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def deliveries(self) -> list[Delivery]:
        """Every request the receiver logged, read on from where the last call stopped."""
        if not self.log.exists():
            return []
        with self.log.open("rb") as log:
            log.seek(self._read_to)
            lines = log.read().split(b"\n")
        for line in lines[:-1]:  # the last is empty, or a line still being written
            record = json.loads(line)
            self._deliveries.append(Delivery(
                record["webhook_id"], record["verified"], record["status"],
                json.loads(record["body"]) if record["verified"] else {}, record["headers"], record["body"],
                record.get("answer_bytes", 0)))
            self._read_to += len(line) + 1
        return list(self._deliveries)

    def accepted(self) -> list[Delivery]:
        """What the receiver took (verified, answered 200), each webhook-id once: its deduplication."""
        seen: dict[str, Delivery] = {}
        for delivery in self.deliveries():
            if delivery.verified and delivery.status == 200:
                seen.setdefault(delivery.webhook_id, delivery)
        return list(seen.values())

    async def wait_for(self, count: int, within: float = 30.0) -> list[Delivery]:
        """Until `count` distinct notices were accepted; then a moment more, to see any extra."""
        deadline = time.monotonic() + within
        while len(self.accepted()) < count:
            assert time.monotonic() < deadline, f"{len(self.accepted())} of {count} notices delivered"
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)
        return self.accepted()


@contextlib.contextmanager
def receiver(folder: Path, **start: Any) -> Iterator[Receiver]:
    running = Receiver(folder)
    running.start(**start)
    try:
        yield running
    finally:
        running.stop()


def webhook_settings(settings: Settings, receiver: Receiver, **more: Any) -> Settings:
    """Settings that send notices to the receiver, retrying quickly (tests cannot wait seconds)."""
    return settings.model_copy(update={
        "webhook_url": receiver.url, "webhook_secret": receiver.secret, "webhook_backoff_seconds": 0.05,
        "webhook_backoff_max_seconds": 0.5, **more})


def webhook_env(receiver: Receiver, **more: str) -> dict[str, str]:
    """The same, as a `seenby serve` process's environment."""
    return {"SEENBY_WEBHOOK_URL": receiver.url, "SEENBY_WEBHOOK_SECRET": receiver.secret,
            "SEENBY_WEBHOOK_BACKOFF_SECONDS": "0.05", "SEENBY_WEBHOOK_BACKOFF_MAX_SECONDS": "0.5", **more}


def customer_order_holds(deliveries: list[Delivery]) -> bool:
    """Each customer's notices arrived in customer_seq order (two types of one entry in either)."""
    last: dict[str, int] = {}
    for delivery in deliveries:
        data = delivery.body["data"]
        if data["customer_seq"] < last.get(data["customer_id"], -1):
            return False
        last[data["customer_id"]] = data["customer_seq"]
    return True

