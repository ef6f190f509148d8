"""PostgreSQL schema: ordered, named migrations recorded in a table, each applied with
its record in one transaction (like the SQLite ones, which they mirror table for table
and column for column; a contract test compares the two).

`rowid` columns stand in for SQLite's implicit row ids (page order, the alert feed).
Emails and login codes compare case-insensitively, as SQLite's `COLLATE NOCASE` does.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from ..records import refuse_unknown_migrations

__all__ = ["MIGRATIONS", "migrate"]

# Serializes migrations when several nodes start at once on an empty database.
_LOCK_KEY = 0x63756561  # "cuea"

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_schema",
        """
        CREATE COLLATION IF NOT EXISTS nocase
            (provider = icu, locale = 'und-u-ks-level2', deterministic = false);

        CREATE TABLE users (
            id                 TEXT PRIMARY KEY,
            email              TEXT NOT NULL UNIQUE COLLATE nocase,
            webhook_secret     TEXT NOT NULL,
            created_at_ms      BIGINT NOT NULL,
            alert_webhook_url  TEXT,
            email_alerts       BOOLEAN NOT NULL DEFAULT TRUE
        );
        CREATE TABLE api_keys (
            id               TEXT PRIMARY KEY,
            user_id          TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            key_hash         TEXT NOT NULL UNIQUE,
            prefix           TEXT NOT NULL,
            label            TEXT NOT NULL,
            status           TEXT NOT NULL DEFAULT 'active',
            created_at_ms    BIGINT NOT NULL,
            last_used_at_ms  BIGINT,
            revoked_at_ms    BIGINT,
            replaced_by      TEXT,
            rowid            BIGSERIAL
        );
        CREATE INDEX api_keys_user ON api_keys(user_id);
        CREATE INDEX api_keys_revoked ON api_keys(revoked_at_ms) WHERE revoked_at_ms IS NOT NULL;
        CREATE TABLE cues (
            id               TEXT PRIMARY KEY,
            user_id          TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            name             TEXT NOT NULL,
            description      TEXT,
            status           TEXT NOT NULL,
            transport        TEXT NOT NULL,
            schedule_type    TEXT NOT NULL,
            cron             TEXT,
            at_ms            BIGINT,
            timezone         TEXT NOT NULL,
            callback         TEXT NOT NULL,
            payload          TEXT NOT NULL,
            retry            TEXT NOT NULL,
            on_failure       TEXT NOT NULL,
            delivery         TEXT NOT NULL,
            alerts           TEXT NOT NULL,
            catch_up         TEXT NOT NULL,
            verification     TEXT NOT NULL,
            next_fire_at_ms  BIGINT,
            last_run_ms      BIGINT,
            run_count        BIGINT NOT NULL DEFAULT 0,
            fired_count      BIGINT NOT NULL DEFAULT 0,
            warning          TEXT,
            created_at_ms    BIGINT NOT NULL,
            updated_at_ms    BIGINT NOT NULL,
            watch_from_ms    BIGINT,
            version          BIGINT NOT NULL DEFAULT 0,
            rowid            BIGSERIAL,
            UNIQUE (user_id, name)
        );
        CREATE INDEX cues_due ON cues(next_fire_at_ms) WHERE next_fire_at_ms IS NOT NULL;
        CREATE INDEX cues_user_page ON cues(user_id, created_at_ms);
        CREATE INDEX cues_user_status_page ON cues(user_id, status, created_at_ms);
        CREATE TABLE executions (
            id                    TEXT PRIMARY KEY,
            cue_id                TEXT NOT NULL REFERENCES cues(id) ON DELETE CASCADE,
            user_id               TEXT NOT NULL,
            scheduled_for_ms      BIGINT NOT NULL,
            triggered_by          TEXT NOT NULL,
            status                TEXT NOT NULL,
            missed_reason         TEXT,
            payload               TEXT NOT NULL,
            attempts              BIGINT NOT NULL DEFAULT 0,
            http_status           BIGINT,
            error_message         TEXT,
            response_body         TEXT,
            next_retry_ms         BIGINT,
            started_at_ms         BIGINT,
            delivered_at_ms       BIGINT,
            last_attempt_at_ms    BIGINT,
            claimed_by_worker     TEXT,
            claimed_at_ms         BIGINT,
            last_heartbeat_at_ms  BIGINT,
            lease_expires_at_ms   BIGINT,
            outcome               TEXT,
            outcome_state         TEXT,
            outcome_deadline_ms   BIGINT,
            replayed_from         TEXT,
            created_at_ms         BIGINT NOT NULL,
            updated_at_ms         BIGINT NOT NULL,
            transport             TEXT NOT NULL DEFAULT 'webhook',
            verification_reason   TEXT,
            rowid                 BIGSERIAL
        );
        CREATE UNIQUE INDEX executions_occurrence ON executions(cue_id, scheduled_for_ms)
            WHERE triggered_by IN ('schedule', 'catch_up');
        CREATE INDEX executions_claimable ON executions(user_id, scheduled_for_ms)
            WHERE status = 'pending' AND transport = 'worker';
        CREATE INDEX executions_user_page ON executions(user_id, scheduled_for_ms, created_at_ms);
        CREATE INDEX executions_cue_page ON executions(cue_id, scheduled_for_ms, created_at_ms);
        CREATE TABLE workers (
            user_id            TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            worker_id          TEXT NOT NULL,
            handlers           TEXT NOT NULL,
            registered_at_ms   BIGINT NOT NULL,
            last_heartbeat_ms  BIGINT NOT NULL,
            PRIMARY KEY (user_id, worker_id)
        );
        CREATE TABLE auth_tokens (
            token_hash     TEXT PRIMARY KEY,
            kind           TEXT NOT NULL,
            user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            created_at_ms  BIGINT NOT NULL,
            expires_at_ms  BIGINT NOT NULL,
            used_at_ms     BIGINT,
            rowid          BIGSERIAL
        );
        CREATE INDEX auth_tokens_expiry ON auth_tokens(expires_at_ms);
        CREATE TABLE device_codes (
            code              TEXT PRIMARY KEY COLLATE nocase,
            status            TEXT NOT NULL,
            user_id           TEXT REFERENCES users(id) ON DELETE CASCADE,
            approved_via      TEXT,
            magic_token_hash  TEXT,
            magic_email       TEXT,
            requested_ip      TEXT,
            created_at_ms     BIGINT NOT NULL,
            expires_at_ms     BIGINT NOT NULL,
            approved_at_ms    BIGINT,
            claimed_at_ms     BIGINT,
            key_id            TEXT,
            rowid             BIGSERIAL
        );
        CREATE INDEX device_codes_expiry ON device_codes(expires_at_ms);
        CREATE TABLE support_tickets (
            id             BIGSERIAL PRIMARY KEY,
            user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            subject        TEXT NOT NULL,
            message        TEXT NOT NULL,
            severity       TEXT NOT NULL,
            type           TEXT NOT NULL,
            status         TEXT NOT NULL,
            created_at_ms  BIGINT NOT NULL,
            updated_at_ms  BIGINT NOT NULL
        );
        CREATE INDEX support_tickets_user ON support_tickets(user_id, created_at_ms DESC);
        CREATE TABLE alerts (
            id                  TEXT PRIMARY KEY,
            user_id             TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            cue_id              TEXT,
            execution_id        TEXT,
            alert_type          TEXT NOT NULL,
            severity            TEXT NOT NULL,
            message             TEXT NOT NULL,
            metadata            TEXT NOT NULL,
            acknowledged_at_ms  BIGINT,
            created_at_ms       BIGINT NOT NULL,
            rowid               BIGSERIAL
        );
        CREATE INDEX alerts_user ON alerts(user_id, created_at_ms DESC);
        CREATE INDEX alerts_cue_type ON alerts(cue_id, alert_type, created_at_ms DESC);
        CREATE TABLE alert_outbox (
            id               BIGSERIAL PRIMARY KEY,
            alert_id         TEXT NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
            channel          TEXT NOT NULL,
            target           TEXT NOT NULL,
            status           TEXT NOT NULL DEFAULT 'pending',
            attempts         BIGINT NOT NULL DEFAULT 0,
            next_attempt_ms  BIGINT NOT NULL,
            last_error       TEXT,
            sent_at_ms       BIGINT
        );
        CREATE INDEX alert_outbox_pending ON alert_outbox(next_attempt_ms)
            WHERE status = 'pending';

        -- The counts the API shows, kept by the database as rows change (as in SQLite).
        CREATE TABLE cue_counts (
            user_id  TEXT NOT NULL,
            status   TEXT NOT NULL,
            cues     BIGINT NOT NULL,
            changes  BIGINT NOT NULL,
            PRIMARY KEY (user_id, status)
        );
        CREATE FUNCTION cue_counts_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP IN ('DELETE', 'UPDATE') THEN
                UPDATE cue_counts SET cues = cues - 1, changes = changes + 1
                    WHERE user_id = OLD.user_id AND status = OLD.status;
            END IF;
            IF TG_OP IN ('INSERT', 'UPDATE') THEN
                INSERT INTO cue_counts (user_id, status, cues, changes)
                    VALUES (NEW.user_id, NEW.status, 1, 1)
                    ON CONFLICT (user_id, status)
                    DO UPDATE SET cues = cue_counts.cues + 1, changes = cue_counts.changes + 1;
            END IF;
            RETURN NULL;
        END $$;
        CREATE TRIGGER cue_counts_insert AFTER INSERT ON cues
            FOR EACH ROW EXECUTE FUNCTION cue_counts_change();
        CREATE TRIGGER cue_counts_delete AFTER DELETE ON cues
            FOR EACH ROW EXECUTE FUNCTION cue_counts_change();
        CREATE TRIGGER cue_counts_status AFTER UPDATE OF status ON cues
            FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
            EXECUTE FUNCTION cue_counts_change();

        CREATE TABLE execution_counts (
            user_id   TEXT NOT NULL,
            month_ms  BIGINT NOT NULL,
            stored    BIGINT NOT NULL,
            counted   BIGINT NOT NULL,
            PRIMARY KEY (user_id, month_ms)
        );
        CREATE FUNCTION month_ms(at_ms BIGINT) RETURNS BIGINT LANGUAGE sql IMMUTABLE AS $$
            SELECT (EXTRACT(EPOCH FROM date_trunc('month',
                to_timestamp(at_ms / 1000) AT TIME ZONE 'UTC')))::BIGINT * 1000
        $$;
        CREATE FUNCTION execution_counts_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                INSERT INTO execution_counts (user_id, month_ms, stored, counted)
                    VALUES (NEW.user_id, month_ms(NEW.scheduled_for_ms), 1,
                            CASE WHEN NEW.status = 'missed' THEN 0 ELSE 1 END)
                    ON CONFLICT (user_id, month_ms) DO UPDATE SET
                        stored = execution_counts.stored + 1,
                        counted = execution_counts.counted + EXCLUDED.counted;
            ELSIF TG_OP = 'DELETE' THEN
                UPDATE execution_counts SET stored = stored - 1
                    WHERE user_id = OLD.user_id AND month_ms = month_ms(OLD.scheduled_for_ms);
            ELSE
                UPDATE execution_counts
                    SET counted = counted + CASE WHEN NEW.status = 'missed' THEN -1 ELSE 1 END
                    WHERE user_id = NEW.user_id
                    AND month_ms = month_ms(NEW.scheduled_for_ms);
            END IF;
            RETURN NULL;
        END $$;
        CREATE TRIGGER execution_counts_insert AFTER INSERT ON executions
            FOR EACH ROW EXECUTE FUNCTION execution_counts_change();
        CREATE TRIGGER execution_counts_delete AFTER DELETE ON executions
            FOR EACH ROW EXECUTE FUNCTION execution_counts_change();
        CREATE TRIGGER execution_counts_missed AFTER UPDATE OF status ON executions
            FOR EACH ROW WHEN ((OLD.status = 'missed') IS DISTINCT FROM (NEW.status = 'missed'))
            EXECUTE FUNCTION execution_counts_change();
        """,
    ),
    (
        "0006_nodes",
        """
        -- The nodes sharing this database: each renews its lease; a node whose lease ran
        -- out is removed by a survivor, which takes over the delivery work it owned.
        -- Times are the database's clock, so the hosts' clocks need not agree.
        CREATE TABLE nodes (
            id                TEXT PRIMARY KEY,
            host              TEXT NOT NULL,
            pid               BIGINT NOT NULL,
            started_at_ms     BIGINT NOT NULL,
            lease_expires_ms  BIGINT NOT NULL
        );
        -- The node that delivers an execution: the inserting connection's node (every
        -- pooled connection names its node in `cueapi.node`), then the node that began
        -- its latest attempt.
        ALTER TABLE executions ADD COLUMN owner TEXT
            DEFAULT current_setting('cueapi.node', true);
        CREATE INDEX executions_open ON executions(owner)
            WHERE status IN ('pending', 'delivering', 'retrying') AND transport = 'webhook';
        CREATE FUNCTION now_ms() RETURNS BIGINT LANGUAGE sql VOLATILE AS $$
            SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT
        $$;
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
        -- The sweep over the watched cues reads them in `rowid` order, 500 at a time; in
        -- SQLite the rowid is the table's own key, here it needs an index.
        CREATE INDEX cues_rowid ON cues(rowid);
        """,
    ),
    (
        "0009_cue_execution_counts",
        """
        -- Executions per cue (see the SQLite migration of the same name).
        CREATE TABLE cue_execution_counts (
            cue_id  TEXT PRIMARY KEY,
            stored  BIGINT NOT NULL
        );
        INSERT INTO cue_execution_counts (cue_id, stored)
            SELECT cue_id, COUNT(*) FROM executions GROUP BY cue_id;

        CREATE FUNCTION cue_execution_counts_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                INSERT INTO cue_execution_counts (cue_id, stored) VALUES (NEW.cue_id, 1)
                    ON CONFLICT (cue_id)
                    DO UPDATE SET stored = cue_execution_counts.stored + 1;
            ELSE
                UPDATE cue_execution_counts SET stored = stored - 1 WHERE cue_id = OLD.cue_id;
            END IF;
            RETURN NULL;
        END $$;
        CREATE TRIGGER cue_execution_counts_insert AFTER INSERT ON executions
            FOR EACH ROW EXECUTE FUNCTION cue_execution_counts_change();
        CREATE TRIGGER cue_execution_counts_delete AFTER DELETE ON executions
            FOR EACH ROW EXECUTE FUNCTION cue_execution_counts_change();
        CREATE FUNCTION cue_execution_counts_cue_gone() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM cue_execution_counts WHERE cue_id = OLD.id;
            RETURN NULL;
        END $$;
        CREATE TRIGGER cue_execution_counts_cue_gone AFTER DELETE ON cues
            FOR EACH ROW EXECUTE FUNCTION cue_execution_counts_cue_gone();
        """,
    ),
]


def migrate(conn: psycopg.Connection[Any]) -> list[str]:
    """Apply the migrations this database lacks, in order; returns the names applied.
    `conn` is in autocommit mode; each migration and its record commit together."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS migrations"
        " (name TEXT PRIMARY KEY, applied_at_ms BIGINT NOT NULL)"
    )
    applied = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        done = {row[0] for row in conn.execute("SELECT name FROM migrations").fetchall()}
        refuse_unknown_migrations(done, (name for name, _sql in MIGRATIONS))
        for name, sql in MIGRATIONS:
            if name in done:
                continue
            with conn.transaction():
                conn.execute(sql.encode())  # several statements: the simple query protocol
                conn.execute(
                    "INSERT INTO migrations (name, applied_at_ms) VALUES (%s, %s)",
                    (name, time.time_ns() // 1_000_000),
                )
            applied.append(name)
    return applied
