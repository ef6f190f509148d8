"""The store: group commit, migrations, compare-and-set contracts."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from cueapi_lite.store.sqlite import SqliteStore as Store
from cueapi_lite.store.sqlite.db import Writer, connect
from cueapi_lite.store.sqlite.migrations import MIGRATIONS


@pytest.fixture
async def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = Store(str(tmp_path / "store.db"))
    store.open()
    yield store
    store.close()


def test_in_memory_databases_are_refused() -> None:
    with pytest.raises(ValueError, match="real database file"):
        connect(":memory:")


async def test_database_uses_wal_and_records_its_migrations(store: Store) -> None:
    assert store.db.fetchone("PRAGMA journal_mode")[0] == "wal"  # type: ignore[index]
    names = [row[0] for row in store.db.fetchall("SELECT name FROM migrations ORDER BY name")]
    assert names == [name for name, _ in MIGRATIONS]


async def test_migrations_are_applied_once(tmp_path: Path) -> None:
    path = str(tmp_path / "again.db")
    for _ in range(2):
        store = Store(path)
        store.open()
        store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM migrations").fetchone()[0] == len(MIGRATIONS)


async def test_concurrent_writes_share_transactions(tmp_path: Path) -> None:
    writer = Writer(str(tmp_path / "batch.db"))
    writer.start()
    try:
        await writer.run(lambda c: c.execute("CREATE TABLE t (n INTEGER)"))
        before = writer.batches
        await asyncio.gather(
            *(
                writer.run(lambda c, n=n: c.execute("INSERT INTO t VALUES (?)", (n,)))
                for n in range(500)
            )
        )
        assert writer.batches - before < 500  # group commit: fewer commits than writes
        count = await writer.run(lambda c: c.execute("SELECT COUNT(*) FROM t").fetchone()[0])
        assert count == 500
    finally:
        writer.close()


async def test_a_failing_operation_does_not_undo_its_neighbours(tmp_path: Path) -> None:
    writer = Writer(str(tmp_path / "isolated.db"))
    writer.start()
    try:
        await writer.run(lambda c: c.execute("CREATE TABLE t (n INTEGER UNIQUE)"))

        def insert(n: int):  # type: ignore[no-untyped-def]
            return lambda c: c.execute("INSERT INTO t VALUES (?)", (n,))

        results = await asyncio.gather(
            writer.run(insert(1)), writer.run(insert(1)), writer.run(insert(2)),
            return_exceptions=True,
        )  # fmt: skip
        assert isinstance(results[1], sqlite3.IntegrityError)
        rows = await writer.run(lambda c: [r[0] for r in c.execute("SELECT n FROM t ORDER BY n")])
        assert rows == [1, 2]
    finally:
        writer.close()


async def test_a_failing_operation_alone_in_its_batch_leaves_nothing_written(
    tmp_path: Path,
) -> None:
    writer = Writer(str(tmp_path / "alone.db"))
    writer.start()
    try:
        await writer.run(lambda c: c.execute("CREATE TABLE t (n INTEGER UNIQUE)"))

        def half_done(c: sqlite3.Connection) -> None:
            c.execute("INSERT INTO t VALUES (1)")
            c.execute("INSERT INTO t VALUES (1)")  # fails: the first insert goes too

        with pytest.raises(sqlite3.IntegrityError):
            await writer.run(half_done)
        await writer.run(lambda c: c.execute("INSERT INTO t VALUES (2)"))
        rows = await writer.run(lambda c: [r[0] for r in c.execute("SELECT n FROM t ORDER BY n")])
        assert rows == [2]
    finally:
        writer.close()


class Held:
    """An op that holds the writer thread until released (and says when it started)."""

    def __init__(self, order: list[str], name: str) -> None:
        self.order, self.name = order, name
        self.started, self.release = threading.Event(), threading.Event()

    def __call__(self, conn: sqlite3.Connection) -> None:
        self.started.set()
        assert self.release.wait(5)
        self.order.append(self.name)


def note(order: list[str], name: str):  # type: ignore[no-untyped-def]
    return lambda conn: order.append(name)


async def holding(writer: Writer, order: list[str], name: str) -> tuple[Held, asyncio.Future[None]]:
    """A held op, queued and running on the writer thread (it holds it until released)."""
    held = Held(order, name)
    running = asyncio.ensure_future(writer.run(held))
    await asyncio.to_thread(held.started.wait, 5)
    return held, running


async def test_an_urgent_write_goes_before_the_writes_still_queued(tmp_path: Path) -> None:
    writer = Writer(str(tmp_path / "urgent.db"))
    writer.start()
    order: list[str] = []
    try:
        held, running = await holding(writer, order, "held")
        queued = [asyncio.ensure_future(writer.run(note(order, n))) for n in ("a", "b")]
        await asyncio.sleep(0)  # (the writes are queued when their tasks first run)
        urgent = asyncio.ensure_future(writer.run(note(order, "urgent"), urgent=True))
        await asyncio.sleep(0)
        held.release.set()
        await asyncio.gather(running, *queued, urgent)
    finally:
        writer.close()
    assert order == ["held", "urgent", "a", "b"]


async def test_an_urgent_write_is_committed_without_the_writes_queued_behind_it(
    tmp_path: Path,
) -> None:
    """Its caller is answered while a write queued ahead of it is still unfinished."""
    writer = Writer(str(tmp_path / "alone.db"))
    writer.start()
    order: list[str] = []
    commits: list[int] = []
    writer.on_commit = lambda operations, _seconds: commits.append(operations)
    try:
        first, running = await holding(writer, order, "first")
        slow = Held(order, "slow")
        queued = [asyncio.ensure_future(writer.run(slow))]
        queued += [asyncio.ensure_future(writer.run(note(order, "after")))]
        await asyncio.sleep(0)  # (the writes are queued when their tasks first run)
        urgent = asyncio.ensure_future(writer.run(note(order, "urgent"), urgent=True))
        await asyncio.sleep(0)
        first.release.set()
        await asyncio.wait_for(urgent, 5)  # with `slow` in its batch: never, until released
        assert order == ["first", "urgent"]  # `slow` not finished (it may have begun)
        slow.release.set()
        await asyncio.gather(running, *queued)
    finally:
        writer.close()
    assert order == ["first", "urgent", "slow", "after"]
    assert commits == [1, 1, 2]


async def test_a_batch_is_committed_early_for_an_urgent_write(tmp_path: Path) -> None:
    """An urgent write waits for the op being run, not for the rest of its batch, and the
    ops before it are committed (their callers answered) before it runs."""
    writer = Writer(str(tmp_path / "early.db"))
    writer.start()
    order: list[str] = []
    try:
        await writer.run(lambda c: c.execute("CREATE TABLE t (n TEXT)"))
        first, blocking = await holding(writer, order, "first")
        batched = Held(order, "batched")
        tail = [asyncio.ensure_future(writer.run(batched))]
        tail += [asyncio.ensure_future(writer.run(note(order, "after")))]
        await asyncio.sleep(0)
        first.release.set()  # the next batch: `batched` (held), then `after`
        await asyncio.to_thread(batched.started.wait, 5)
        before = writer.batches

        def urgent_op(conn: sqlite3.Connection) -> int:
            order.append("urgent")
            return writer.batches

        urgent = asyncio.ensure_future(writer.run(urgent_op, urgent=True))
        await asyncio.sleep(0)
        batched.release.set()
        committed_before_urgent = await urgent
        await asyncio.gather(blocking, *tail)
    finally:
        writer.close()
    assert order == ["first", "batched", "urgent", "after"]
    assert committed_before_urgent == before + 1  # `batched` was committed on its own


async def test_a_second_writer_process_can_use_the_same_file(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    one, two = Store(path), Store(path)
    one.open()
    two.open()
    try:
        assert await one.users.create("a@example.com", "whsec_x", 1) is not None
        assert await two.users.create("b@example.com", "whsec_y", 2) is not None
        assert await two.users.create("A@EXAMPLE.COM", "whsec_z", 3) is None  # case-insensitive
        assert await one.users.count() == 2
    finally:
        one.close()
        two.close()


async def test_begin_attempt_is_compare_and_set(store: Store) -> None:
    from cueapi_lite.models import Execution

    user = await store.users.create("cas@example.com", "whsec_x", 0)
    assert user is not None
    store.db.read.execute(
        "INSERT INTO cues (id, user_id, name, status, transport, schedule_type, timezone,"
        " callback, payload, retry, on_failure, delivery, alerts, catch_up, verification,"
        " created_at_ms, updated_at_ms) VALUES ('cue_x', ?, 'n', 'active', 'webhook', 'once',"
        " 'UTC', '{}', '{}', '{}', '{}', '{}', '{}', 'skip_missed', '{}', 0, 0)",
        (user.id,),
    )
    execution = Execution("e1", "cue_x", user.id, 0, "manual_fire", "pending", {})
    assert await store.transact(lambda tx: tx.insert_executions([execution]))
    results = await asyncio.gather(*(store.executions.begin_attempt("e1", 5) for _ in range(20)))
    assert sorted(results, key=lambda r: r or 0) == [None] * 19 + [1]
