"""Quick start with the official SDK: schedule a cue, receive its signed webhook, check
the signature, answer with an outcome, read the history.

    python examples/sdk_quickstart.py BASE_URL API_KEY WEBHOOK_SECRET

(`cueapi-lite serve` prints all three on its first start.) The script runs its own
webhook receiver on a free local port, so nothing else is needed.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cueapi import CueAPI, verify_webhook


def start_receiver(secret: str, inbox: queue.Queue[dict[str, Any]]) -> ThreadingHTTPServer:
    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            valid = verify_webhook(
                body, self.headers["X-CueAPI-Signature"], secret, self.headers["X-CueAPI-Timestamp"]
            )
            answer = {"success": True, "result": "briefing sent"} if valid else {"error": "bad"}
            self.send_response(200 if valid else 401)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(answer).encode())
            inbox.put({"valid": valid, **json.loads(body)})

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(base_url: str, api_key: str, secret: str) -> int:
    inbox: queue.Queue[dict[str, Any]] = queue.Queue()
    receiver = start_receiver(secret, inbox)
    hook_url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    with CueAPI(api_key, base_url=base_url) as client:
        cue = client.cues.create(
            name=f"quickstart-{int(time.time())}",
            at=datetime.now(UTC),  # "now": fires at once
            callback=hook_url,
            payload={"task": "daily_brief"},
        )
        print(f"created {cue.id}, next run {cue.next_run}")
        webhook = inbox.get(timeout=30)
        print(
            f"webhook for execution {webhook['execution_id']}: signature valid={webhook['valid']}"
        )
        for _ in range(100):
            execution = client.executions.get(webhook["execution_id"])
            if execution["outcome_state"]:
                break
            time.sleep(0.1)
        print(f"status={execution['status']} outcome={execution['outcome_state']} "
              f"result={execution['outcome']['result']!r}")  # fmt: skip
        client.cues.delete(cue.id)
    receiver.shutdown()
    return 0 if webhook["valid"] and execution["outcome_state"] == "reported_success" else 1


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(*sys.argv[1:]))
