"""Cues: rows <-> records, and the compare-and-set changes the services rely on."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from ...models import (
    Alerts,
    Callback,
    Cue,
    CueStatus,
    Delivery,
    OnFailure,
    Retry,
    Schedule,
    Verification,
    dumps,
)
from .db import Database

__all__ = ["CueLimitReached", "CueStore", "cue_from_row"]

_COLUMNS = (
    "id, user_id, name, description, status, transport, schedule_type, cron, at_ms, timezone,"
    " callback, payload, retry, on_failure, delivery, alerts, catch_up, verification,"
    " next_fire_at_ms, last_run_ms, run_count, fired_count, warning, created_at_ms,"
    " updated_at_ms, watch_from_ms"
)
_INSERT = f"INSERT INTO cues ({_COLUMNS}) VALUES ({', '.join('?' * 26)})"  # noqa: S608
_BY_ID = f"SELECT {_COLUMNS} FROM cues WHERE id = ? AND user_id = ?"  # noqa: S608
_UPDATE = (
    "UPDATE cues SET name=?, description=?, status=?, transport=?, schedule_type=?, cron=?,"
    " at_ms=?, timezone=?, callback=?, payload=?, retry=?, on_failure=?, delivery=?, alerts=?,"
    " catch_up=?, verification=?, next_fire_at_ms=?, warning=?, updated_at_ms=?,"
    " watch_from_ms=? WHERE id=? AND user_id=?"
)


# Option columns repeat across cues (most keep the defaults): decode each text once.
# The records are frozen, so cues can share them.
@lru_cache(maxsize=4096)
def _callback(text: str) -> Callback:
    data = json.loads(text)
    return Callback(data["url"], data["method"], data["headers"])


@lru_cache(maxsize=1024)
def _retry(text: str) -> Retry:
    data = json.loads(text)
    return Retry(data["max_attempts"], tuple(data["backoff_minutes"]))


@lru_cache(maxsize=1024)
def _on_failure(text: str) -> OnFailure:
    return OnFailure(**json.loads(text))


@lru_cache(maxsize=1024)
def _delivery(text: str) -> Delivery:
    return Delivery(**json.loads(text))


@lru_cache(maxsize=1024)
def _alerts(text: str) -> Alerts:
    return Alerts(**json.loads(text))


@lru_cache(maxsize=64)
def _verification(text: str) -> Verification:
    return Verification(**json.loads(text))


def cue_from_row(row: sqlite3.Row) -> Cue:
    """A Cue from a row of `SELECT {_COLUMNS}` (positional: the hot path of a burst)."""
    (
        id_, user_id, name, description, status, transport, schedule_type, cron, at_ms,
        timezone, callback, payload, retry, on_failure, delivery, alerts, catch_up,
        verification, next_fire_at_ms, last_run_ms, run_count, fired_count, warning,
        created_at_ms, updated_at_ms, watch_from_ms,
    ) = row  # fmt: skip
    return Cue(
        id=id_,
        user_id=user_id,
        name=name,
        description=description,
        status=status,
        transport=transport,
        schedule=Schedule(schedule_type, cron, at_ms, timezone),
        callback=_callback(callback),
        payload=json.loads(payload),
        retry=_retry(retry),
        on_failure=_on_failure(on_failure),
        delivery=_delivery(delivery),
        alerts=_alerts(alerts),
        catch_up=catch_up,
        verification=_verification(verification),
        next_fire_at_ms=next_fire_at_ms,
        last_run_ms=last_run_ms,
        run_count=run_count,
        fired_count=fired_count,
        warning=warning,
        created_at_ms=created_at_ms,
        updated_at_ms=updated_at_ms,
        watch_from_ms=watch_from_ms,
    )


def _options(cue: Cue) -> tuple[Any, ...]:
    return (
        dumps(dataclasses.asdict(cue.callback)),
        dumps(cue.payload),
        dumps(
            {"max_attempts": cue.retry.max_attempts, "backoff_minutes": cue.retry.backoff_minutes}
        ),
        dumps(dataclasses.asdict(cue.on_failure)),
        dumps(dataclasses.asdict(cue.delivery)),
        dumps(dataclasses.asdict(cue.alerts)),
        cue.catch_up,
        dumps(dataclasses.asdict(cue.verification)),
    )


class CueStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert(self, cue: Cue, max_cues: int | None = None) -> bool:
        """Insert a new cue; False when the user already has a cue of that name.

        With `max_cues`, raises CueLimitReached (writing nothing) when the user already
        has that many `active` or `paused` cues; counted in the same transaction, so
        concurrent creates cannot pass the limit together.
        """
        s = cue.schedule
        row = (
            cue.id, cue.user_id, cue.name, cue.description, cue.status, cue.transport,
            s.type, s.cron, s.at_ms, s.timezone, *_options(cue), cue.next_fire_at_ms,
            cue.last_run_ms, cue.run_count, cue.fired_count, cue.warning,
            cue.created_at_ms, cue.updated_at_ms, cue.watch_from_ms,
        )  # fmt: skip

        def op(conn: sqlite3.Connection) -> bool:
            if max_cues is not None:
                (counted,) = conn.execute(
                    "SELECT COUNT(*) FROM cues WHERE user_id = ? AND status IN (?, ?)",
                    (cue.user_id, CueStatus.ACTIVE.value, CueStatus.PAUSED.value),
                ).fetchone()
                if counted >= max_cues:
                    raise CueLimitReached(counted)
            try:
                conn.execute(_INSERT, row)
            except sqlite3.IntegrityError:
                return False
            return True

        return await self.db.write(op)

    async def get(self, user_id: str, cue_id: str) -> Cue | None:
        row = self.db.fetchone(_BY_ID, (cue_id, user_id))
        return cue_from_row(row) if row else None

    async def get_many(self, cue_ids: list[str]) -> list[Cue]:
        """Cues by id across users (for the scheduler); unknown ids are left out."""
        found: list[Cue] = []
        for start in range(0, len(cue_ids), 500):
            chunk = cue_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.fetchall(f"SELECT {_COLUMNS} FROM cues WHERE id IN ({marks})", chunk)  # noqa: S608
            found.extend(cue_from_row(row) for row in rows)
        return found

    async def page(
        self, user_id: str, status: str | None, limit: int, offset: int
    ) -> tuple[list[Cue], int]:
        """One page of the user's cues, newest first, and the total that match."""
        where, params = "user_id = ?", [user_id]
        if status is not None:
            where += " AND status = ?"
            params.append(status)
        total_row = self.db.fetchone(f"SELECT COUNT(*) FROM cues WHERE {where}", params)  # noqa: S608
        rows = self.db.fetchall(
            f"SELECT {_COLUMNS} FROM cues WHERE {where} ORDER BY created_at_ms DESC, rowid DESC"  # noqa: S608
            " LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [cue_from_row(row) for row in rows], int(total_row[0]) if total_row else 0

    async def modify(self, user_id: str, cue_id: str, change: Callable[[Cue], Cue]) -> Cue | None:
        """Read, change and write one cue inside one write transaction.

        `change` is a pure function of the current row, run on the writer thread, so two
        concurrent updates never lose each other's fields. Returns the stored cue, or None
        when the cue does not exist for that user. An exception from `change` leaves the
        row untouched and propagates. A name already used by another of the user's cues
        raises `DuplicateName`.
        """

        def op(conn: sqlite3.Connection) -> Cue | None:
            row = conn.execute(_BY_ID, (cue_id, user_id)).fetchone()
            if row is None:
                return None
            cue = change(cue_from_row(row))
            s = cue.schedule
            try:
                conn.execute(
                    _UPDATE,
                    (
                        cue.name, cue.description, cue.status, cue.transport, s.type, s.cron,
                        s.at_ms, s.timezone, *_options(cue), cue.next_fire_at_ms, cue.warning,
                        cue.updated_at_ms, cue.watch_from_ms, cue.id, user_id,
                    ),
                )  # fmt: skip
            except sqlite3.IntegrityError:
                raise DuplicateName(cue.name) from None
            return cue

        return await self.db.write(op)

    async def delete(self, user_id: str, cue_id: str) -> bool:
        """Delete the cue and (by cascade) its executions; False if it was not there."""

        def op(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "DELETE FROM cues WHERE id = ? AND user_id = ?", (cue_id, user_id)
            )
            return cursor.rowcount == 1

        return await self.db.write(op)

    async def recurring_active(self) -> list[Cue]:
        """Every active recurring cue (at start, to arm their missed-window checks)."""
        rows = self.db.fetchall(
            f"SELECT {_COLUMNS} FROM cues"  # noqa: S608
            " WHERE status = 'active' AND schedule_type = 'recurring'"
        )
        return [cue_from_row(row) for row in rows]

    async def scheduled(self) -> list[tuple[str, int]]:
        """(cue id, next fire instant) of every active cue that has a next fire."""
        rows = self.db.fetchall(
            "SELECT id, next_fire_at_ms FROM cues WHERE next_fire_at_ms IS NOT NULL AND status = ?",
            (CueStatus.ACTIVE.value,),
        )
        return [(row[0], row[1]) for row in rows]


class DuplicateName(Exception):
    """Another cue of the same user already has this name."""


class CueLimitReached(Exception):
    """The user already has the most `active` + `paused` cues allowed (`counted`)."""

    def __init__(self, counted: int) -> None:
        super().__init__(counted)
        self.counted = counted
