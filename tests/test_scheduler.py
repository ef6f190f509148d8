"""The scheduler's heap: batching, stale entries, wake-ups and failing handlers."""

from __future__ import annotations

import asyncio

from cueapi_lite import ManualClock
from cueapi_lite.scheduler import Due, Kind, Scheduler


async def test_tick_runs_everything_due_in_one_batch_per_kind() -> None:
    clock = ManualClock(1_000_000)
    scheduler = Scheduler(clock)
    seen: list[tuple[str, list[Due]]] = []

    async def fire(entries: list[Due], now_ms: int) -> None:
        seen.append(("fire", entries))

    async def retry(entries: list[Due], now_ms: int) -> None:
        seen.append(("retry", entries))

    scheduler.on(Kind.FIRE, fire)
    scheduler.on(Kind.RETRY, retry)
    scheduler.push(1_000_500, Kind.FIRE, "b")
    scheduler.push(1_000_100, Kind.FIRE, "a")
    scheduler.push(1_000_200, Kind.RETRY, "r")
    scheduler.push(1_002_000, Kind.FIRE, "later")
    assert await scheduler.tick(1_000_999) == 3
    assert seen == [("fire", [(1_000_100, "a"), (1_000_500, "b")]), ("retry", [(1_000_200, "r")])]
    assert scheduler.next_due_ms() == 1_002_000


async def test_a_failing_handler_gets_its_entries_back_later() -> None:
    clock = ManualClock(0)
    scheduler = Scheduler(clock)
    calls: list[list[Due]] = []

    async def flaky(entries: list[Due], now_ms: int) -> None:
        calls.append(entries)
        if len(calls) == 1:
            raise OSError("disk full")

    scheduler.on(Kind.FIRE, flaky)
    scheduler.push(0, Kind.FIRE, "x")
    await scheduler.tick(0)
    assert scheduler.next_due_ms() == 1000
    await scheduler.tick(1000)
    assert calls == [[(0, "x")], [(1000, "x")]]
    assert len(scheduler) == 0


async def test_the_loop_wakes_for_an_earlier_deadline_and_when_time_moves() -> None:
    clock = ManualClock(0)
    scheduler = Scheduler(clock)
    ran: list[str] = []
    done = asyncio.Event()

    async def fire(entries: list[Due], now_ms: int) -> None:
        ran.extend(key for _, key in entries)
        done.set()

    scheduler.on(Kind.FIRE, fire)
    scheduler.push(60_000, Kind.FIRE, "late")
    loop = asyncio.create_task(scheduler.run())
    try:
        await asyncio.sleep(0)  # let the loop go to sleep until 60 s
        scheduler.push(0, Kind.FIRE, "now")  # earlier than the current wake-up
        await asyncio.wait_for(done.wait(), 5)
        assert ran == ["now"]
        done.clear()
        clock.advance(60)
        await asyncio.wait_for(done.wait(), 5)
        assert ran == ["now", "late"]
    finally:
        loop.cancel()


async def test_a_host_sleep_and_a_clock_jump_are_told_apart() -> None:
    clock = ManualClock(0)
    scheduler = Scheduler(clock)
    seen: list[tuple[str, int]] = []

    async def changed(reason: str, gap_ms: int, now_ms: int) -> None:
        seen.append((reason, gap_ms))

    scheduler.on_clock_change(changed)
    clock.advance(3600)
    await scheduler.check_clock()
    clock.sleep_host(3 * 86400)
    await scheduler.check_clock()
    clock.jump(-7200)
    await scheduler.check_clock()
    assert seen == [("host_asleep", 3 * 86400 * 1000), ("clock_jump", -7200 * 1000)]


async def test_a_kind_held_to_a_horizon_keeps_only_the_entries_before_it() -> None:
    scheduler = Scheduler(ManualClock(0))
    ran: list[tuple[str, list[Due]]] = []

    async def record(entries: list[Due], _now_ms: int, kind: str) -> None:
        ran.append((kind, entries))

    scheduler.on(Kind.FIRE, lambda entries, now_ms: record(entries, now_ms, "fire"))
    scheduler.on(Kind.RETRY, lambda entries, now_ms: record(entries, now_ms, "retry"))
    scheduler.hold(Kind.FIRE, 1_000)
    scheduler.push(999, Kind.FIRE, "near")
    scheduler.push(1_000, Kind.FIRE, "at the horizon")
    scheduler.push(5_000, Kind.FIRE, "far")
    scheduler.push(5_000, Kind.RETRY, "another kind")
    assert scheduler.horizon(Kind.FIRE) == 1_000
    await scheduler.tick(10_000)
    assert ran == [("fire", [(999, "near")]), ("retry", [(5_000, "another kind")])]
    scheduler.hold(Kind.FIRE, None)  # no horizon: everything is kept again
    scheduler.push(5_000, Kind.FIRE, "far")
    assert len(scheduler) == 1
    scheduler.hold(Kind.FIRE, 1_000)
    scheduler.clear()  # re-planning forgets horizons with the entries
    assert scheduler.horizon(Kind.FIRE) is None
    scheduler.push(5_000, Kind.FIRE, "far")
    assert len(scheduler) == 1
