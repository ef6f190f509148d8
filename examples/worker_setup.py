"""A worker cue and the configuration of the official `cueapi-worker` daemon that runs it.

    python examples/worker_setup.py BASE_URL API_KEY [--config worker.yaml]
    pip install cueapi-worker && cueapi-worker start -c worker.yaml

A worker cue is not pushed anywhere: each run waits until a worker claims it. The daemon
picks the handler for a run by the run's `payload.task`, so the cue's payload carries
`"task": "sync_data"` and the config has a handler under that same key. (A worker cue
created without `payload.task` gets a warning in the create answer: no daemon would ever
claim its runs.) The handler's output becomes the outcome; `{{ payload.rows }}` is filled
in from the payload.
"""

from __future__ import annotations

import argparse
import sys

from cueapi import CueAPI

TASK = "sync_data"

CONFIG = """\
# cueapi-worker configuration (written by examples/worker_setup.py)
api_key: {api_key}
api_base: {base_url}          # without /v1
worker_id: {worker_id}
poll_interval: 5
handlers:
  # The key is the payload's "task": runs of cues with payload.task = {task} go here.
  {task}: "echo synced {{{{ payload.rows }}}} rows"
"""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base_url")
    parser.add_argument("api_key")
    parser.add_argument("--config", default="worker.yaml", help="where to write the config")
    parser.add_argument("--worker-id", default="my-mac-mini")
    args = parser.parse_args(argv)
    base_url = args.base_url.rstrip("/")
    with CueAPI(args.api_key, base_url=base_url) as client:
        cue = client.cues.create(
            name="nightly-sync",
            cron="0 2 * * *",
            timezone="UTC",
            transport="worker",
            payload={"task": TASK, "rows": 100},
        )
    print(f"created worker cue {cue.name} ({cue.id}); next run {cue.next_run}")
    if cue.warning:
        print(f"server says: {cue.warning}")
    with open(args.config, "w", encoding="utf-8") as config:
        config.write(CONFIG.format(api_key=args.api_key, base_url=base_url,
                                   worker_id=args.worker_id, task=TASK))  # fmt: skip
    print(f"wrote {args.config}; start the worker with: cueapi-worker start -c {args.config}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
