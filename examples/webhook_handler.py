"""A webhook receiver for cueapi-lite: it checks each delivery's signature, does the
work, and answers with the outcome in its response body, which the server records.

    python examples/webhook_handler.py WEBHOOK_SECRET [--port 9000]

Point a cue's callback at the URL it prints (`http://127.0.0.1:9000/hook`). Deliveries
with a bad or missing signature get 401 and are not acted on. Every delivery carries the
execution id: a delivery may come twice (after a crash, a retry), so the id is the key to
deduplicate on.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cueapi import verify_webhook


def do_the_work(delivery: dict[str, Any]) -> dict[str, Any]:
    """Your agent's job. The answer becomes the execution's outcome: `success`, and
    optionally `result`, `error`, `external_id`, `result_url`, `summary`."""
    task = delivery["payload"].get("task")
    if task == "daily_brief":
        return {"success": True, "result": "brief sent", "external_id": "mail:1"}
    return {"success": False, "error": f"no handler for task {task!r}"}


def make_handler(secret: str) -> type[BaseHTTPRequestHandler]:
    done: dict[str, dict[str, Any]] = {}  # execution id -> outcome (the dedup key)

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            signature = self.headers.get("X-CueAPI-Signature", "")
            timestamp = self.headers.get("X-CueAPI-Timestamp", "")
            if not (signature and timestamp and verify_webhook(body, signature, secret, timestamp)):
                self.answer(401, {"error": "bad signature"})
                return
            delivery = json.loads(body)
            execution_id = delivery["execution_id"]
            if execution_id not in done:
                done[execution_id] = do_the_work(delivery)
            print(f"execution {execution_id} ({delivery['name']}): {done[execution_id]}",
                  flush=True)  # fmt: skip
            self.answer(200, done[execution_id])

        def answer(self, status: int, data: dict[str, Any]) -> None:
            payload = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    return Hook


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("secret", help="the webhook secret (whsec_...)")
    parser.add_argument("--port", type=int, default=9000, help="0 picks a free port")
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args.secret))
    print(f"listening on http://127.0.0.1:{server.server_address[1]}/hook", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
