"""Read-path throughput of a real `cueapi-lite serve` process (requests per second).

Each row is measured with `wrk -t2 -c16 -d5s` and a Bearer key (an in-process load
generator when wrk is not installed), with the server's rate limit off. With
`--base-pythonpath DIR` a second server runs from another checkout of the package (for
example `git archive main | tar -x -C DIR`), both are filled alike, and each row is
measured on both, alternating, so the ratio comes from one run on one machine.

    python bench/api.py [--seconds 5] [--rounds 2] [--cues 10000] [--executions 10000]
                        [--base-pythonpath DIR]

The last rows list a worker cue fired `--executions` times by hand (worker executions wait
for a claim, so nothing is written while they are measured).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
from typing import Any

import aiohttp
import loadgen
from common import ServerProcess, machine, server_process

ROWS: list[tuple[str, str, bool, str]] = [
    # (label, path, with the key, fill: "empty" | "20" | "many")
    ("GET /status (no auth)", "/status", False, "empty"),
    ("GET /v1/executions?limit=20, 0 executions", "/v1/executions?limit=20", True, "empty"),
    ("GET /v1/cues?limit=20, 20 cues", "/v1/cues?limit=20", True, "20"),
    ("GET /v1/auth/me, 20 cues", "/v1/auth/me", True, "20"),
    ("GET /v1/cues?limit=20, {many} cues", "/v1/cues?limit=20", True, "many"),
    ("GET /v1/cues?limit=20&offset={last}, {many} cues", "/v1/cues?limit=20&offset={last}",
     True, "many"),
    ("GET /v1/cues/{{id}}, {many} cues", "/v1/cues/{id}", True, "many"),
    ("GET /v1/auth/me, {many} cues", "/v1/auth/me", True, "many"),
    ("GET /v1/usage, {many} cues", "/v1/usage", True, "many"),
    ("GET /v1/executions?limit=20, {runs} executions", "/v1/executions?limit=20", True,
     "history"),
    ("GET /v1/cues/{{id}}, a cue with {runs} executions", "/v1/cues/{id}", True, "history"),
    ("GET /v1/executions?cue_id={{id}}, {runs} executions", "/v1/executions?cue_id={id}&limit=20",
     True, "history"),
]  # fmt: skip


def cue_body(n: int) -> dict[str, Any]:
    return {
        "name": f"bench-{n}",
        "schedule": {"type": "recurring", "cron": "0 0 1 1 *", "timezone": "Europe/Berlin"},
        "callback": {"url": "http://127.0.0.1:9/hook", "headers": {"X-Bench": "1"}},
        "payload": {"task": "bench", "n": n, "tags": ["a", "b"]},
        "description": "a cue made by bench/api.py",
    }


async def fill(server: ServerProcess, start: int, stop: int) -> str:
    """Create cues number start..stop-1 over HTTP; returns the id of the last one."""
    headers = {"Authorization": f"Bearer {server.key}"}
    last = ""
    semaphore = asyncio.Semaphore(16)
    async with aiohttp.ClientSession(headers=headers) as session:

        async def create(n: int) -> None:
            nonlocal last
            async with semaphore, session.post(f"{server.base}/v1/cues", json=cue_body(n)) as r:
                assert r.status == 201, await r.text()
                last = (await r.json())["id"]

        await asyncio.gather(*(create(n) for n in range(start, stop)))
    return last


async def fire_many(server: ServerProcess, times: int) -> str:
    """A worker cue fired `times` times by hand; returns its id."""
    headers = {"Authorization": f"Bearer {server.key}"}
    body = {**cue_body(-1), "name": "bench-history", "transport": "worker"}
    semaphore = asyncio.Semaphore(16)
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(f"{server.base}/v1/cues", json=body) as r:
            assert r.status == 201, await r.text()
            cue_id: str = (await r.json())["id"]

        async def fire() -> None:
            async with semaphore, session.post(f"{server.base}/v1/cues/{cue_id}/fire") as r:
                assert r.status == 200, await r.text()

        await asyncio.gather(*(fire() for _ in range(times)))
    return cue_id


def check(server: ServerProcess, path: str, with_key: bool) -> None:
    async def get() -> None:
        headers = {"Authorization": f"Bearer {server.key}"} if with_key else {}
        async with (
            aiohttp.ClientSession(headers=headers) as session,
            session.get(server.base + path) as response,
        ):
            assert response.status == 200, (path, response.status, await response.text())

    asyncio.run(get())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--cues", type=int, default=10_000, help="cues in the 'many' rows")
    parser.add_argument("--executions", type=int, default=10_000, help="in the last rows")
    parser.add_argument("--base-pythonpath", help="also measure a server run from this path")
    args = parser.parse_args()
    print(f"machine: {machine()}; load: {loadgen.generator()} -c{args.connections}"
          f" {args.seconds:g}s x {args.rounds} rounds")  # fmt: skip
    with contextlib.ExitStack() as stack:
        servers = {"this": stack.enter_context(server_process())}
        if args.base_pythonpath:
            servers["base"] = stack.enter_context(server_process(args.base_pythonpath))
        names = list(servers)
        results: dict[tuple[str, str], list[float]] = {}
        filled = "empty"
        ids: dict[str, str] = {}
        for label, path, with_key, fill_level in ROWS:
            if fill_level != filled:
                start, stop = (0, 20) if fill_level == "20" else (20, args.cues)
                for name, server in servers.items():
                    if fill_level == "history":
                        ids[name] = asyncio.run(fire_many(server, args.executions))
                    else:
                        ids[name] = asyncio.run(fill(server, start, stop))
                filled = fill_level
            label = label.format(
                many=f"{args.cues:,}", last=args.cues - 20, runs=f"{args.executions:,}"
            )
            for round_ in range(args.rounds):
                order = names if round_ % 2 == 0 else names[::-1]
                for name in order:
                    server = servers[name]
                    url_path = path.format(id=ids.get(name, ""), last=args.cues - 20)
                    check(server, url_path, with_key)
                    rate = loadgen.requests_per_second(
                        server.base + url_path, server.key if with_key else None,
                        args.seconds, args.connections,
                    )  # fmt: skip
                    results.setdefault((label, name), []).append(rate)
            line = f"{label:55s}"
            for name in names:
                line += f" {name} {statistics.median(results[(label, name)]):8,.0f} req/s"
            if "base" in servers:
                ratio = statistics.median(results[(label, "this")]) / statistics.median(
                    results[(label, "base")]
                )
                line += f"  x{ratio:.2f}"
            print(line, flush=True)
        for name, server in servers.items():
            print(f"{name}: RSS after the run {server.rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
