"""Burst, lateness and API scenarios against any CueAPI server, over HTTP only.

Everything goes through the public API with one key, and every webhook lands at a
receiver process here that verifies its signature with the given secret, so the same
figures can be taken from another implementation in the same run:

* burst: N one-time cues due at one instant; seconds until every webhook has arrived
  (all signatures valid) and until the server lists them all as `success`;
* lateness: cues due at distinct instants; how late each webhook arrived;
* API: the read-path table (requests per second, see api.py), on the data left behind.

    python bench/compare.py --base URL --key KEY --secret SECRET [--cues 10000]
        [--lateness-cues 200] [--seconds 5] [--skip-api] [--receiver lean|aiohttp]

The server must accept callbacks to 127.0.0.1 and should have its rate limit off.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
import loadgen
from common import add_receiver_option, machine, percentiles, receiver_process

API_ROWS = [
    ("GET /status (no auth)", "/status", False),
    ("GET /v1/executions?limit=20", "/v1/executions?limit=20", True),
    ("GET /v1/cues?limit=20", "/v1/cues?limit=20", True),
    ("GET /v1/auth/me", "/v1/auth/me", True),
]


def at(epoch_ms: float) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat()


class Api:
    """The server under test, through its HTTP API (429s are waited out)."""

    def __init__(self, base: str, key: str) -> None:
        self.base = base.rstrip("/")
        self.session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {key}"},
            connector=aiohttp.TCPConnector(limit=64),
        )

    async def close(self) -> None:
        await self.session.close()

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        while True:
            async with self.session.request(method, self.base + path, json=body) as response:
                if response.status == 429:
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                    continue
                data = await response.json(content_type=None)
                if response.status >= 400:
                    raise RuntimeError(f"{method} {path}: {response.status} {data}")
                return data

    async def create_once(self, names: list[str], due_ms: list[float], url: str) -> list[str]:
        """Create one-time cues; their ids."""
        semaphore = asyncio.Semaphore(16)

        async def create(name: str, due: float) -> str:
            body = {"name": name, "schedule": {"type": "once", "at": at(due)},
                    "callback": {"url": url}, "payload": {"bench": name}}  # fmt: skip
            async with semaphore:
                return str((await self.call("POST", "/v1/cues", body))["id"])

        return await asyncio.gather(*(create(n, d) for n, d in zip(names, due_ms, strict=True)))

    async def succeeded(self) -> int:
        page = await self.call("GET", "/v1/executions?status=success&limit=1")
        return int(page["total"])


async def receiver_stats(
    session: aiohttp.ClientSession, receiver: str, arrivals: bool = False
) -> dict[str, Any]:
    """The receiver's counts; `arrivals` adds every arrival (a large answer: the
    receiver shares the server's cores, so it is asked for them only once)."""
    async with session.get(f"{receiver}/_stats{'?arrivals=1' if arrivals else ''}") as response:
        stats: dict[str, Any] = await response.json()
        return stats


async def burst(api: Api, receiver: str, cues: int, tag: str) -> dict[str, float]:
    """N one-time cues due at one instant. The instant is set so that creating them all
    (over HTTP, timed on the first 500) finishes well before it."""
    async with aiohttp.ClientSession() as plain:
        await plain.delete(f"{receiver}/_stats")
        before = await api.succeeded()
        started = time.time() * 1000
        first = min(500, cues)
        hook = f"{receiver}/hook"
        # The first 500 are due in an hour; once their pace is known they move to the
        # instant, set so that creating the rest ends well before it.
        cue_ids = await api.create_once(
            [f"{tag}-{n}" for n in range(first)], [started + 3_600_000] * first, hook
        )
        per_cue_ms = (time.time() * 1000 - started) / first
        due_ms = (time.time() * 1000 + per_cue_ms * cues * 1.3 + 5_000) // 1000 * 1000
        if first < cues:
            await api.create_once([f"{tag}-{n}" for n in range(first, cues)],
                                  [due_ms] * (cues - first), hook)  # fmt: skip
        semaphore = asyncio.Semaphore(16)

        async def move(cue_id: str) -> None:
            body = {"schedule": {"type": "once", "at": at(due_ms)}}
            async with semaphore:
                await api.call("PATCH", f"/v1/cues/{cue_id}", body)

        await asyncio.gather(*(move(cue_id) for cue_id in cue_ids))
        if time.time() * 1000 > due_ms:
            print("warning: creating the cues took past the instant")
        await asyncio.sleep(max(0.0, due_ms / 1000 - time.time()))
        deadline = time.time() + 300
        arrived_s = durable_s = None
        while time.time() < deadline and durable_s is None:
            await asyncio.sleep(0.05)
            stats = await receiver_stats(plain, receiver)
            if arrived_s is None and stats["arrived"] >= cues:
                arrived_s = (stats["last_arrival_ms"] - due_ms) / 1000
            if arrived_s is not None and await api.succeeded() - before >= cues:
                durable_s = time.time() - due_ms / 1000
        stats = await receiver_stats(plain, receiver)
    if arrived_s is None or durable_s is None:
        raise RuntimeError(f"burst incomplete: {stats['arrived']} of {cues} arrived")
    return {"arrived_s": arrived_s, "durable_s": durable_s,
            "bad_signatures": stats["bad_signatures"], "received": stats["received"]}  # fmt: skip


async def lateness(
    api: Api, receiver: str, count: int, spread_s: float, tag: str, lead_s: float = 10.0
) -> dict[str, float]:
    """`count` cues due at distinct instants over `spread_s` seconds, starting `lead_s`
    from now; how late each webhook arrived (arrival - scheduled_for), in ms."""
    async with aiohttp.ClientSession() as plain:
        await plain.delete(f"{receiver}/_stats")
        first_ms = time.time() * 1000 + lead_s * 1000
        due = [first_ms + n * spread_s * 1000 / count for n in range(count)]
        await api.create_once([f"{tag}-{n}" for n in range(count)], due, f"{receiver}/hook")
        await asyncio.sleep(max(0.0, due[-1] / 1000 - time.time()) + 2)
        while (await receiver_stats(plain, receiver))["arrived"] < count:
            await asyncio.sleep(0.2)
        stats = await receiver_stats(plain, receiver, arrivals=True)
    late = [arrived - scheduled for arrived, scheduled, _name in stats["arrivals"].values()]
    return {**percentiles(late), "bad_signatures": stats["bad_signatures"]}


def api_table(base: str, key: str, seconds: float) -> list[tuple[str, float]]:
    return [
        (label, loadgen.requests_per_second(base + path, key if auth else None, seconds))
        for label, path, auth in API_ROWS
    ]


async def scenarios(args: argparse.Namespace, receiver: str) -> None:
    api = Api(args.base, args.key)
    tag = f"compare-{int(time.time())}"
    try:
        late = await lateness(api, receiver, args.lateness_cues, args.spread, f"{tag}-idle")
        print(f"lateness (idle): p50 {late['p50']:.1f} ms  p99 {late['p99']:.1f} ms"
              f"  max {late['max']:.1f} ms  ({args.lateness_cues} cues,"
              f" {late['bad_signatures']} bad signatures)", flush=True)  # fmt: skip
        found = await burst(api, receiver, args.cues, f"{tag}-burst")
        rate = args.cues / found["durable_s"]
        print(f"burst of {args.cues:,}: all arrived after {found['arrived_s']:.2f} s, all"
              f" listed success after {found['durable_s']:.2f} s ({rate:,.0f}/s);"
              f" {found['bad_signatures']} bad signatures", flush=True)  # fmt: skip
    finally:
        await api.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", required=True, help="the server, e.g. http://127.0.0.1:8000")
    parser.add_argument("--key", required=True)
    parser.add_argument("--secret", required=True, help="the key's user's webhook secret")
    parser.add_argument("--cues", type=int, default=10_000)
    parser.add_argument("--lateness-cues", type=int, default=200)
    parser.add_argument("--spread", type=float, default=10.0, help="seconds the lateness cues span")
    parser.add_argument("--seconds", type=float, default=5.0, help="per API row")
    parser.add_argument("--skip-api", action="store_true")
    add_receiver_option(parser)
    args = parser.parse_args()
    print(f"machine: {machine()}; server: {args.base}")
    with receiver_process(args.secret, args.receiver == "aiohttp") as receiver:
        asyncio.run(scenarios(args, receiver))
    if not args.skip_api:
        for label, rate in api_table(args.base.rstrip("/"), args.key, args.seconds):
            print(f"{label:40s} {rate:8,.0f} req/s ({loadgen.generator()})", flush=True)


if __name__ == "__main__":
    main()
