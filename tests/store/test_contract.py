"""The store contract (`cueapi_lite.store.contract`): every backend must pass these.

Only the contract's methods are used: no SQL. Each state transition is checked, each
compare-and-set is raced, and orderings and pages are checked at their edges.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from cueapi_lite.models import (
    DEFAULT_ALERTS,
    DEFAULT_DELIVERY,
    DEFAULT_ON_FAILURE,
    DEFAULT_RETRY,
    Alert,
    Callback,
    Cue,
    Execution,
    Outcome,
    Schedule,
    Verification,
    new_cue_id,
    new_execution,
)
from cueapi_lite.services.accounts import revoke_key
from cueapi_lite.store import (
    AlertFilters,
    AttemptResult,
    CueAfterRun,
    CueLimitReached,
    Deadline,
    DuplicateName,
    ExecutionFilters,
    FirePlan,
    KeyLimitReached,
    LastActiveKey,
    Store,
    StoreUnavailable,
    Tx,
    store_for,
)
from cueapi_lite.store.postgres.migrations import MIGRATIONS as PG_MIGRATIONS
from cueapi_lite.store.sqlite.migrations import MIGRATIONS

T = TypeVar("T")
HOUR_MS = 3_600_000


async def tx(store: Store, work: Callable[[Tx], T]) -> T:
    return await store.transact(work)


async def user(store: Store, email: str = "a@example.com") -> str:
    created = await store.users.create(email, "whsec_x", 0)
    assert created is not None
    return created.id


def cue(user_id: str, name: str = "c", **changes: Any) -> Cue:
    base = Cue(
        id=new_cue_id(), user_id=user_id, name=name, description=None, status="active",
        transport="webhook", schedule=Schedule("recurring", "0 * * * *", None, "UTC"),
        callback=Callback("http://127.0.0.1:9/h"), payload={"task": "t"},
        retry=DEFAULT_RETRY,
        on_failure=DEFAULT_ON_FAILURE,
        delivery=DEFAULT_DELIVERY,
        alerts=DEFAULT_ALERTS,
        catch_up="run_once_if_missed",
        verification=Verification(),
        next_fire_at_ms=HOUR_MS, last_run_ms=None, run_count=0, fired_count=0, warning=None,
        created_at_ms=0, updated_at_ms=0, watch_from_ms=None,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


async def stored_cue(store: Store, user_id: str, **changes: Any) -> Cue:
    made = cue(user_id, **changes)
    assert await tx(store, lambda t: t.insert_cue(made, None))
    return made


async def execution(
    store: Store, c: Cue, at_ms: int = HOUR_MS, by: str = "schedule", **changes: Any
) -> Execution:
    made = dataclasses.replace(new_execution(c, at_ms, by, at_ms), **changes)
    assert await tx(store, lambda t: t.insert_executions([made])) == [made]
    return made


# --- migrations ---------------------------------------------------------------------


async def test_every_migration_is_recorded_once_in_order(db_setting: str, backend: str) -> None:
    expected = PG_MIGRATIONS if backend == "postgresql" else MIGRATIONS
    for _ in range(2):  # a second open applies nothing again
        opened = store_for(db_setting)
        opened.open()
        try:
            assert opened.migrations() == [name for name, _sql in expected]
        finally:
            opened.close()


async def test_a_database_a_newer_version_migrated_is_refused_and_kept(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = PG_MIGRATIONS if backend == "postgresql" else MIGRATIONS
    # A database of its own: the newer migration stays in it (the shared test database
    # on PostgreSQL is only emptied between tests).
    if backend == "postgresql":
        db_setting = request.getfixturevalue("pg_databases").cluster.create_database("newer")
    else:
        db_setting = str(tmp_path / "newer.db")
    newer = store_for(db_setting)
    newer.open()
    try:
        user = await newer.users.create("kept@example.com", "whsec_kept", 1_000)
        assert user is not None
    finally:
        newer.close()
    # The newer version knows one more migration, and applies it.
    future = ("9999_from_a_newer_version", "CREATE TABLE future_feature (x INTEGER)")
    extended = [*known, future]
    module = "postgres" if backend == "postgresql" else "sqlite"
    monkeypatch.setattr(f"cueapi_lite.store.{module}.migrations.MIGRATIONS", extended)
    newer = store_for(db_setting)
    newer.open()
    newer.close()
    monkeypatch.undo()
    older = store_for(db_setting)
    with pytest.raises(StoreUnavailable, match="written by a newer cueapi-lite") as refused:
        older.open()
    assert "9999_from_a_newer_version" in str(refused.value)
    # Refusing wrote nothing: the newer version opens it as it left it.
    monkeypatch.setattr(f"cueapi_lite.store.{module}.migrations.MIGRATIONS", extended)
    again = store_for(db_setting)
    again.open()
    try:
        assert again.migrations()[-1] == "9999_from_a_newer_version"
        assert await again.users.by_email("kept@example.com") == user
    finally:
        again.close()


# --- cues ---------------------------------------------------------------------------


async def test_a_cue_name_is_unique_per_user(store: Store) -> None:
    alice, bob = await user(store), await user(store, "b@example.com")
    await stored_cue(store, alice, name="same")
    assert not await tx(store, lambda t: t.insert_cue(cue(alice, name="same"), None))
    assert await tx(store, lambda t: t.insert_cue(cue(bob, name="same"), None))
    other = await stored_cue(store, alice, name="other")
    with pytest.raises(DuplicateName):
        await tx(store, lambda t: t.update_cue(dataclasses.replace(other, name="same")))
    assert (await store.cues.get(alice, other.id)).name == "other"  # type: ignore[union-attr]


async def test_a_cue_id_already_taken_is_an_error_not_a_name_conflict(store: Store) -> None:
    alice = await user(store)
    first = await stored_cue(store, alice, name="first")
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        await tx(store, lambda t: t.insert_cue(cue(alice, name="second", id=first.id), None))
    assert (await store.cues.get(alice, first.id)) == first
    assert await tx(store, lambda t: t.insert_cue(cue(alice, name="second"), None))


async def test_the_cue_limit_counts_active_and_paused_cues_and_writes_nothing(
    store: Store,
) -> None:
    alice = await user(store)
    await stored_cue(store, alice, name="a")
    await stored_cue(store, alice, name="p", status="paused")
    await stored_cue(store, alice, name="done", status="completed")
    with pytest.raises(CueLimitReached) as raised:
        await tx(store, lambda t: t.insert_cue(cue(alice, name="x"), 2))
    assert raised.value.counted == 2
    assert (await store.cues.page(alice, None, 10, 0))[1] == 3


async def test_concurrent_creates_cannot_pass_the_cue_limit_together(store: Store) -> None:
    alice = await user(store)
    results = await asyncio.gather(
        *(tx(store, lambda t, n=n: t.insert_cue(cue(alice, name=f"c{n}"), 5)) for n in range(12)),
        return_exceptions=True,
    )
    assert sum(1 for r in results if r is True) == 5
    assert all(isinstance(r, CueLimitReached) for r in results if r is not True)


async def test_cue_pages_are_newest_first_with_the_total(store: Store) -> None:
    alice = await user(store)
    made = [await stored_cue(store, alice, name=f"c{n}", created_at_ms=n) for n in range(5)]
    page, total = await store.cues.page(alice, None, 2, 1)
    assert total == 5
    assert [c.id for c in page] == [made[3].id, made[2].id]
    paused, count = await store.cues.page(alice, "paused", 10, 0)
    assert (paused, count) == ([], 0)


async def test_cues_read_back_exactly_as_written_by_every_read(store: Store) -> None:
    # Texts JSON and SQL treat specially (PostgreSQL stores no NUL in text; the API takes
    # none), numbers past a double's exact range, and cues made in the same millisecond
    # (a page orders those newest insert first).
    alice = await user(store)
    odd = 'quote " backslash \\ tab \t newline \n separator \u2028 emoji 😀 é'
    payload = {
        "text": odd,
        "big": 2**62 + 1,
        "negative": -(2**53) - 3,
        "real": 0.1,
        "nested": [None, True, {"é": []}],
    }
    callback = Callback("http://127.0.0.1:9/h", headers={"X-Odd": odd})
    made = [
        await stored_cue(
            store,
            alice,
            name=f"{odd} {n}",
            description=odd,
            created_at_ms=7,
            payload=payload,
            callback=callback,
        )
        for n in range(3)
    ]
    by_id = {c.id: c for c in await store.cues.get_many([c.id for c in made] + ["cue_none"])}
    assert by_id == {c.id: c for c in made}
    page, total = await store.cues.page(alice, None, 10, 0)
    assert (page, total) == (made[::-1], 3)
    assert await store.cues.get(alice, made[1].id) == made[1]


async def test_another_users_cue_is_invisible(store: Store) -> None:
    alice, bob = await user(store), await user(store, "b@example.com")
    made = await stored_cue(store, alice)
    assert await store.cues.get(bob, made.id) is None
    assert await tx(store, lambda t: t.cue(made.id, bob)) is None
    assert not await store.cues.delete(bob, made.id)


async def test_deleting_a_cue_deletes_its_executions(store: Store) -> None:
    alice = await user(store)
    made = await stored_cue(store, alice)
    run = await execution(store, made)
    assert await store.cues.delete(alice, made.id)
    assert await store.executions.get_any(run.id) is None
    assert not await store.cues.delete(alice, made.id)


async def test_a_fire_applies_only_while_the_cue_is_active_and_due(store: Store) -> None:
    alice = await user(store)
    made = await stored_cue(store, alice)
    stale = FirePlan(made.id, HOUR_MS - 1, 2 * HOUR_MS, [])
    assert not await tx(store, lambda t: t.apply_fire(stale, 0, 5))
    plan = FirePlan(made.id, HOUR_MS, 2 * HOUR_MS, [])
    assert await tx(store, lambda t: t.apply_fire(plan, 1, 5))
    assert not await tx(store, lambda t: t.apply_fire(plan, 1, 5))  # fired already
    after = await store.cues.get(alice, made.id)
    assert after is not None
    assert (after.next_fire_at_ms, after.fired_count) == (2 * HOUR_MS, 1)
    assert await store.cues.fires_from(0, 10) == [(made.id, 2 * HOUR_MS)]


async def test_next_fires_are_read_from_an_instant_on_earliest_first(store: Store) -> None:
    alice = await user(store)
    at = [3, 1, 2, 2, 5]
    made = [
        await stored_cue(store, alice, name=f"c{n}", next_fire_at_ms=due * HOUR_MS)
        for n, due in enumerate(at)
    ]
    await stored_cue(store, alice, name="paused", status="paused", next_fire_at_ms=HOUR_MS)
    await stored_cue(store, alice, name="done", status="completed", next_fire_at_ms=None)
    fires = await store.cues.fires_from(2 * HOUR_MS, 10)
    assert [due for _id, due in fires] == [2 * HOUR_MS, 2 * HOUR_MS, 3 * HOUR_MS, 5 * HOUR_MS]
    assert {cue_id for cue_id, _due in fires[:2]} == {made[2].id, made[3].id}
    first, second = await store.cues.fires_from(0, 2)
    assert first == (made[1].id, HOUR_MS)
    assert second in fires[:2]
    assert await store.cues.fires_from(5 * HOUR_MS + 1, 10) == []


async def test_fires_apply_together_and_only_where_each_compare_and_set_holds(
    store: Store,
) -> None:
    alice = await user(store)
    made = [await stored_cue(store, alice, name=f"c{n}") for n in range(4)]
    # Two `once` cues done (no next fire, a new status), one recurring, one already moved
    # on (its expected instant is stale): the others apply, that one writes nothing.
    fires = [
        (FirePlan(made[0].id, HOUR_MS, None, [], new_status="completed"), 1),
        (FirePlan(made[1].id, HOUR_MS, 2 * HOUR_MS, []), 2),
        (FirePlan(made[2].id, HOUR_MS - 1, 2 * HOUR_MS, []), 1),
        (FirePlan(made[3].id, HOUR_MS, None, [], new_status="completed"), 1),
    ]
    assert await tx(store, lambda t: t.apply_fires(fires, 5)) == [True, True, False, True]
    after = [await store.cues.get(alice, cue.id) for cue in made]
    assert [(c.status, c.next_fire_at_ms, c.fired_count) for c in after if c] == [
        ("completed", None, 1), ("active", 2 * HOUR_MS, 2),
        ("active", HOUR_MS, 0), ("completed", None, 1),
    ]  # fmt: skip
    assert await tx(store, lambda t: t.apply_fires(fires[:2], 6)) == [False, False]
    # All due, every plan without a next fire or a status: one statement applies them.
    rest = [await stored_cue(store, alice, name=f"d{n}") for n in range(3)]
    same = [(FirePlan(cue.id, HOUR_MS, None, []), 1) for cue in rest]
    assert await tx(store, lambda t: t.apply_fires(same, 7)) == [True] * 3
    assert {c.next_fire_at_ms for c in [await store.cues.get(alice, r.id) for r in rest] if c} == {
        None
    }


async def test_of_many_concurrent_fires_of_one_occurrence_one_applies(store: Store) -> None:
    alice = await user(store)
    made = await stored_cue(store, alice)
    plan = FirePlan(made.id, HOUR_MS, 2 * HOUR_MS, [])
    won = await asyncio.gather(*(tx(store, lambda t: t.apply_fire(plan, 1, 5)) for _ in range(20)))
    assert won.count(True) == 1


async def test_a_paused_cue_does_not_fire_and_is_not_scheduled(store: Store) -> None:
    alice = await user(store)
    made = await stored_cue(store, alice)
    assert await tx(store, lambda t: t.set_cue_status(made.id, "active", "paused", 1, True))
    assert not await tx(store, lambda t: t.set_cue_status(made.id, "active", "paused", 1, True))
    plan = FirePlan(made.id, HOUR_MS, 2 * HOUR_MS, [])
    assert not await tx(store, lambda t: t.apply_fire(plan, 1, 5))
    assert await store.cues.fires_from(0, 10) == []


async def test_count_run_writes_what_the_rule_decided(store: Store) -> None:
    alice = await user(store)
    made = await stored_cue(store, alice)
    change = CueAfterRun(
        last_run_ms=HOUR_MS, watch_from_ms=7, status="paused", next_fire_at_ms=None
    )
    await tx(store, lambda t: t.count_run(made.id, change, 9))
    after = await tx(store, lambda t: t.cue(made.id))
    assert after is not None
    assert (after.run_count, after.last_run_ms, after.watch_from_ms, after.status) == (
        1, HOUR_MS, 7, "paused",
    )  # fmt: skip
    assert after.next_fire_at_ms is None


async def test_runs_of_many_cues_are_counted_together(store: Store) -> None:
    alice = await user(store)
    made = [await stored_cue(store, alice, name=f"c{n}") for n in range(3)]
    changes = [
        (made[0].id, CueAfterRun(HOUR_MS, 7, "completed", None)),
        (made[2].id, CueAfterRun(2 * HOUR_MS, 8, "active", 3 * HOUR_MS)),
    ]
    await tx(store, lambda t: t.count_runs(changes, 9))
    after = [await tx(store, lambda t, c=c: t.cue(c.id)) for c in made]
    assert [(c.run_count, c.last_run_ms, c.watch_from_ms, c.status, c.next_fire_at_ms)
            for c in after if c] == [
        (1, HOUR_MS, 7, "completed", None), (0, None, None, "active", HOUR_MS),
        (1, 2 * HOUR_MS, 8, "active", 3 * HOUR_MS),
    ]  # fmt: skip


async def test_delivered_attempts_finish_together_or_not_at_all(store: Store) -> None:
    alice = await user(store)
    one, two = await stored_cue(store, alice, name="one"), await stored_cue(store, alice)
    runs = [await execution(store, one), await execution(store, two, by="manual_fire")]
    assert await store.executions.begin_attempts([r.id for r in runs], 5) == [1, 1]
    results = [
        AttemptResult(runs[0].id, 1, True, 200, None, "{}", outcome_deadline_ms=60_000),
        AttemptResult(runs[1].id, 1, True, 204, "no body", None),
    ]
    stale = [results[0], dataclasses.replace(results[1], attempt=2)]  # not its attempt
    assert await tx(store, lambda t: t.finish_delivered(stale, 6)) is None
    untouched = await store.executions.get_any(runs[0].id)
    assert untouched is not None
    assert untouched.status == "delivering"  # nothing written
    found = await tx(store, lambda t: t.finish_delivered(results, 7))
    assert found is not None
    assert [(ref.id, ref.cue_id, ref.triggered_by, ref.scheduled_for_ms) for ref, _ in found] == [
        (runs[0].id, one.id, "schedule", HOUR_MS), (runs[1].id, two.id, "manual_fire", HOUR_MS),
    ]  # fmt: skip
    assert [(cue.id, cue.status) for _, cue in found if cue] == [
        (one.id, "active"), (two.id, "active"),
    ]  # fmt: skip
    done = [await store.executions.get_any(r.id) for r in runs]
    assert [(e.status, e.http_status, e.error_message, e.delivered_at_ms, e.outcome_deadline_ms)
            for e in done if e] == [
        ("success", 200, None, 7, 60_000), ("success", 204, "no body", 7, None),
    ]  # fmt: skip
    assert await tx(store, lambda t: t.finish_delivered(results, 8)) is None  # finished
    # A cue deleted while its attempt was out: the attempt's row went with it.
    third = await execution(store, one, at_ms=2 * HOUR_MS)
    assert await store.executions.begin_attempt(third.id, 9) == 1
    assert await store.cues.delete(alice, one.id)
    gone = [AttemptResult(third.id, 1, True, 200, None, None)]
    assert await tx(store, lambda t: t.finish_delivered(gone, 10)) is None


async def test_a_new_window_starts_only_from_the_expected_one(store: Store) -> None:
    alice = await user(store)
    made = await stored_cue(store, alice, watch_from_ms=100)
    assert not await tx(store, lambda t: t.restart_watch(made.id, 99, 500))
    assert await tx(store, lambda t: t.restart_watch(made.id, 100, 500))
    assert not await tx(store, lambda t: t.restart_watch(made.id, 100, 600))
    unwatched = await stored_cue(store, alice, name="n", watch_from_ms=None)
    assert await tx(store, lambda t: t.restart_watch(unwatched.id, None, 500))


# --- executions ---------------------------------------------------------------------


async def test_a_scheduled_occurrence_is_inserted_once(store: Store) -> None:
    alice = await user(store)
    made = await stored_cue(store, alice)
    first = new_execution(made, HOUR_MS, "schedule", 1)
    again = new_execution(made, HOUR_MS, "schedule", 2)
    manual = new_execution(made, HOUR_MS, "manual_fire", 3)
    assert await tx(store, lambda t: t.insert_executions([first])) == [first]
    assert await tx(store, lambda t: t.insert_executions([again, manual])) == [manual]
    assert (await store.executions.page(alice, ExecutionFilters(), 10, 0))[1] == 2


async def test_execution_pages_are_newest_occurrence_first_and_filtered(store: Store) -> None:
    alice = await user(store)
    made = await stored_cue(store, alice)
    runs = [await execution(store, made, at_ms=HOUR_MS * n) for n in range(1, 6)]
    page, total = await store.executions.page(alice, ExecutionFilters(cue_id=made.id), 2, 2)
    assert total == 5
    assert [e.id for e in page] == [runs[2].id, runs[1].id]
    none, zero = await store.executions.page(alice, ExecutionFilters(status="success"), 10, 0)
    assert (none, zero) == ([], 0)


async def test_paging_through_a_history_stays_exact_while_executions_come_and_go(
    store: Store,
) -> None:
    alice = await user(store)
    made, other = await stored_cue(store, alice), await stored_cue(store, alice, name="other")
    runs = [await execution(store, made, at_ms=HOUR_MS * n) for n in range(1, 31)]
    newest_first = [run.id for run in reversed(runs)]

    everything = ExecutionFilters()

    async def ids(offset: int, filters: ExecutionFilters = everything) -> list[str]:
        return [e.id for e in (await store.executions.page(alice, filters, 10, offset))[0]]

    async def walk(filters: ExecutionFilters = everything) -> list[str]:
        return [*await ids(0, filters), *await ids(10, filters), *await ids(20, filters)]

    by_cue = ExecutionFilters(cue_id=made.id)
    for filters in (everything, by_cue):  # page by page, as a client walks them
        assert await walk(filters) == newest_first
    # A newer occurrence moves every later page down by one: the pages' remembered ends
    # must not serve the old positions.
    newer = await execution(store, made, at_ms=HOUR_MS * 40)
    assert await ids(10) == newest_first[9:19]
    assert await ids(20, by_cue) == newest_first[19:29]
    # Rows deleted from the middle (another cue's, with it): the pages close up.
    between = [await execution(store, other, at_ms=HOUR_MS * n + 1) for n in (5, 15, 25)]
    assert len(await walk()) == 30
    assert await store.cues.delete(alice, other.id)
    assert await walk() == [newer.id, *newest_first[:29]]
    assert between[0].id not in await walk()


async def test_of_many_concurrent_attempts_exactly_one_begins(store: Store) -> None:
    alice = await user(store)
    run = await execution(store, await stored_cue(store, alice))
    results = await asyncio.gather(*(store.executions.begin_attempt(run.id, 5) for _ in range(20)))
    assert sorted(results, key=lambda r: r or 0) == [None] * 19 + [1]


async def test_attempts_begin_together_each_once(store: Store) -> None:
    alice = await user(store)
    made = await stored_cue(store, alice)
    first, second = [await execution(store, made, at_ms=HOUR_MS * n) for n in (1, 2)]
    asked = [first.id, second.id, first.id, "gone"]
    assert await store.executions.begin_attempts(asked, 5) == [1, 1, None, None]
    assert await store.executions.begin_attempts([second.id], 6) == [None]  # delivering
    begun = await store.executions.get_any(first.id)
    assert begun is not None
    assert (begun.status, begun.attempts, begun.last_attempt_at_ms) == ("delivering", 1, 5)


async def test_an_attempt_finishes_once_and_only_as_the_current_attempt(store: Store) -> None:
    alice = await user(store)
    run = await execution(store, await stored_cue(store, alice))
    assert await store.executions.begin_attempt(run.id, 5) == 1
    wrong = AttemptResult(run.id, 2, True, 200, None, None)
    assert await tx(store, lambda t: t.finish_attempt(wrong, "success", 6)) is None
    right = AttemptResult(run.id, 1, False, 500, "boom", "body", retry_at_ms=60_000)
    ref = await tx(store, lambda t: t.finish_attempt(right, "retrying", 6))
    assert ref is not None
    assert (ref.id, ref.cue_id, ref.triggered_by) == (run.id, run.cue_id, "schedule")
    assert await tx(store, lambda t: t.finish_attempt(right, "retrying", 6)) is None
    after = await store.executions.get_any(run.id)
    assert after is not None
    assert (after.status, after.http_status, after.next_retry_ms) == ("retrying", 500, 60_000)
    assert await store.executions.begin_attempt(run.id, 7) == 2


async def test_an_outcome_is_written_once_unless_it_is_unknown(store: Store) -> None:
    alice = await user(store)
    run = await execution(store, await stored_cue(store, alice))
    first, second = (
        Outcome(success=True, recorded_at_ms=1),
        Outcome(success=False, recorded_at_ms=2),
    )
    assert await tx(store, lambda t: t.write_outcome(run.id, first, "reported_success", 1))
    assert not await tx(store, lambda t: t.write_outcome(run.id, second, "reported_failure", 2))
    late = await execution(store, await stored_cue(store, alice, name="late"))
    await tx(store, lambda t: t.set_outcome_deadline(late.id, 10))
    assert await tx(store, lambda t: t.expire_outcome(late.id, 10, 11)) == late.cue_id
    assert await tx(store, lambda t: t.write_outcome(late.id, second, "reported_failure", 12))


async def test_an_outcome_deadline_expires_only_as_set_and_when_passed(store: Store) -> None:
    alice = await user(store)
    run = await execution(store, await stored_cue(store, alice))
    assert await tx(store, lambda t: t.set_outcome_deadline(run.id, 100))
    assert await tx(store, lambda t: t.expire_outcome(run.id, 100, 99)) is None  # not yet
    assert await tx(store, lambda t: t.expire_outcome(run.id, 90, 200)) is None  # moved
    assert await store.outcomes.open_deadlines() == [(run.id, 100)]
    assert await tx(store, lambda t: t.expire_outcome(run.id, 100, 200)) == run.cue_id
    assert await tx(store, lambda t: t.expire_outcome(run.id, 100, 200)) is None
    assert await store.outcomes.open_deadlines() == []


async def test_verification_moves_only_from_the_given_states(store: Store) -> None:
    alice = await user(store)
    run = await execution(store, await stored_cue(store, alice))
    states = ("reported_success", "reported_failure", "verification_pending")
    assert (
        await tx(store, lambda t: t.verify_outcome(run.id, "verified_success", None, 1, states))
        is None
    )
    assert not await tx(store, lambda t: t.mark_verification_pending(run.id, 1))
    outcome = Outcome(success=True, recorded_at_ms=1)
    await tx(store, lambda t: t.write_outcome(run.id, outcome, "reported_success", 1))
    assert await tx(store, lambda t: t.mark_verification_pending(run.id, 2))
    verified = await tx(
        store, lambda t: t.verify_outcome(run.id, "verification_failed", "no", 3, states)
    )
    assert verified is not None
    assert (verified.outcome_state, verified.verification_reason) == ("verification_failed", "no")
    assert (
        await tx(store, lambda t: t.verify_outcome(run.id, "verified_success", None, 4, states))
        is None
    )


async def test_ending_an_execution_requires_one_of_the_given_statuses(store: Store) -> None:
    alice = await user(store)
    run = await execution(store, await stored_cue(store, alice))
    assert not await tx(
        store, lambda t: t.end_execution(run.id, "success", None, 5, ["delivering"])
    )
    assert await tx(store, lambda t: t.end_execution(run.id, "failed", "bad", 5, ["pending"]))
    after = await store.executions.get_any(run.id)
    assert after is not None
    assert (after.status, after.error_message, after.delivered_at_ms) == ("failed", "bad", 5)


async def test_latest_finished_is_newest_first_and_filtered_by_status(store: Store) -> None:
    alice = await user(store)
    made = await stored_cue(store, alice)
    one = await execution(store, made, at_ms=1, status="failed")
    two = await execution(store, made, at_ms=2, status="success")
    await execution(store, made, at_ms=3, status="pending")
    three = await execution(store, made, at_ms=4, status="failed")
    latest = await tx(store, lambda t: t.latest_finished(made.id, ["success", "failed"], 5))
    assert latest == [
        (three.id, "failed", None),
        (two.id, "success", None),
        (one.id, "failed", None),
    ]
    assert len(await tx(store, lambda t: t.latest_finished(made.id, ["failed"], 1))) == 1


# --- worker claims and leases --------------------------------------------------------


async def test_of_fifty_concurrent_claims_exactly_one_wins(store: Store) -> None:
    alice = await user(store)
    run = await execution(
        store, await stored_cue(store, alice, transport="worker"), transport="worker"
    )
    results = await asyncio.gather(
        *(tx(store, lambda t, n=n: t.claim(alice, run.id, f"w{n}", 5, 100)) for n in range(50))
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert (winners[0].status, winners[0].attempts, winners[0].lease_expires_at_ms) == (
        "delivering", 1, 100,
    )  # fmt: skip


async def test_only_the_owners_pending_worker_executions_are_claimable(store: Store) -> None:
    alice, bob = await user(store), await user(store, "b@example.com")
    webhook = await execution(store, await stored_cue(store, alice))
    assert await tx(store, lambda t: t.claim(alice, webhook.id, "w", 5, 100)) is None
    worker_cue = await stored_cue(store, alice, name="w", transport="worker")
    run = await execution(store, worker_cue, transport="worker")
    assert await tx(store, lambda t: t.claim(bob, run.id, "w", 5, 100)) is None
    assert await tx(store, lambda t: t.claim(alice, "nope", "w", 5, 100)) is None


async def test_claim_next_takes_the_oldest_due_matching_execution(store: Store) -> None:
    alice = await user(store)
    worker_cue = await stored_cue(store, alice, transport="worker")
    late = await execution(store, worker_cue, at_ms=20, transport="worker", payload={"task": "a"})
    early = await execution(store, worker_cue, at_ms=10, transport="worker", payload={"task": "b"})
    await execution(store, worker_cue, at_ms=99, transport="worker", payload={"task": "a"})
    assert await tx(store, lambda t: t.next_claimable(alice, 50, None, None)) == early.id
    assert await tx(store, lambda t: t.next_claimable(alice, 50, "a", None)) == late.id
    assert await tx(store, lambda t: t.next_claimable(alice, 50, "c", None)) is None
    listed = await store.claims.claimable(alice, 50, None, None)
    assert [c.execution_id for c in listed] == [early.id, late.id]


async def test_a_lease_is_extended_only_under_a_claim(store: Store) -> None:
    alice = await user(store)
    run = await execution(
        store, await stored_cue(store, alice, transport="worker"), transport="worker"
    )
    assert await tx(store, lambda t: t.extend_lease(run.id, 5, 500)) is None
    await tx(store, lambda t: t.claim(alice, run.id, "w", 5, 100))
    extended = await tx(store, lambda t: t.extend_lease(run.id, 6, 600))
    assert extended is not None
    assert (extended.lease_expires_at_ms, extended.last_heartbeat_at_ms) == (600, 6)
    assert await store.claims.claimed() == [(run.id, 600)]


async def test_a_lease_expires_only_for_that_claim_passed_and_silent(store: Store) -> None:
    alice = await user(store)
    run = await execution(
        store, await stored_cue(store, alice, transport="worker"), transport="worker"
    )
    claimed = await tx(store, lambda t: t.claim(alice, run.id, "w", 5, 100))
    assert claimed is not None
    assert not await tx(store, lambda t: t.expire_lease(claimed, "pending", 99, 0))  # not passed
    await store.workers.heartbeat(alice, "w", None, 150)
    assert not await tx(store, lambda t: t.expire_lease(claimed, "pending", 200, 100))  # alive
    moved = dataclasses.replace(claimed, lease_expires_at_ms=90)
    assert not await tx(store, lambda t: t.expire_lease(moved, "pending", 200, 160))
    assert await tx(store, lambda t: t.expire_lease(claimed, "pending", 200, 160))
    assert not await tx(store, lambda t: t.expire_lease(claimed, "pending", 200, 160))
    after = await store.executions.get_any(run.id)
    assert after is not None
    assert (after.status, after.claimed_by_worker, after.error_message) == (
        "pending", None, "lease expired",
    )  # fmt: skip


async def test_unclaimed_work_expires_only_if_unchanged_since(store: Store) -> None:
    alice = await user(store)
    worker_cue = await stored_cue(store, alice, transport="worker")
    run = await execution(store, worker_cue, transport="worker", updated_at_ms=50)
    assert await store.claims.unclaimed() == [(run.id, 50)]
    assert await tx(store, lambda t: t.expire_unclaimed(run.id, 100, 49)) is None
    ref = await tx(store, lambda t: t.expire_unclaimed(run.id, 100, 50))
    assert ref is not None
    assert ref.cue_id == worker_cue.id
    after = await store.executions.get_any(run.id)
    assert after is not None
    assert (after.status, after.missed_reason) == ("missed", "unclaimed")


# --- alerts -------------------------------------------------------------------------


async def test_alerts_are_listed_newest_first_and_their_outbox_is_due_in_order(
    store: Store,
) -> None:
    alice = await user(store)
    made = await stored_cue(store, alice)

    def alert(n: int, alert_type: str = "outcome_timeout") -> Alert:
        return Alert(f"al{n}", alice, made.id, None, alert_type, "warning", "m", {"n": n}, None, n)

    for n in (10, 30, 20):
        await tx(store, lambda t, n=n: t.insert_alert(alert(n), [("email", "a@example.com")]))
    assert not await tx(store, lambda t: t.alerted_since(made.id, "outcome_timeout", 30))
    assert await tx(store, lambda t: t.alerted_since(made.id, "outcome_timeout", 29))
    assert not await tx(store, lambda t: t.alerted_since(made.id, "missed_window", 0))
    page, total = await store.alerts.page(alice, AlertFilters(), 2, 0)
    assert (total, [a.id for a in page]) == (3, ["al30", "al20"])
    due = await store.alerts.outbox_due(25, 10)
    assert [item.alert.id for item in due] == ["al10", "al20"]
    assert await store.alerts.outbox_due(25, 10) == []  # taken: not sent twice
    assert await store.alerts.next_outbox_ms() == 30
    await store.alerts.outbox_done(due[0].id, "pending", "down", 1000, 25)
    await store.alerts.outbox_done(due[1].id, "sent", None, None, 25)
    assert [i.alert.id for i in await store.alerts.outbox_due(999, 10)] == ["al30"]
    [row] = await store.alerts.outbox_of("al10")
    assert (row["status"], row["attempts"], row["last_error"]) == ("pending", 1, "down")
    acknowledged = await store.alerts.acknowledge(alice, "al10", 50)
    assert acknowledged is not None
    again = await store.alerts.acknowledge(alice, "al10", 60)
    assert again is not None
    assert again.acknowledged_at_ms == 50  # the first acknowledgement stays


# --- transactions -------------------------------------------------------------------


async def test_a_failed_transaction_writes_nothing_and_publishes_nothing(store: Store) -> None:
    published: list[Deadline] = []
    store.on_commit(published.extend)
    alice = await user(store)

    def work(t: Tx) -> None:
        t.insert_cue(cue(alice, name="ghost"), None)
        t.after_commit(Deadline("fire", "ghost", 1))
        raise RuntimeError("the rule failed")

    with pytest.raises(RuntimeError):
        await tx(store, work)
    assert published == []
    assert (await store.cues.page(alice, None, 10, 0))[1] == 0

    def ok(t: Tx) -> str:
        t.after_commit(Deadline("fire", "real", 2))
        return "done"

    assert await tx(store, ok) == "done"
    assert published == [Deadline("fire", "real", 2)]


# --- keys, tokens and device codes ---------------------------------------------------


async def test_the_active_key_limit_and_revoking_keys(store: Store) -> None:
    alice = await user(store)
    first = await store.users.add_key(alice, "cue_sk_" + "1" * 32, "h1", "one", 1, 2)
    await store.users.add_key(alice, "cue_sk_" + "2" * 32, "h2", "two", 2, 2)
    with pytest.raises(KeyLimitReached):
        await store.users.add_key(alice, "cue_sk_" + "3" * 32, "h3", "three", 3, 2)
    assert await tx(store, lambda t: t.active_keys(alice)) == 2
    revoked = await tx(store, lambda t: t.revoke_key(first, 4))
    assert revoked is not None
    assert (revoked.status, revoked.revoked_at_ms) == ("revoked", 4)
    assert await tx(store, lambda t: t.revoke_key(first, 5)) is None  # not active any more
    assert await tx(store, lambda t: t.active_keys(alice)) == 1
    await tx(store, lambda t: t.purge_revoked_keys(5))
    assert await tx(store, lambda t: t.key(alice, first)) is None
    [last] = await store.users.keys(alice, 0)
    with pytest.raises(LastActiveKey):
        await tx(store, lambda t: revoke_key(t, alice, last.id, 6, 0))
    assert (await store.users.key(alice, last.id)).status == "active"  # type: ignore[union-attr]


async def test_of_two_concurrent_rotations_one_wins(store: Store) -> None:
    alice = await user(store)
    key_id = await store.users.add_key(alice, "cue_sk_" + "1" * 32, "h1", "one", 1)
    results = await asyncio.gather(
        store.users.rotate_key(alice, key_id, "cue_sk_" + "2" * 32, "h2", 2, 0),
        store.users.rotate_key(alice, key_id, "cue_sk_" + "3" * 32, "h3", 2, 0),
    )
    assert sum(r is not None for r in results) == 1
    match = await store.users.by_key_hash("h1")
    assert match is not None
    assert match.status == "rotated"


async def test_a_login_token_is_redeemed_once(store: Store) -> None:
    alice = await user(store)
    await tx(store, lambda t: t.insert_token("login-h", "login", alice, 1, 100))
    results = await asyncio.gather(
        store.tokens.exchange("login-h", "s1", 2, 50), store.tokens.exchange("login-h", "s2", 2, 50)
    )
    assert sorted(r or "" for r in results) == ["", alice]
    assert await store.tokens.exchange("login-h", "s3", 3, 50) is None


async def test_a_device_code_is_claimed_once(store: Store) -> None:
    alice = await user(store)
    assert await store.devices.create("ABCD-EFGH", "127.0.0.1", 1, 1000, 10) is None
    assert await store.devices.create("ABCD-EFGH", "127.0.0.1", 1, 1000, 10) == "exists"
    assert await tx(store, lambda t: t.claim_device_code("ABCD-EFGH", 2)) is None  # pending
    assert await store.devices.approve("ABCD-EFGH", alice, "cli", 3) is None
    assert await store.devices.approve("ABCD-EFGH", alice, "cli", 3) == "not_pending"
    claims = await asyncio.gather(
        *(tx(store, lambda t: t.claim_device_code("ABCD-EFGH", 4)) for _ in range(10))
    )
    assert claims.count(alice) == 1
    assert await store.devices.approve("WXYZ-WXYZ", alice, "cli", 3) == "missing"


# --- the two schemas ------------------------------------------------------------------


async def test_both_backends_have_the_same_tables_and_columns(
    tmp_path: Any, pg_databases: Any
) -> None:
    import sqlite3

    import psycopg

    from cueapi_lite.store.sqlite import SqliteStore

    lite = SqliteStore(str(tmp_path / "schema.db"))
    lite.open()
    lite.close()
    conn = sqlite3.connect(tmp_path / "schema.db")
    tables = [
        row[0]
        for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if row[0] != "sqlite_sequence"
    ]
    sqlite_schema = {
        table: {row[1] for row in conn.execute(f"PRAGMA table_info({table})")} for table in tables
    }
    conn.close()
    with psycopg.connect(pg_databases.new()) as pg:
        rows = pg.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND column_name != 'rowid'"
        ).fetchall()
    pg_schema: dict[str, set[str]] = {}
    for table, column in rows:
        pg_schema.setdefault(table, set()).add(column)
    assert pg_schema == sqlite_schema
