"""A minimal webhook receiver for benchmarks: answers 200 `{}` to everything.

Run as its own process (`python bench/receiver.py PORT [SECRET]`) so it does not share a
core's event loop with the server being measured. Prints `ready` when listening. With a
SECRET it checks every request's `X-CueAPI-Signature` against the raw body and records
when each execution arrived; `GET /_stats` answers what it saw and `DELETE /_stats`
forgets it:
`{"received", "bad_signatures", "arrivals": {execution_id: [arrived_ms, scheduled_ms,
cue name]}}`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sys
import time
from datetime import datetime
from typing import Any

from aiohttp import web

SECRET: bytes | None = None
STATS: dict[str, Any] = {"received": 0, "bad_signatures": 0, "arrivals": {}}


async def handle(request: web.Request) -> web.Response:
    body = await request.read()
    if SECRET is not None:
        arrived_ms = time.time() * 1000
        STATS["received"] += 1
        timestamp = request.headers.get("X-CueAPI-Timestamp", "")
        expected = (
            "v1=" + hmac.new(SECRET, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        )
        if not hmac.compare_digest(expected, request.headers.get("X-CueAPI-Signature", "")):
            STATS["bad_signatures"] += 1
        sent = json.loads(body or b"{}")
        execution_id = request.headers.get("X-CueAPI-Execution-Id", "")
        scheduled_ms = (
            datetime.fromisoformat(
                sent.get("scheduled_for", "1970-01-01T00:00:00+00:00")
            ).timestamp()
            * 1000
        )
        STATS["arrivals"].setdefault(execution_id, [arrived_ms, scheduled_ms, sent.get("name")])
    return web.Response(body=b"{}", content_type="application/json")


async def stats(request: web.Request) -> web.Response:
    if request.method == "DELETE":
        STATS.update(received=0, bad_signatures=0, arrivals={})
    return web.json_response(STATS)


async def main(port: int) -> None:
    app = web.Application()
    app.router.add_route("*", "/_stats", stats)
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    if len(sys.argv) > 2:
        SECRET = sys.argv[2].encode()
    try:
        import uvloop

        uvloop.run(main(int(sys.argv[1])))
    except ImportError:
        asyncio.run(main(int(sys.argv[1])))
