"""Malformed requests against a real server: how many answer 500 (the target is 0).

Starts cueapi-lite on a free port (rate limits off), then sends N requests (default
1,800) built from every route the app serves crossed with hostile inputs: deep nesting,
NaN / Infinity / 1e400, lone surrogates, wrong types in every known field, huge strings,
odd Unicode, invalid UTF-8, out-of-range integers in query strings and garbage path ids.
Prints the answers by status class and every 5xx; finally checks that the user's cues
and executions still list and render.

    .venv/bin/python bench/fuzz.py [-n 1800] [--seed 14]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from starlette.routing import Mount, Route

from cueapi_lite.testing import LiveServer

FIELDS = [
    "name", "description", "schedule", "callback", "payload", "retry", "on_failure",
    "delivery", "alerts", "catch_up", "verification", "transport", "status", "cron", "at",
    "timezone", "success", "result", "error", "metadata", "artifacts", "external_id",
    "result_url", "result_ref", "summary", "payload_override", "merge_strategy",
    "worker_id", "handlers", "task", "valid", "reason", "email", "label", "token",
    "device_code", "subject", "message", "severity", "alert_webhook_url", "email_alerts",
]  # fmt: skip
NESTED = {
    "schedule": ["type", "cron", "at", "timezone"],
    "callback": ["url", "method", "headers"],
    "retry": ["max_attempts", "backoff_minutes"],
    "on_failure": ["email", "webhook", "pause"],
    "delivery": ["timeout_seconds", "outcome_deadline_seconds"],
    "alerts": ["consecutive_failures", "missed_window_multiplier"],
    "verification": ["mode"],
}
# Raw JSON text put where a value goes.
HOSTILE = [
    "NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" + "0" * 5000, "9223372036854775808",
    '"\\ud800"', '"x\\udfff"', '{"\\ud800": 1}', "[" * 10000 + "]" * 10000,
    '{"a":' * 5000 + "1" + "}" * 5000, "[]", "{}", "[1, 2]", '{"url": "x"}', "true", "0",
    "-1", "null", '""', json.dumps("x" * 300_000), json.dumps("\u202e\u0000\u0301\ufeff"),
    json.dumps("①②⑦.⓪.⓪.①"), json.dumps("http://2130706433/"), json.dumps("*/60 * * * *"),
    json.dumps("9999-12-31T23:00:00-12:00"), json.dumps("localtime"), json.dumps("0 25 * * *"),
]  # fmt: skip
RAW_BODIES = [
    b"", b"{", b"\xff\xfe", b"\xed\xa0\x80", b"null", b"[]", b"1e400", b'"\\ud800"',
    b"[" * 100_000, b'{"a":' * 20_000, b"\x00" * 100,
]  # fmt: skip
QUERY = ["9223372036854775808", "-1", "1e3", "0x10", "\uff11\uff12", "9" * 20, "", "\x00"]
PATH_IDS = ["①", "0" * 5000, "%00", "..", "%ud800", "9223372036854775808", "x" * 300]
VALID_CUE = {
    "name": "fuzz",
    "schedule": {"type": "recurring", "cron": "0 9 * * *", "timezone": "UTC"},
    "callback": {"url": "http://127.0.0.1:9/hook"},
    "payload": {"k": 1},
}


def route_table(routes: list[Any], prefix: str = "") -> list[tuple[str, list[str]]]:
    """Every (path, methods) the app serves, including routes inside mounted apps."""
    table: list[tuple[str, list[str]]] = []
    for route in routes:
        if isinstance(route, Route):
            table.append((prefix + route.path, sorted(route.methods or [])))
        elif isinstance(route, Mount):
            table += route_table(list(route.routes), prefix + route.path)
    return table


def body_with(field: str, value: str, nested: str | None) -> bytes:
    base = {k: v for k, v in VALID_CUE.items() if k != field}
    prefix = json.dumps(base)[:-1] + (", " if base else "")
    inner = f'{{"{nested}": {value}}}' if nested else value
    return f'{prefix}"{field}": {inner}}}'.encode()


def requests(
    routes: list[tuple[str, str]], ids: dict[str, str], count: int, rng: random.Random
) -> list[tuple[str, str, bytes, dict[str, str]]]:
    made: list[tuple[str, str, bytes, dict[str, str]]] = []
    while len(made) < count:
        template, method = rng.choice(routes)
        garbage = rng.choice(PATH_IDS) if rng.random() < 0.2 else None
        if method == "DELETE" or template.endswith("/regenerate"):
            garbage = garbage or "not-a-real-id"  # keep the fuzzing user's cue and key

        def fill(match: re.Match[str], garbage: str | None = garbage) -> str:
            return garbage if garbage is not None else ids.get(match.group(1), "x")

        path = re.sub(r"\{(\w+)(?::\w+)?\}", fill, template)
        params: dict[str, str] = {}
        body = b""
        if method == "GET" or rng.random() < 0.1:
            params[rng.choice(["offset", "limit", "since", "status", "cue_id"])] = rng.choice(QUERY)
        if method != "GET":
            roll = rng.random()
            if roll < 0.15:
                body = rng.choice(RAW_BODIES)
            else:
                field = rng.choice(FIELDS)
                nested = rng.choice(NESTED[field]) if field in NESTED and roll < 0.5 else None
                body = body_with(field, rng.choice(HOSTILE), nested)
        made.append((method, path, body, params))
    return made


async def fuzz(base_url: str, key: str, plan: list[Any], concurrency: int) -> dict[str, Any]:
    statuses: collections.Counter[int] = collections.Counter()
    failures: list[str] = []
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for item in plan:
        queue.put_nowait(item)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as client:

        async def worker() -> None:
            while not queue.empty():
                method, path, body, params = queue.get_nowait()
                try:
                    response = await client.request(method, path, content=body, params=params)
                except httpx.InvalidURL:
                    statuses[0] += 1  # the client refused to send it; not the server's answer
                    continue
                statuses[response.status_code] += 1
                if response.status_code >= 500:
                    failures.append(f"{response.status_code} {method} {path[:80]} {body[:80]!r}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        renders = [
            (await client.get(p)).status_code
            for p in ("/v1/cues?limit=100", "/v1/executions?limit=100", "/v1/alerts")
        ]
    return {"statuses": statuses, "failures": failures, "renders": renders}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1800, help="how many requests")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db = str(Path(folder) / "fuzz.db")
        with LiveServer(db, rate_limit_per_minute=0, ip_rate_limit_per_minute=0) as server:
            key = server.mint_key("fuzz@example.com").api_key
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=server.base_url, headers=headers) as api:
                cue = api.post("/v1/cues", json=VALID_CUE).json()
                fired = api.post(f"/v1/cues/{cue['id']}/fire", json={}).json()
            assert server.lite is not None
            routes = [
                (path, method)
                for path, methods in route_table(server.lite.asgi.routes)
                for method in methods
                if method != "HEAD"
            ]
            ids = {"cue_id": cue["id"], "execution_id": fired["id"], "ticket_id": "1"}
            plan = requests(routes, ids, args.n, random.Random(args.seed))
            started = time.perf_counter()
            result = asyncio.run(fuzz(server.base_url, key, plan, args.concurrency))
            elapsed = time.perf_counter() - started
    statuses = result["statuses"]
    classes = collections.Counter(f"{code // 100}xx" for code in statuses.elements() if code)
    print(f"{args.n} malformed requests over {len(routes)} route methods in {elapsed:.1f} s")
    print("answers:", dict(sorted(classes.items())), "| not sendable:", statuses[0])
    print("by status:", dict(sorted(statuses.items())))
    print(f"500s: {sum(n for code, n in statuses.items() if code >= 500)}")
    for failure in result["failures"][:20]:
        print("  ", failure)
    print("lists after the run (cues, executions, alerts):", result["renders"])


if __name__ == "__main__":
    main()
