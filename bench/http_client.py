"""CPU per webhook request of the delivery HTTP client, alone: `HttpDeliverer.send` of a
small signed-sized POST to the lean receiver in another process, 64 requests at once (as
the delivery pool sends them), over kept-alive connections.

Runs this checkout and, with `--against DIR`, another one in the same run, alternating
rounds in fresh processes so both see the same machine; prints each round and the median
and best of each. The machine's speed moves from second to second, so compare medians
over several rounds.

    python bench/http_client.py [--requests 20000] [--rounds 5] [--against /tmp/base]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

from common import machine, receiver_process

HERE = Path(__file__).resolve().parent

CHILD = r"""
import asyncio, sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(1, sys.argv[2])
from common import run
from cueapi_lite.callbacks import CallbackPolicy
from cueapi_lite.webhooks import HttpDeliverer, WebhookRequest

url, requests = sys.argv[3], int(sys.argv[4])

async def main():
    deliverer = HttpDeliverer(CallbackPolicy("local"))
    request = WebhookRequest(
        url=url + "/hook", method="POST", timeout_s=30.0, body=b'{"n": 1}' * 40,
        headers={"Content-Type": "application/json", "X-CueAPI-Attempt": "1"},
    )
    async def sender(count):
        for _ in range(count):
            assert (await deliverer.send(request)).status == 200
    await asyncio.gather(*(sender(requests // 64 // 4) for _ in range(64)))  # warm up
    started = time.process_time()
    await asyncio.gather(*(sender(requests // 64) for _ in range(64)))
    print((time.process_time() - started) / (requests // 64 * 64) * 1e6)
    await deliverer.close()

run(main())
"""


def one_round(checkout: str, url: str, requests: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, checkout, str(HERE), url, str(requests)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--against", help="another checkout to measure in the same run")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    checkouts = {"this": str(HERE.parent)} | ({"against": args.against} if args.against else {})
    results: dict[str, list[float]] = {name: [] for name in checkouts}
    with receiver_process() as url:
        for _ in range(args.rounds):
            for name, checkout in checkouts.items():
                results[name].append(one_round(checkout, url, args.requests))
    for name, values in results.items():
        rounds = " ".join(f"{value:.1f}" for value in values)
        print(
            f"{name:>8}: median {statistics.median(values):5.1f} µs CPU per request, best"
            f" {min(values):5.1f} (rounds: {rounds})"
        )


if __name__ == "__main__":
    main()
