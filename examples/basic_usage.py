"""Basic usage with the official SDK: create cues, list them, pause one, delete them.

    python examples/basic_usage.py BASE_URL API_KEY

(`cueapi-lite serve` prints both on its first start.)
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

from cueapi import CueAPI


def main(base_url: str, api_key: str) -> int:
    with CueAPI(api_key, base_url=base_url) as client:
        daily = client.cues.create(
            name="morning-brief",
            cron="0 9 * * *",
            timezone="America/Los_Angeles",
            callback="http://127.0.0.1:9000/hook",
            payload={"task": "daily_brief"},
        )
        once = client.cues.create(
            name="send-report",
            at=datetime.now(UTC) + timedelta(hours=1),
            callback="http://127.0.0.1:9000/hook",
            payload={"task": "report", "to": "team@example.com"},
        )
        print(f"created {daily.name} ({daily.id}): next run {daily.next_run}")
        print(f"created {once.name} ({once.id}): runs at {once.next_run}")

        listed = client.cues.list()
        print(f"{listed.total} cues: " + ", ".join(f"{c.name} [{c.status}]" for c in listed.cues))

        paused = client.cues.pause(daily.id)
        print(f"paused {paused.name}: status={paused.status} next_run={paused.next_run}")

        for cue in (daily, once):
            client.cues.delete(cue.id)
        print(f"deleted both; {client.cues.list().total} cues left")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(*sys.argv[1:]))
