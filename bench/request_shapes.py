"""Parsing cost of the two hottest request bodies: a cue create (E1, nested body) and an
outcome report (E9), from a decoded JSON object to the record the service stores.

Runs the parsers of this checkout and, with `--against DIR`, of another checkout (for
example the commit before a change, unpacked with `git archive`) in the same run,
alternating rounds so both see the same machine load, and prints the ratio.

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
print(json.dumps({"create_us": create_us, "outcome_us": outcome_us}))
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
    for name, numbers in best.items():
        print(
            f"{name:8} cue create {numbers['create_us']:6.1f} µs"
            f"   outcome report {numbers['outcome_us']:6.1f} µs   (best of {args.rounds})"
        )
    if "against" in best:
        for key, label in (("create_us", "cue create"), ("outcome_us", "outcome report")):
            ratio = best["this"][key] / best["against"][key]
            print(f"{label}: this / against = {ratio:.2f}")


if __name__ == "__main__":
    main()
