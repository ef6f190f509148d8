"""Ordered, named schema migrations, each applied together with its record.

Append new migrations to MIGRATIONS; never edit or reorder one that has shipped.
Times are INTEGER epoch milliseconds (UTC); JSON columns hold payloads and options.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from ..records import refuse_unknown_migrations

__all__ = ["MIGRATIONS", "check_ours", "migrate"]

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_core",
        """
        CREATE TABLE users (
            id              TEXT PRIMARY KEY,
            email           TEXT NOT NULL UNIQUE COLLATE NOCASE,
            webhook_secret  TEXT NOT NULL,
            created_at_ms   INTEGER NOT NULL
        );

        CREATE TABLE api_keys (
            id              TEXT PRIMARY KEY,
            user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            key_hash        TEXT NOT NULL UNIQUE,
            prefix          TEXT NOT NULL,
            label           TEXT NOT NULL,
            status          TEXT NOT NULL DEFAULT 'active',
            created_at_ms   INTEGER NOT NULL,
            last_used_at_ms INTEGER,
            revoked_at_ms   INTEGER
        );
        CREATE INDEX api_keys_user ON api_keys(user_id);

        CREATE TABLE cues (
            id               TEXT PRIMARY KEY,
            user_id          TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            name             TEXT NOT NULL,
            description      TEXT,
            status           TEXT NOT NULL,
            transport        TEXT NOT NULL,
            schedule_type    TEXT NOT NULL,
            cron             TEXT,
            at_ms            INTEGER,
            timezone         TEXT NOT NULL,
            callback         TEXT NOT NULL,
            payload          TEXT NOT NULL,
            retry            TEXT NOT NULL,
            on_failure       TEXT NOT NULL,
            delivery         TEXT NOT NULL,
            alerts           TEXT NOT NULL,
            catch_up         TEXT NOT NULL,
            verification     TEXT NOT NULL,
            next_fire_at_ms  INTEGER,
            last_run_ms      INTEGER,
            run_count        INTEGER NOT NULL DEFAULT 0,
            fired_count      INTEGER NOT NULL DEFAULT 0,
            warning          TEXT,
            created_at_ms    INTEGER NOT NULL,
            updated_at_ms    INTEGER NOT NULL,
            UNIQUE (user_id, name)
        );
        CREATE INDEX cues_user_created ON cues(user_id, created_at_ms DESC);
        CREATE INDEX cues_due ON cues(next_fire_at_ms) WHERE next_fire_at_ms IS NOT NULL;

        CREATE TABLE executions (
            id                    TEXT PRIMARY KEY,
            cue_id                TEXT NOT NULL REFERENCES cues(id) ON DELETE CASCADE,
            user_id               TEXT NOT NULL,
            scheduled_for_ms      INTEGER NOT NULL,
            triggered_by          TEXT NOT NULL,
            status                TEXT NOT NULL,
            missed_reason         TEXT,
            payload               TEXT NOT NULL,
            attempts              INTEGER NOT NULL DEFAULT 0,
            http_status           INTEGER,
            error_message         TEXT,
            response_body         TEXT,
            next_retry_ms         INTEGER,
            started_at_ms         INTEGER,
            delivered_at_ms       INTEGER,
            last_attempt_at_ms    INTEGER,
            claimed_by_worker     TEXT,
            claimed_at_ms         INTEGER,
            last_heartbeat_at_ms  INTEGER,
            lease_expires_at_ms   INTEGER,
            outcome               TEXT,
            outcome_state         TEXT,
            outcome_deadline_ms   INTEGER,
            replayed_from         TEXT,
            created_at_ms         INTEGER NOT NULL,
            updated_at_ms         INTEGER NOT NULL
        );
        -- One row per occurrence of a schedule: a duplicate fire (after a crash, in a
        -- DST fold, on a double wake-up) collapses into the existing row.
        CREATE UNIQUE INDEX executions_occurrence
            ON executions(cue_id, scheduled_for_ms)
            WHERE triggered_by IN ('schedule', 'catch_up');
        CREATE INDEX executions_cue ON executions(cue_id, scheduled_for_ms DESC);
        CREATE INDEX executions_user ON executions(user_id, scheduled_for_ms DESC);
        -- Deliberately no index on status: every delivery moves its row through three
        -- statuses (measured: ~4% of a 10,000-execution burst), and only start-up
        -- looks rows up by status, with one scan.
        """,
    ),
    (
        "0002_workers",
        """
        -- An execution keeps the transport its cue had when it was made.
        ALTER TABLE executions ADD COLUMN transport TEXT NOT NULL DEFAULT 'webhook';
        UPDATE executions
            SET transport = (SELECT transport FROM cues WHERE cues.id = executions.cue_id);
        CREATE INDEX executions_claimable ON executions(user_id, scheduled_for_ms)
            WHERE status = 'pending' AND transport = 'worker';

        CREATE TABLE workers (
            user_id            TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            worker_id          TEXT NOT NULL,
            handlers           TEXT NOT NULL,
            registered_at_ms   INTEGER NOT NULL,
            last_heartbeat_ms  INTEGER NOT NULL,
            PRIMARY KEY (user_id, worker_id)
        );
        """,
    ),
    (
        "0003_accounts",
        """
        -- Preferences (E20). email_alerts is a boolean (0/1).
        ALTER TABLE users ADD COLUMN alert_webhook_url TEXT;
        ALTER TABLE users ADD COLUMN email_alerts INTEGER NOT NULL DEFAULT 1;

        -- A rotated key (E21) names the key that replaced it; rotated and revoked keys
        -- stay listed for 30 days after revoked_at_ms, then are purged.
        ALTER TABLE api_keys ADD COLUMN replaced_by TEXT;
        CREATE INDEX api_keys_revoked ON api_keys(revoked_at_ms) WHERE revoked_at_ms IS NOT NULL;

        -- One-time login tokens (from a device approval, E33) and session tokens (E29),
        -- stored as SHA-256 hashes only. used_at_ms makes a login token single-use and
        -- revokes a session that was refreshed.
        CREATE TABLE auth_tokens (
            token_hash     TEXT PRIMARY KEY,
            kind           TEXT NOT NULL,
            user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            created_at_ms  INTEGER NOT NULL,
            expires_at_ms  INTEGER NOT NULL,
            used_at_ms     INTEGER
        );
        CREATE INDEX auth_tokens_expiry ON auth_tokens(expires_at_ms);

        -- Device-code logins (E31-E33, CONTRACT §9). The key is minted when the first poll
        -- after approval claims the code, so no plaintext key is ever at rest.
        CREATE TABLE device_codes (
            code              TEXT PRIMARY KEY COLLATE NOCASE,
            status            TEXT NOT NULL,
            user_id           TEXT REFERENCES users(id) ON DELETE CASCADE,
            approved_via      TEXT,
            magic_token_hash  TEXT,
            magic_email       TEXT,
            requested_ip      TEXT,
            created_at_ms     INTEGER NOT NULL,
            expires_at_ms     INTEGER NOT NULL,
            approved_at_ms    INTEGER,
            claimed_at_ms     INTEGER,
            key_id            TEXT
        );
        CREATE INDEX device_codes_expiry ON device_codes(expires_at_ms);

        CREATE TABLE support_tickets (
            id             INTEGER PRIMARY KEY AUTOINCREMENT,
            user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            subject        TEXT NOT NULL,
            message        TEXT NOT NULL,
            severity       TEXT NOT NULL,
            type           TEXT NOT NULL,
            status         TEXT NOT NULL,
            created_at_ms  INTEGER NOT NULL,
            updated_at_ms  INTEGER NOT NULL
        );
        CREATE INDEX support_tickets_user ON support_tickets(user_id, created_at_ms DESC);
        """,
    ),
    (
        "0004_accountability",
        """
        CREATE TABLE alerts (
            id                  TEXT PRIMARY KEY,
            user_id             TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            cue_id              TEXT,
            execution_id        TEXT,
            alert_type          TEXT NOT NULL,
            severity            TEXT NOT NULL,
            message             TEXT NOT NULL,
            metadata            TEXT NOT NULL,
            acknowledged_at_ms  INTEGER,
            created_at_ms       INTEGER NOT NULL
        );
        CREATE INDEX alerts_user ON alerts(user_id, created_at_ms DESC);
        CREATE INDEX alerts_cue_type ON alerts(cue_id, alert_type, created_at_ms DESC);

        -- Written in the transaction that raises the alert; sent afterwards, so an alert
        -- is never lost to a crash between detecting and notifying.
        CREATE TABLE alert_outbox (
            id               INTEGER PRIMARY KEY,
            alert_id         TEXT NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
            channel          TEXT NOT NULL,
            target           TEXT NOT NULL,
            status           TEXT NOT NULL DEFAULT 'pending',
            attempts         INTEGER NOT NULL DEFAULT 0,
            next_attempt_ms  INTEGER NOT NULL,
            last_error       TEXT,
            sent_at_ms       INTEGER
        );
        CREATE INDEX alert_outbox_pending ON alert_outbox(next_attempt_ms)
            WHERE status = 'pending';

        -- Start of the window in which a recurring cue must succeed (missed_window).
        ALTER TABLE cues ADD COLUMN watch_from_ms INTEGER;
        UPDATE cues SET watch_from_ms = updated_at_ms;
        ALTER TABLE executions ADD COLUMN verification_reason TEXT;
        """,
    ),
    (
        "0005_counters_and_page_indexes",
        """
        -- Counts the API shows (E2 and E7 totals, E19 and E40 usage) are kept by the
        -- database as rows change, so reading them costs one lookup whatever the data size,
        -- and no write path can forget them. `changes` moves with every change to a user's
        -- cues of that status: a page cursor is valid while it has not moved.
        CREATE TABLE cue_counts (
            user_id  TEXT NOT NULL,
            status   TEXT NOT NULL,
            cues     INTEGER NOT NULL,
            changes  INTEGER NOT NULL,
            PRIMARY KEY (user_id, status)
        ) WITHOUT ROWID;
        INSERT INTO cue_counts (user_id, status, cues, changes)
            SELECT user_id, status, COUNT(*), 0 FROM cues GROUP BY user_id, status;

        CREATE TRIGGER cue_counts_insert AFTER INSERT ON cues BEGIN
            INSERT INTO cue_counts (user_id, status, cues, changes)
                VALUES (new.user_id, new.status, 1, 1)
                ON CONFLICT (user_id, status)
                DO UPDATE SET cues = cues + 1, changes = changes + 1;
        END;
        CREATE TRIGGER cue_counts_delete AFTER DELETE ON cues BEGIN
            UPDATE cue_counts SET cues = cues - 1, changes = changes + 1
                WHERE user_id = old.user_id AND status = old.status;
        END;
        CREATE TRIGGER cue_counts_status AFTER UPDATE OF status ON cues
            WHEN old.status IS NOT new.status BEGIN
            UPDATE cue_counts SET cues = cues - 1, changes = changes + 1
                WHERE user_id = old.user_id AND status = old.status;
            INSERT INTO cue_counts (user_id, status, cues, changes)
                VALUES (new.user_id, new.status, 1, 1)
                ON CONFLICT (user_id, status)
                DO UPDATE SET cues = cues + 1, changes = changes + 1;
        END;

        -- Executions per user and UTC calendar month of `scheduled_for`: `stored` is the
        -- rows there are (deleting a cue deletes its history), `counted` what the monthly
        -- usage counts: every execution made that was not missed. Deleting a cue does not
        -- give its runs back.
        CREATE TABLE execution_counts (
            user_id   TEXT NOT NULL,
            month_ms  INTEGER NOT NULL,
            stored    INTEGER NOT NULL,
            counted   INTEGER NOT NULL,
            PRIMARY KEY (user_id, month_ms)
        ) WITHOUT ROWID;
        INSERT INTO execution_counts (user_id, month_ms, stored, counted)
            SELECT user_id,
                   CAST(strftime('%s', scheduled_for_ms / 1000, 'unixepoch', 'start of month')
                        AS INTEGER) * 1000,
                   COUNT(*), SUM(status != 'missed')
            FROM executions GROUP BY 1, 2;

        CREATE TRIGGER execution_counts_insert AFTER INSERT ON executions BEGIN
            INSERT INTO execution_counts (user_id, month_ms, stored, counted)
                VALUES (new.user_id,
                        CAST(strftime('%s', new.scheduled_for_ms / 1000, 'unixepoch',
                                      'start of month') AS INTEGER) * 1000,
                        1, new.status != 'missed')
                ON CONFLICT (user_id, month_ms)
                DO UPDATE SET stored = stored + 1, counted = counted + excluded.counted;
        END;
        CREATE TRIGGER execution_counts_delete AFTER DELETE ON executions BEGIN
            UPDATE execution_counts SET stored = stored - 1
                WHERE user_id = old.user_id
                AND month_ms = CAST(strftime('%s', old.scheduled_for_ms / 1000, 'unixepoch',
                                             'start of month') AS INTEGER) * 1000;
        END;
        CREATE TRIGGER execution_counts_missed AFTER UPDATE OF status ON executions
            WHEN (old.status = 'missed') IS NOT (new.status = 'missed') BEGIN
            UPDATE execution_counts
                SET counted = counted + CASE WHEN new.status = 'missed' THEN -1 ELSE 1 END
                WHERE user_id = new.user_id
                AND month_ms = CAST(strftime('%s', new.scheduled_for_ms / 1000, 'unixepoch',
                                             'start of month') AS INTEGER) * 1000;
        END;

        -- Every change to a cue's row moves its version: an unchanged version is an
        -- unchanged row, so a record (and its rendering) can be reused without reading it.
        ALTER TABLE cues ADD COLUMN version INTEGER NOT NULL DEFAULT 0;

        -- Page indexes whose order is the lists' order read backwards, ties broken by
        -- rowid (newest first), so a page never sorts and a keyset can resume anywhere.
        DROP INDEX cues_user_created;
        CREATE INDEX cues_user_page ON cues(user_id, created_at_ms);
        CREATE INDEX cues_user_status_page ON cues(user_id, status, created_at_ms);
        DROP INDEX executions_user;
        CREATE INDEX executions_user_page
            ON executions(user_id, scheduled_for_ms, created_at_ms);
        DROP INDEX executions_cue;
        CREATE INDEX executions_cue_page
            ON executions(cue_id, scheduled_for_ms, created_at_ms);
        """,
    ),
    (
        "0006_nodes",
        """
        -- The nodes of a cluster sharing one PostgreSQL database, and the node that owns
        -- an execution's delivery work. SQLite has one node and never fills them; both
        -- schemas keep the same tables and columns.
        CREATE TABLE nodes (
            id                TEXT PRIMARY KEY,
            host              TEXT NOT NULL,
            pid               INTEGER NOT NULL,
            started_at_ms     INTEGER NOT NULL,
            lease_expires_ms  INTEGER NOT NULL
        );
        ALTER TABLE executions ADD COLUMN owner TEXT;
        """,
    ),
    (
        "0007_unfinished_execution_indexes",
        """
        -- Unfinished work is looked up at start (and when the clock is set back): with
        -- ten million executions each scan of the table took seconds. Partial indexes
        -- hold only the few rows still in flight; their conditions are repeated word for
        -- word by the statements that use them (store/sqlite/rows.py).
        CREATE INDEX executions_unfinished ON executions(status)
            WHERE status IN ('pending', 'delivering', 'retrying');
        CREATE INDEX executions_awaiting_outcome ON executions(outcome_deadline_ms)
            WHERE outcome IS NULL AND outcome_state IS NULL AND outcome_deadline_ms IS NOT NULL;
        """,
    ),
    (
        "0009_cue_execution_counts",
        """
        -- Executions per cue: the total of a cue's history (E3, E7 with only `cue_id`) is
        -- read, not counted over what may be a million rows. Triggers of their own, so
        -- the per-user counters' triggers stay as they are.
        CREATE TABLE cue_execution_counts (
            cue_id  TEXT PRIMARY KEY,
            stored  INTEGER NOT NULL
        ) WITHOUT ROWID;
        INSERT INTO cue_execution_counts (cue_id, stored)
            SELECT cue_id, COUNT(*) FROM executions GROUP BY cue_id;

        CREATE TRIGGER cue_execution_counts_insert AFTER INSERT ON executions BEGIN
            INSERT INTO cue_execution_counts (cue_id, stored) VALUES (new.cue_id, 1)
                ON CONFLICT (cue_id) DO UPDATE SET stored = stored + 1;
        END;
        CREATE TRIGGER cue_execution_counts_delete AFTER DELETE ON executions BEGIN
            UPDATE cue_execution_counts SET stored = stored - 1 WHERE cue_id = old.cue_id;
        END;
        CREATE TRIGGER cue_execution_counts_cue_gone AFTER DELETE ON cues BEGIN
            DELETE FROM cue_execution_counts WHERE cue_id = old.id;
        END;
        """,
    ),
]


def check_ours(path: str) -> None:
    """Raise `sqlite3.DatabaseError` for an existing file this package did not make,
    before anything writes to it: opening turns a file to WAL and migrating adds tables,
    and a mistyped `--db` must do neither to another application's database. Read only.
    An empty or new file, or one with a `migrations` table, is ours."""
    file = Path(path)
    if not file.is_file() or file.stat().st_size == 0:
        return
    conn = sqlite3.connect(file.absolute().as_uri() + "?mode=ro", uri=True)
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()
    if tables and "migrations" not in tables:
        raise sqlite3.DatabaseError("it holds another application's tables")


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply the migrations this file lacks, in order; returns the names applied."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS migrations "
        "(name TEXT PRIMARY KEY, applied_at_ms INTEGER NOT NULL)"
    )
    done = {row[0] for row in conn.execute("SELECT name FROM migrations")}
    refuse_unknown_migrations(done, (name for name, _sql in MIGRATIONS))
    applied = []
    for name, sql in MIGRATIONS:
        if name in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO migrations (name, applied_at_ms) VALUES (?, ?)",
                (name, time.time_ns() // 1_000_000),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied


def _statements(sql: str) -> list[str]:
    # executescript() would commit the open transaction first; run statements one by one
    # so a migration and its record commit together. A trigger's body holds `;` too:
    # pieces are joined until SQLite calls the statement complete.
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    statements, pending = [], ""
    for part in "\n".join(lines).split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending.strip())
            pending = ""
    if pending.strip(" \n;"):
        statements.append(pending.strip())
    return statements
