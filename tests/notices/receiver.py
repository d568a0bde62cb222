"""A webhook receiver as the operator's notification service would run it: a process of its own that
checks every request's signature with the `standardwebhooks` package and records what it got.

python -m tests.notices.receiver --port P --secret-file F --log L [--fail-first N] [--delay S]
    [--redirect-status 302 --redirect-to URL] [--answer huge|endless] [--refuse-customer C
    [--refuse-status 503]]

Each request is a JSON line in L, written before it is answered: its webhook-id, whether the
signature verified, the status it answers, and the body. The first N requests are answered 500; a
request whose signature does not verify gets 400. `--delay` holds each answer that long.
`--redirect-status` answers every request with that status and `Location: URL` instead.
`--answer` sends a 200 with a body too big to read: `huge` declares a gigabyte, `endless` is
chunked and never ends; either goes on until the client hangs up, and the line is written then,
with `answer_bytes`, what the receiver managed to send.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret-file", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--redirect-status", type=int, default=0)
    parser.add_argument("--redirect-to", default="")
    parser.add_argument("--answer", choices=("huge", "endless"), default=None)
    parser.add_argument("--refuse-customer", default="")  # its notices always get --refuse-status
    parser.add_argument("--refuse-status", type=int, default=422)
    args = parser.parse_args()
    webhook = Webhook(Path(args.secret_file).read_text().strip())
    lock = threading.Lock()
    received = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {name.lower(): value for name, value in self.headers.items()}
            try:
                webhook.verify(body, headers)
                verified = True
            except WebhookVerificationError:
                verified = False
            with lock:
                received[0] += 1
                status = 400 if not verified else 500 if received[0] <= args.fail_first else 200
            if verified and args.refuse_customer and \
                    json.loads(body)["data"]["customer_id"] == args.refuse_customer:
                status = args.refuse_status
            if verified and args.redirect_status:
                status = args.redirect_status
            time.sleep(args.delay)
            signed = {k: v for k, v in headers.items() if k.startswith("webhook-")}
            record: dict[str, Any] = {"webhook_id": headers.get("webhook-id"), "verified": verified,
                                      "status": status, "body": body.decode(errors="replace"),
                                      "headers": signed}
            if status == 200 and args.answer:
                record["answer_bytes"] = self._answer_too_much(args.answer)
                self._log(record)
                return
            # Logged before it is answered: seenby sends a customer's next notice only once it has
            # the answer, so each customer's notices are logged in the order seenby sent them; a
            # receiver killed between the two has logged a 200 that seenby never got, and the
            # notice comes again (deduplicated by webhook-id).
            self._log(record)
            self.send_response(status)
            if args.redirect_status:
                self.send_header("location", args.redirect_to)
            self.send_header("content-length", "0")
            self.end_headers()

        def _log(self, record: dict[str, Any]) -> None:
            with lock:
                log.write(json.dumps(record) + "\n")
                log.flush()

        def _answer_too_much(self, how: str) -> int:
            """A 200 whose body goes on until the client hangs up; how much of it was sent."""
            self.send_response(200)
            if how == "huge":
                self.send_header("content-length", str(2**30))
            else:
                self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            chunk, sent = b"x" * 65536, 0
            with contextlib.suppress(OSError):  # the client hung up: a broken pipe, a reset
                while sent < 2**30:
                    self.wfile.write(chunk if how == "huge" else b"10000\r\n" + chunk + b"\r\n")
                    self.wfile.flush()
                    sent += len(chunk)
            self.close_connection = True
            return sent

        def do_GET(self) -> None:  # readiness
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    with Path(args.log).open("a") as log:
        ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main()
