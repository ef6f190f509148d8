"""Cost of the two hottest request bodies, a cue create (nested body) and an outcome
report: parsing (from a decoded JSON object to the record the service stores) and the
whole request in process (ASGI, real SQLite file).

Runs this checkout and, with `--against DIR`, another one (for example `main`, unpacked
with `git archive`) in the same run, alternating rounds so both see the same machine
load; prints the best round of each and the ratio.

    python bench/request_shapes.py [--n 20000] [--rounds 5] [--against /tmp/base]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from cueapi_lite.callbacks import CallbackPolicy
from cueapi_lite.cue_input import new_cue, read_cue_body
from cueapi_lite.outcomes import parse_outcome

n = int(sys.argv[2])
policy = CallbackPolicy("local")
cue = {
    "name": "morning-brief", "description": None, "transport": "webhook",
    "schedule": {"type": "recurring", "cron": "0 9 * * *", "timezone": "America/Los_Angeles"},
    "callback": {"url": "http://127.0.0.1:9000/hook", "method": "POST", "headers": {}},
    "payload": {"task": "daily_brief", "n": 3}, "retry": {"max_attempts": 3,
    "backoff_minutes": [1, 5, 15]},
}
outcome = {"success": True, "result": "sent 3 emails", "external_id": "email:123",
           "metadata": {"count": 3}, "artifacts": [{"kind": "email", "id": 1}]}

def timed(step):
    start = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - start) / n * 1e6

create_us = timed(lambda: new_cue("usr_1", read_cue_body(cue, 1 << 20), policy, 1_700_000_000_000))
outcome_us = timed(lambda: parse_outcome(outcome, 1_700_000_000_000))


async def requests():
    import asyncio, tempfile, os
    from cueapi_lite import CueApiLite, Settings
    requests_n = max(n // 10, 200)
    folder = tempfile.mkdtemp()
    settings = Settings(db=os.path.join(folder, "bench.db"), rate_limit_per_minute=0)
    lite = CueApiLite(settings)
    await lite.start()
    try:
        key = (await lite.accounts.mint_key("bench@example.com")).api_key
        async with lite.client(key) as api:
            start = time.perf_counter()
            for i in range(requests_n):
                answer = await api.post("/v1/cues", json={**cue, "name": f"c{i}"})
                assert answer.status_code == 201, answer.text
            http_create = (time.perf_counter() - start) / requests_n * 1e6
            worker = {**cue, "name": "w", "transport": "worker"}
            cue_id = (await api.post("/v1/cues", json=worker)).json()["id"]
            ids = [(await api.post(f"/v1/cues/{cue_id}/fire")).json()["id"]
                   for _ in range(requests_n)]
            start = time.perf_counter()
            for execution_id in ids:
                answer = await api.post(f"/v1/executions/{execution_id}/outcome", json=outcome)
                assert answer.status_code == 200, answer.text
            http_outcome = (time.perf_counter() - start) / requests_n * 1e6
    finally:
        await lite.aclose()
    return http_create, http_outcome


import asyncio
http_create_us, http_outcome_us = asyncio.run(requests())
print(json.dumps({"create_us": create_us, "outcome_us": outcome_us,
                  "http_create_us": http_create_us, "http_outcome_us": http_outcome_us}))
"""


def measure(tree: Path, n: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(tree), str(n)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--against", type=Path)
    args = parser.parse_args()
    trees = {"this": Path(__file__).resolve().parents[1]}
    if args.against:
        trees["against"] = args.against.resolve()
    best: dict[str, dict[str, float]] = {}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            for key, value in measure(tree, args.n).items():
                best.setdefault(name, {})[key] = min(value, best.get(name, {}).get(key, 1e9))
    labels = {
        "create_us": "cue create, parse",
        "outcome_us": "outcome report, parse",
        "http_create_us": "POST /v1/cues, whole request",
        "http_outcome_us": "POST .../outcome, whole request",
    }
    print(f"best of {args.rounds} rounds, µs per call")
    for key, label in labels.items():
        line = f"{label:34}" + "".join(f"{name} {best[name][key]:7.1f}   " for name in best)
        if "against" in best:
            line += f"this / against {best['this'][key] / best['against'][key]:.2f}"
        print(line)


if __name__ == "__main__":
    main()
