"""The nodes of a cluster on one PostgreSQL database: leases, takeover, wake-ups.

Each node has a row it renews; lease times are the database's clock (`now_ms()`), so
the hosts' clocks need not agree. Executions carry the node that delivers them
(`owner`); a survivor deletes a node whose lease ran out (one survivor per row) and
adopts the open webhook executions no registered node owns. Fire instants set by one
node reach the others through `NOTIFY` on the commit that set them (`wakeups`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg

from ...models import Execution
from ..records import Deadline, NodeRecord
from ..sqlite.rows import execution_from_row
from .db import PgDatabase

__all__ = ["CHANNEL", "SHARED_KINDS", "PgNodeStore", "inspect", "notifications"]

log = logging.getLogger(__name__)
# The channel every node listens on; a payload is the sending node's id, then one
# deadline a line ("kind key due_ms").
CHANNEL = "cueapi_lite_deadlines"
# The deadlines every node is told of: a cue's next fire. The others (retries, outcome
# deadlines, leases, the outbox) stay with the node that set them; a survivor re-reads
# them all when it takes over a node's work.
SHARED_KINDS = frozenset({"fire"})
# PostgreSQL refuses payloads from 8000 bytes on: larger batches go in several.
PAYLOAD_BYTES = 7000

_ADOPT = (
    "UPDATE executions SET owner = ?,"
    " attempts = CASE WHEN status = 'delivering' AND attempts > 0 THEN attempts - 1"
    " ELSE attempts END,"
    " error_message = CASE WHEN status = 'delivering'"
    " THEN 'attempt interrupted: the node sending it stopped; sending again'"
    " ELSE error_message END,"
    " updated_at_ms = CASE WHEN status = 'delivering' THEN ? ELSE updated_at_ms END,"
    " status = CASE WHEN status = 'delivering' THEN 'pending' ELSE status END"
    " WHERE id IN (SELECT e.id FROM executions e"
    " WHERE e.status IN ('pending', 'delivering', 'retrying') AND e.transport = 'webhook'"
    " AND (e.owner IS NULL OR NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = e.owner))"
    " FOR UPDATE SKIP LOCKED)"
    " RETURNING *"
)


def notifications(node_id: str, deadlines: Sequence[Deadline]) -> list[str]:
    """The payloads that publish `deadlines` (each under PostgreSQL's size limit)."""
    payloads: list[str] = []
    lines: list[str] = []
    size = len(node_id)
    for kind, key, due_ms in deadlines:
        line = f"{kind} {key} {due_ms}"
        if lines and size + len(line) + 1 > PAYLOAD_BYTES:
            payloads.append("\n".join([node_id, *lines]))
            lines, size = [], len(node_id)
        lines.append(line)
        size += len(line) + 1
    if lines:
        payloads.append("\n".join([node_id, *lines]))
    return payloads


def _parse(payload: str) -> tuple[str, list[Deadline]]:
    sender, *lines = payload.split("\n")
    deadlines = []
    for line in lines:
        kind, key, due_ms = line.split(" ")
        deadlines.append(Deadline(kind, key, int(due_ms)))
    return sender, deadlines


class PgNodeStore:
    """`store.contract.NodeStore` on PostgreSQL. The lease is kept on a connection of
    its own, in the event loop: a renewal never waits behind the writer threads' queue
    (a burst queues thousands of writes there, longer than a lease)."""

    def __init__(self, db: PgDatabase, node_id: str) -> None:
        self.db = db
        self._node_id = node_id
        self._conn: psycopg.AsyncConnection[Any] | None = None

    @property
    def node_id(self) -> str:
        return self._node_id

    async def _lease(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(self.db.url, autocommit=True)
        try:
            cursor = await self._conn.execute(sql.encode(), tuple(params))
            return await cursor.fetchall() if cursor.description else [cursor.rowcount]
        except psycopg.OperationalError:
            await self._conn.close()  # connected again on the next call
            raise

    async def join(self, host: str, pid: int, started_ms: int, lease_ms: int) -> int:
        await self._lease(
            "INSERT INTO nodes (id, host, pid, started_at_ms, lease_expires_ms)"
            " VALUES (%s, %s, %s, %s, now_ms() + %s) ON CONFLICT (id) DO UPDATE"
            " SET lease_expires_ms = EXCLUDED.lease_expires_ms",
            (self._node_id, host, pid, started_ms, lease_ms),
        )
        [(earliest,)] = await self._lease(
            "SELECT MIN(started_at_ms) FROM nodes WHERE lease_expires_ms > now_ms()"
        )
        return started_ms if earliest is None else int(earliest)

    async def renew(self, lease_ms: int) -> bool:
        [changed] = await self._lease(
            "UPDATE nodes SET lease_expires_ms = now_ms() + %s WHERE id = %s",
            (lease_ms, self._node_id),
        )
        return bool(changed)

    async def remove_expired(self) -> list[str]:
        rows = await self._lease("DELETE FROM nodes WHERE lease_expires_ms < now_ms() RETURNING id")
        return [str(row[0]) for row in rows]

    async def adopt(self, now_ms: int) -> list[Execution]:
        def op(conn: Any) -> list[Execution]:
            rows = conn.execute(_ADOPT, (self._node_id, now_ms)).fetchall()
            return [execution_from_row(row) for row in rows]

        adopted = await self.db.write(op)
        return sorted(adopted, key=lambda e: e.scheduled_for_ms)

    async def leave(self) -> None:
        try:
            await self._lease("DELETE FROM nodes WHERE id = %s", (self._node_id,))
        finally:
            if self._conn is not None:
                await self._conn.close()
                self._conn = None

    async def nodes(self) -> list[NodeRecord]:
        rows = await self._lease(
            "SELECT id, host, pid, started_at_ms, lease_expires_ms,"
            " lease_expires_ms > now_ms() AS alive FROM nodes ORDER BY started_at_ms, id"
        )
        return [
            NodeRecord(str(r[0]), str(r[1]), int(r[2]), int(r[3]), int(r[4]), bool(r[5]))
            for r in rows
        ]

    async def wakeups(self) -> AsyncIterator[list[Deadline]]:
        async with await psycopg.AsyncConnection.connect(self.db.url, autocommit=True) as conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            yield []  # listening from here on
            async for notify in conn.notifies():
                try:
                    sender, deadlines = _parse(notify.payload)
                except ValueError:
                    log.warning("ignored a malformed wake-up on %s", CHANNEL)
                    continue
                if sender != self._node_id and deadlines:
                    yield deadlines


def inspect(url: str) -> tuple[list[str], list[NodeRecord]]:
    """Read-only, for `doctor`: the applied migrations and the registered nodes (an
    empty database has neither)."""
    with psycopg.connect(url, autocommit=True) as conn:
        found = conn.execute(
            "SELECT to_regclass('migrations') IS NOT NULL, to_regclass('nodes') IS NOT NULL"
        ).fetchone()
        has_migrations, has_nodes = found if found else (False, False)
        names: list[str] = []
        if has_migrations:
            rows = conn.execute("SELECT name FROM migrations ORDER BY applied_at_ms, name")
            names = [str(row[0]) for row in rows.fetchall()]
        nodes: list[NodeRecord] = []
        if has_nodes:
            rows = conn.execute(
                "SELECT id, host, pid, started_at_ms, lease_expires_ms,"
                " lease_expires_ms > (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT"
                " FROM nodes ORDER BY started_at_ms, id"
            )
            nodes = [
                NodeRecord(str(r[0]), str(r[1]), int(r[2]), int(r[3]), int(r[4]), bool(r[5]))
                for r in rows.fetchall()
            ]
        return names, nodes
