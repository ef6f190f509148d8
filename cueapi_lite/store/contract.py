"""The store's contract: what every backend (store/sqlite/, store/postgres/) implements.

A backend is SQL only. It reads and writes rows and says, with a typed result, what a
compare-and-set did; it decides nothing. Every rule (when a cue pauses or completes,
when an alert is raised, which occurrences were missed) is a plain function in a domain
module that runs inside `Store.transact` against the row operations of `Tx`, so each
rule is written once for every backend.

Conventions for every method here:

* Times are epoch milliseconds (`*_ms`); records come from `models` and `records`.
* A compare-and-set names its expected state; when the row is not in it (another writer
  got there first, or the row is gone) it writes nothing and returns False / None /
  a `Refusal`. It never raises for a lost race.
* A limit counted inside a transaction raises its exception from `records` and the
  transaction writes nothing.
* Deadlines set in a transaction are published with `Tx.after_commit`; the store hands
  them to its `on_commit` listeners after the commit and only then (never for a rolled
  back transaction), before `transact` returns.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol, TypeVar

from ..models import Alert, Cue, Execution, Outcome, User
from .records import (
    AlertFilters,
    AttemptResult,
    Claimable,
    CueAfterRun,
    CueHealthRow,
    CueState,
    Deadline,
    DeviceCode,
    ExecutionFilters,
    ExecutionRef,
    FirePlan,
    KeyMatch,
    KeyRecord,
    LeaseCheck,
    NodeRecord,
    OutboxItem,
    OutcomeCount,
    Preferences,
    RecentExecution,
    Refusal,
    SessionMatch,
    Ticket,
    Watched,
    WorkerRecord,
)

__all__ = [
    "AlertStore",
    "ClaimStore",
    "CueStore",
    "DashboardStore",
    "DeviceStore",
    "ExecutionStore",
    "HistoryStore",
    "NodeStore",
    "OutcomeStore",
    "Store",
    "SupportStore",
    "TokenStore",
    "Tx",
    "UsageStore",
    "UserStore",
    "WorkerStore",
]

T = TypeVar("T")


class Tx(Protocol):
    """The row operations of one write transaction; only domain functions run by
    `Store.transact` call them. Each is one statement or one read, in the transaction's
    view. Reads of a row that a rule then changes hold it against other writers until
    the transaction ends (SQLite: the one writer; PostgreSQL: `FOR UPDATE`)."""

    def after_commit(self, deadline: Deadline) -> None:
        """Publish `deadline` to the store's listeners once this transaction commits."""
        ...

    # --- cues -----------------------------------------------------------------------

    def cue(self, cue_id: str, user_id: str | None = None) -> Cue | None:
        """The cue (of `user_id`, when given), held for this transaction; None if absent."""
        ...

    def cue_state(self, cue_id: str) -> CueState | None:
        """The columns of the cue its rules read, held for this transaction; None if
        absent. Cheaper than `cue` (the hot path of every finished run)."""
        ...

    def insert_cue(self, cue: Cue, max_cues: int | None) -> bool:
        """Insert `cue` as given. False (nothing written) when its user already has a cue
        of that name. With `max_cues`: raises CueLimitReached when the user already has
        that many `active` + `paused` cues. An id already taken raises the backend's
        integrity error (ids are made unique; a clash is never a name conflict)."""
        ...

    def update_cue(self, cue: Cue) -> None:
        """Write every changeable column of `cue` (name .. watch_from, not the counters).
        Raises DuplicateName when another cue of the user has the name."""
        ...

    def count_run(self, cue_id: str, change: CueAfterRun, now_ms: int) -> None:
        """`run_count + 1` and the columns of `change` (decided by `runs.after_run`)."""
        ...

    def count_runs(self, changes: Sequence[tuple[str, CueAfterRun]], now_ms: int) -> None:
        """`count_run` for many (cue, change) pairs, each cue once, in one statement where
        the backend can."""
        ...

    def set_cue_status(
        self, cue_id: str, expected: str, status: str, now_ms: int, stop_firing: bool
    ) -> bool:
        """`expected -> status` (and `next_fire_at = NULL` when `stop_firing`). False
        when the cue is not in `expected`."""
        ...

    def restart_watch(self, cue_id: str, expected_ms: int | None, now_ms: int) -> bool:
        """`watch_from: expected_ms -> now` on an active cue (a new missed window).
        False when the cue is not active or its window moved (a success, a resume)."""
        ...

    def apply_fire(self, plan: FirePlan, fired: int, now_ms: int) -> bool:
        """active and `next_fire_at == plan.expected_next_ms` -> `next_fire_at =
        plan.new_next_ms`, `fired_count + fired`, status `plan.new_status` if given.
        False (nothing written) when the cue was paused, edited, deleted or fired."""
        ...

    def apply_fires(self, fires: Sequence[tuple[FirePlan, int]], now_ms: int) -> list[bool]:
        """`apply_fire(plan, fired, now_ms)` for each (plan, fired), in one statement where
        the backend can: whether each applied, in order."""
        ...

    def count_fire(self, cue_id: str) -> None:
        """`fired_count + 1` (an unscheduled execution was inserted)."""
        ...

    def take_due(self, cue_ids: Sequence[str]) -> set[str]:
        """Take the cues about to be fired for this transaction, skipping any another
        firing transaction has taken (on PostgreSQL, another node firing them; a row
        another kind of write holds is not skipped); the ids taken. With one writer
        (SQLite) every id is taken at no cost."""
        ...

    # --- executions -----------------------------------------------------------------

    def execution(self, execution_id: str, user_id: str | None = None) -> Execution | None:
        """The execution (of `user_id`, when given); None if absent."""
        ...

    def insert_executions(self, executions: Sequence[Execution]) -> list[Execution]:
        """Insert each as given (its status, attempts, `started_at` and `last_attempt_at`:
        an attempt may begin with its fire); one that collides with an existing row (a
        scheduled execution is unique on `(cue_id, scheduled_for)`) is skipped. Returns
        those inserted, in order. On PostgreSQL a row's `owner` is the inserting node."""
        ...

    def finish_attempt(
        self, result: AttemptResult, status: str, now_ms: int
    ) -> ExecutionRef | None:
        """`delivering` with `attempts == result.attempt` -> `status`, writing the
        attempt's http status, error, response excerpt, next retry, `delivered_at`
        (delivered) and the outcome deadline (if given). None when the row is not in
        that attempt (finished, deleted, re-sent)."""
        ...

    def finish_delivered(
        self, results: Sequence[AttemptResult], now_ms: int
    ) -> list[tuple[ExecutionRef, CueState | None]] | None:
        """`finish_attempt(result, "success", now_ms)` for delivered attempts, all or
        none: each execution's ref with its cue's state (None: the cue is gone), in
        order. None, with nothing written, when any of them is not in its attempt."""
        ...

    def write_outcome(self, execution_id: str, outcome: Outcome, state: str, now_ms: int) -> bool:
        """Write-once: outcome and state, only while none is recorded (an outcome state
        of `unknown` counts as none). False when one is recorded."""
        ...

    def end_execution(
        self,
        execution_id: str,
        status: str,
        error: str | None,
        now_ms: int,
        from_statuses: Sequence[str],
    ) -> bool:
        """`from_statuses -> status` with `error_message = error`, `delivered_at` kept or
        set to now, lease cleared. False when the status is not one of `from_statuses`."""
        ...

    def latest_finished(
        self, cue_id: str, statuses: Sequence[str], limit: int
    ) -> list[tuple[str, str, str | None]]:
        """`(id, status, outcome_state)` of the cue's newest executions whose status is
        in `statuses`, newest occurrence first (then newest created)."""
        ...

    def next_claimable(
        self, user_id: str, now_ms: int, task: str | None, agent: str | None
    ) -> str | None:
        """The oldest due pending worker execution of the user whose payload matches
        `task` / `agent` (when given); its id, or None."""
        ...

    def claim(
        self, user_id: str, execution_id: str, worker_id: str, now_ms: int, lease_until_ms: int
    ) -> Execution | None:
        """`pending` (worker transport, this user) -> `delivering`, claimed by
        `worker_id` at now, attempts + 1, lease until `lease_until_ms`, heartbeat and
        error cleared. None when it is not claimable (of many concurrent claims of one
        execution exactly one gets the row)."""
        ...

    def set_outcome_deadline(self, execution_id: str, deadline_ms: int) -> bool:
        """Set the outcome deadline while no outcome (not even `unknown`) is recorded."""
        ...

    def extend_lease(self, execution_id: str, now_ms: int, until_ms: int) -> Execution | None:
        """A claimed `delivering` execution: `last_heartbeat_at = now`, lease until
        `until_ms`. None when it is no longer under a claim."""
        ...

    def expire_lease(
        self, execution: Execution, status: str, now_ms: int, worker_dead_before_ms: int
    ) -> bool:
        """`delivering` under exactly this claim (same worker, same lease expiry, which
        has passed) and no heartbeat from that worker after `worker_dead_before_ms` ->
        `status`, claim and lease cleared, error `lease expired`. False otherwise (an
        outcome arrived, the lease was extended, the worker spoke)."""
        ...

    def expire_unclaimed(
        self, execution_id: str, now_ms: int, waiting_since_ms: int
    ) -> ExecutionRef | None:
        """`pending` worker execution unchanged since `waiting_since_ms` -> `missed`
        (`unclaimed`). None when it was claimed, finished or made pending again."""
        ...

    def expire_outcome(self, execution_id: str, deadline_ms: int, now_ms: int) -> str | None:
        """No outcome, deadline still `deadline_ms` and passed -> outcome state
        `unknown`. Returns the cue id, or None (an outcome arrived, the deadline moved)."""
        ...

    def verify_outcome(
        self,
        execution_id: str,
        state: str,
        reason: str | None,
        now_ms: int,
        from_states: Sequence[str],
    ) -> Execution | None:
        """Outcome state in `from_states` -> `state` with `verification_reason`; the
        execution after the change, or None when its state was not one of them."""
        ...

    def mark_verification_pending(self, execution_id: str, now_ms: int) -> bool:
        """A recorded outcome (not `unknown`) -> `verification_pending`; False if none."""
        ...

    def replace_outcome(self, execution_id: str, outcome: Outcome, state: str, now_ms: int) -> None:
        """Overwrite the recorded outcome and its state (evidence merged by the caller)."""
        ...

    # --- alerts ---------------------------------------------------------------------

    def alerted_since(self, cue_id: str, alert_type: str, since_ms: int) -> bool:
        """Whether an alert of this type was raised for the cue after `since_ms`."""
        ...

    def user_email(self, user_id: str) -> str | None: ...

    def insert_alert(self, alert: Alert, targets: Sequence[tuple[str, str]]) -> None:
        """Insert the alert and one pending outbox row per `(channel, target)`, due at
        the alert's creation."""
        ...

    # --- keys, tokens and device codes ----------------------------------------------

    def insert_key(
        self,
        user_id: str,
        api_key: str,
        key_hash: str,
        label: str,
        now_ms: int,
        max_active: int | None,
    ) -> str:
        """Insert an active key (hash and display prefix only); its new id. With
        `max_active`: raises KeyLimitReached when the user has that many active keys."""
        ...

    def insert_token(
        self, token_hash: str, kind: str, user_id: str, now_ms: int, expires_at_ms: int
    ) -> None:
        """Insert a login or session token's hash; tokens already expired are purged."""
        ...

    def key(self, user_id: str, key_id: str) -> KeyRecord | None:
        """The user's key (any status), held for this transaction; None if absent."""
        ...

    def active_keys(self, user_id: str) -> int:
        """How many active keys the user has."""
        ...

    def revoke_key(self, key_id: str, now_ms: int) -> KeyRecord | None:
        """`active -> revoked` at now; the key after the change, or None when it was not
        active (revoked or rotated already)."""
        ...

    def purge_revoked_keys(self, before_ms: int) -> None:
        """Delete rotated and revoked keys revoked before `before_ms` (of every user)."""
        ...

    def claim_device_code(self, code: str, now_ms: int) -> str | None:
        """`approved` and unexpired -> `claimed` (magic link cleared); the approved user
        id, or None when the code is not approved (or expired, or claimed already)."""
        ...

    def set_device_key(self, code: str, key_id: str) -> None:
        """Remember which key a claimed code produced."""
        ...


class NodeStore(Protocol):
    """The nodes sharing one database (PostgreSQL), each under a lease it renews. Lease
    times are the database's clock, so hosts need not agree on the time."""

    @property
    def node_id(self) -> str:
        """This process's node: the owner of the executions it inserts or sends."""
        ...

    async def join(self, host: str, pid: int, started_ms: int, lease_ms: int) -> int:
        """Register (or re-register) this node, leased for `lease_ms`. Returns the
        earliest `started_ms` of the nodes whose lease holds: when the cluster started."""
        ...

    async def renew(self, lease_ms: int) -> bool:
        """Lease this node for `lease_ms` more; False when its row is gone (another node
        found its lease run out and took over its work)."""
        ...

    async def remove_expired(self) -> list[str]:
        """Delete the nodes whose lease ran out; their ids. Of several nodes doing this at
        once each row is deleted by exactly one."""
        ...

    async def adopt(self, now_ms: int) -> list[Execution]:
        """Take over the open webhook executions (pending, delivering, retrying) whose
        owner is no registered node: owner -> this node; one cut off in `delivering`
        goes back to `pending` with its attempt not counted. Rows another node is taking
        over at the same moment are skipped. The executions after the change."""
        ...

    async def leave(self) -> None:
        """Delete this node's row (a clean stop: the others adopt its work at once)."""
        ...

    async def nodes(self) -> list[NodeRecord]:
        """Every registered node, oldest first, with `alive` by the database's clock."""
        ...

    def wakeups(self) -> AsyncIterator[list[Deadline]]:
        """The deadlines other nodes' commits published (a cue's next fire), as they
        arrive; first an empty list once listening. Raises when the connection fails;
        what was published until the caller listens again is not seen."""
        ...


class UserStore(Protocol):
    async def create(self, email: str, webhook_secret: str, now_ms: int) -> User | None:
        """Insert a user; None when the email (case-insensitive) is taken."""
        ...

    async def create_with_key(
        self, email: str, webhook_secret: str, now_ms: int, api_key: str, key_hash: str
    ) -> tuple[User, str] | None:
        """Insert a user and its first key (label `default`) in one transaction; None,
        writing nothing, when the email is taken. Returns the user and the key id."""
        ...

    async def get(self, user_id: str) -> User | None: ...

    async def by_email(self, email: str) -> User | None: ...

    async def count(self) -> int: ...

    async def secrets_for(self, user_ids: list[str]) -> dict[str, str]:
        """Webhook secrets by user id (read at each delivery attempt, so rotation counts)."""
        ...

    async def set_webhook_secret(self, user_id: str, secret: str) -> None: ...

    async def preferences(self, user_id: str) -> Preferences: ...

    async def set_preferences(self, user_id: str, changes: dict[str, Any]) -> None:
        """Write the given preference columns (`alert_webhook_url`, `email_alerts`)."""
        ...

    async def add_key(
        self,
        user_id: str,
        api_key: str,
        key_hash: str,
        label: str,
        now_ms: int,
        max_active: int | None = None,
    ) -> str:
        """Store a new active key (its hash and display prefix); returns the key id.
        With `max_active`, raises KeyLimitReached when the user already has that many."""
        ...

    async def by_key_hash(self, key_hash: str) -> KeyMatch | None:
        """The key's owner, for a SHA-256 hash of a presented token (any status)."""
        ...

    async def keys(self, user_id: str, listed_since_ms: int) -> list[KeyRecord]:
        """The user's active keys, and the others revoked at or after `listed_since_ms`;
        newest first."""
        ...

    async def key(self, user_id: str, key_id: str) -> KeyRecord | None: ...

    async def rename_key(self, user_id: str, key_id: str, label: str) -> KeyRecord | None: ...

    async def rotate_key(
        self,
        user_id: str,
        key_id: str,
        api_key: str,
        key_hash: str,
        now_ms: int,
        purge_before_ms: int,
    ) -> KeyRecord | None:
        """Replace an active key with a new one of the same label, in one transaction:
        the old key becomes `rotated` (401 `key_rotated` from now on) and names its
        replacement. Returns the new key, or None when the old key was not active (another
        request rotated or revoked it first: a lost compare-and-set)."""
        ...

    async def touch_key(self, key_id: str, now_ms: int) -> None:
        """Record that the key was used (callers throttle this to about once a minute)."""
        ...


class TokenStore(Protocol):
    async def session(self, token_hash: str) -> SessionMatch | None:
        """The session with this hash and its owner (any state), or None."""
        ...

    async def exchange(
        self, login_hash: str, session_hash: str, now_ms: int, expires_at_ms: int
    ) -> str | None:
        """Redeem a login token (once) for a new session; the user id, or None when the
        token is unknown, used or expired (nothing is written then)."""
        ...

    async def refresh(
        self, old_hash: str, new_hash: str, now_ms: int, expires_at_ms: int
    ) -> str | None:
        """Retire a live session and issue its successor; the user id, or None when the
        old session is unknown, expired or already refreshed."""
        ...

    async def issue(self, session_hash: str, user_id: str, now_ms: int, expires_at_ms: int) -> None:
        """A new session for a user who proved who they are (a dashboard login)."""
        ...

    async def retire(self, session_hash: str, now_ms: int) -> None:
        """End a session (a logout): it stops authenticating at once. Unknown or already
        retired sessions are left as they are."""
        ...


class DeviceStore(Protocol):
    async def get(self, code: str) -> DeviceCode | None: ...

    async def waiting(self, now_ms: int) -> list[DeviceCode]:
        """Codes not yet claimed and not expired, oldest first."""
        ...

    async def create(
        self,
        code: str,
        requested_ip: str | None,
        now_ms: int,
        expires_at_ms: int,
        max_waiting: int,
        approved_user_id: str | None = None,
        approved_via: str | None = None,
    ) -> Refusal | None:
        """Start a login with a client-chosen code (optionally approved at once).

        Refused `EXISTS` when the code is already pending or approved and unexpired
        (nothing changes); `FULL` when `max_waiting` codes are already waiting. A claimed or
        expired code of the same value is replaced. Expired codes are purged."""
        ...

    async def approve(self, code: str, user_id: str, via: str, now_ms: int) -> Refusal | None:
        """pending -> approved for `user_id` (compare-and-set on status and expiry)."""
        ...

    async def set_magic_link(
        self, code: str, token_hash: str, email: str, now_ms: int
    ) -> Refusal | None:
        """Attach a magic link (its token's hash, for `email`) to a pending code; a new
        link replaces the previous one. None means it was attached."""
        ...


class CueStore(Protocol):
    async def get(self, user_id: str, cue_id: str) -> Cue | None: ...

    async def get_many(self, cue_ids: list[str]) -> list[Cue]:
        """Cues by id across users (for the scheduler); unknown ids are left out."""
        ...

    async def page(
        self, user_id: str, status: str | None, limit: int, offset: int
    ) -> tuple[list[Cue], int]:
        """One page of the user's cues, newest first, and the total that match."""
        ...

    async def delete(self, user_id: str, cue_id: str) -> bool:
        """Delete the cue and (by cascade) its executions; False if it was not there."""
        ...

    async def watched(self, after: int, limit: int) -> tuple[list[Watched], int]:
        """(id, cron, time zone, window start, window multiplier) of up to `limit` active
        recurring cues after position `after` (0 is the beginning), and the position
        to go on from: a sweep over their missed-window checks reads them a slice at a
        time, so a million cues are never all records at once. The start is
        `watch_from_ms`, or `created_at_ms` when it has none."""
        ...

    async def fires_from(self, from_ms: int, limit: int) -> list[tuple[str, int]]:
        """(cue id, next fire instant) of the active cues whose next fire is at or after
        `from_ms`, earliest first (ties in any order), at most `limit` of them."""
        ...


class ExecutionStore(Protocol):
    async def get(self, user_id: str, execution_id: str) -> Execution | None: ...

    async def get_any(self, execution_id: str) -> Execution | None: ...

    async def page(
        self, user_id: str, filters: ExecutionFilters, limit: int, offset: int
    ) -> tuple[list[Execution], int]:
        """A page of the user's executions, newest occurrence first, and the total."""
        ...

    async def open_webhook_executions(self) -> list[Execution]:
        """Webhook executions that still have delivery work (startup resume)."""
        ...

    async def begin_attempt(self, execution_id: str, now_ms: int) -> int | None:
        """pending|retrying -> delivering, attempts + 1. Returns the attempt number, or
        None when the execution is gone or not waiting for an attempt (lost race)."""
        ...

    async def begin_attempts(self, execution_ids: list[str], now_ms: int) -> list[int | None]:
        """`begin_attempt` for many executions in one write: the attempt numbers in the
        order asked (an id asked for twice is begun once, for its first asker)."""
        ...

    async def requeue_interrupted(self, now_ms: int) -> int:
        """Webhook attempts cut off by a crash: delivering -> pending, attempts - 1, so the
        same attempt is sent again (at-least-once; receivers dedup on execution_id)."""
        ...


class ClaimStore(Protocol):
    async def claimable(
        self, user_id: str, now_ms: int, task: str | None, agent: str | None
    ) -> list[Claimable]:
        """The user's pending worker executions that are due, oldest first."""
        ...

    async def lease_check(self, execution_id: str) -> LeaseCheck | None:
        """The claimed execution, its cue's attempt limit and when its worker last sent
        a worker heartbeat (E34); None unless it is a claimed worker execution."""
        ...

    async def unclaimed(self) -> list[tuple[str, int]]:
        """(execution id, pending since) of every unclaimed worker execution (at start)."""
        ...

    async def claimed(self) -> list[tuple[str, int]]:
        """(execution id, lease expiry) of every claimed worker execution (at start)."""
        ...


class OutcomeStore(Protocol):
    async def open_deadlines(self) -> list[tuple[str, int]]:
        """(execution id, deadline) of every execution still waiting for its outcome."""
        ...


class AlertStore(Protocol):
    async def page(
        self, user_id: str, filters: AlertFilters, limit: int, offset: int
    ) -> tuple[list[Alert], int]: ...

    async def acknowledge(self, user_id: str, alert_id: str, now_ms: int) -> Alert | None:
        """Mark acknowledged (the first time only); None if the user has no such alert."""
        ...

    async def outbox_due(self, now_ms: int, limit: int) -> list[OutboxItem]:
        """Take up to `limit` pending outbox rows due at `now_ms` to send: each is due
        again only `OUTBOX_TAKEN_MS` later (unless `outbox_done` records it first), so
        of several nodes asking at once each row goes to one."""
        ...

    async def next_outbox_ms(self) -> int | None: ...

    async def outbox_done(
        self, outbox_id: int, status: str, error: str | None, retry_at_ms: int | None,
        now_ms: int,
    ) -> None:  # fmt: skip
        """Record a send of a `pending` outbox row: `sent`, `failed` / `skipped` (final),
        or another try at `retry_at_ms` (status stays `pending`); attempts + 1."""
        ...

    async def outbox_of(self, alert_id: str) -> list[dict[str, Any]]:
        """The alert's outbox rows (`channel, target, status, attempts, last_error`)."""
        ...


class WorkerStore(Protocol):
    async def heartbeat(
        self, user_id: str, worker_id: str, handlers: list[str] | None, now_ms: int
    ) -> None:
        """Insert or refresh the worker; `handlers=None` keeps the ones it had."""
        ...

    async def page(self, user_id: str) -> list[WorkerRecord]:
        """The user's workers, latest heartbeat first."""
        ...

    async def latest_heartbeat(self, user_id: str) -> int | None: ...

    async def delete(self, user_id: str, worker_id: str) -> bool: ...


class SupportStore(Protocol):
    async def create(
        self,
        ticket: Ticket,
        window_start_ms: int,
        max_in_window: int,
    ) -> Ticket:
        """Insert a ticket (its `id` is assigned here). Raises TicketLimitReached, writing
        nothing, when the user already filed `max_in_window` since `window_start_ms`."""
        ...

    async def get(self, user_id: str, ticket_id: int) -> Ticket | None: ...

    async def page(self, user_id: str, limit: int, offset: int) -> tuple[list[Ticket], int]:
        """One page of the user's tickets, newest first, and how many there are."""
        ...


class UsageStore(Protocol):
    async def cues_by_status(self, user_id: str) -> dict[str, int]: ...

    async def executions(self, user_ids: list[str], start_ms: int, end_ms: int) -> dict[str, int]:
        """Counted executions per user with `start_ms <= scheduled_for < end_ms` (users
        with none are left out)."""
        ...

    async def nth_execution_ms(
        self, user_id: str, start_ms: int, end_ms: int, n: int
    ) -> int | None:
        """`scheduled_for` of the user's n-th counted execution (1-based) in the range:
        when a limit of n was reached. None when there are fewer than n."""
        ...


class HistoryStore(Protocol):
    async def prune(self, cutoff_ms: int, batch: int) -> dict[str, int]:
        """Delete at most `batch` rows of each kind of history older than `cutoff_ms`:
        finished executions (scheduled and last changed before it), alerts raised before
        it (their outbox rows go with them), login codes and tokens that expired before
        it. Returns the rows deleted per table; a count equal to `batch` means more may
        be left."""
        ...

    async def vacuum(self, max_pages: int = 20_000) -> int:
        """Give free space back to the file system, up to `max_pages` pages; how many
        (0 where the database reclaims space by itself)."""
        ...

    async def newest_alert(self) -> int:
        """A position after every alert raised so far (for `alerts_after`)."""
        ...

    async def alerts_after(self, rowid: int) -> tuple[list[Alert], int]:
        """Alerts raised after position `rowid` (oldest first), and the new position."""
        ...


class DashboardStore(Protocol):
    """Reads the dashboard needs that the API has no call for (rows only: what a state
    means is decided in `web/health.py`)."""

    def data_version(self) -> int:
        """A number that changes whenever anything commits (a cheap "changed?" check)."""
        ...

    async def cue_health(
        self, user_id: str, transport: str | None = None, name_contains: str | None = None
    ) -> list[CueHealthRow]:
        """Every cue of the user (newest first) with its newest finished execution's
        status and outcome state; optionally of one transport, or whose name contains
        `name_contains` (case-insensitive)."""
        ...

    async def cues(self, user_id: str, cue_ids: list[str]) -> list[Cue]:
        """The user's cues with these ids, in the order given (unknown ids left out)."""
        ...

    async def recent_executions(
        self, cue_ids: list[str], per_cue: int
    ) -> dict[str, list[RecentExecution]]:
        """The newest `per_cue` executions of each cue, newest first."""
        ...

    async def outcome_counts(
        self, user_id: str, start_ms: int, end_ms: int, bucket_ms: int
    ) -> list[OutcomeCount]:
        """Executions scheduled in [start_ms, end_ms), counted per time bucket (0 is the
        oldest), status and outcome state."""
        ...

    async def recent_problems(
        self, user_id: str, since_ms: int, limit: int, scan: int
    ) -> list[RecentExecution]:
        """The user's newest failed, missed, unknown or unverified executions scheduled
        since `since_ms`, looked for among the user's newest `scan` executions."""
        ...


class Store(Protocol):
    """One database: the resource stores (reads and single-statement writes), and
    `transact` for everything that needs a rule between its reads and writes."""

    @property
    def users(self) -> UserStore: ...
    @property
    def tokens(self) -> TokenStore: ...
    @property
    def devices(self) -> DeviceStore: ...
    @property
    def cues(self) -> CueStore: ...
    @property
    def executions(self) -> ExecutionStore: ...
    @property
    def claims(self) -> ClaimStore: ...
    @property
    def outcomes(self) -> OutcomeStore: ...
    @property
    def alerts(self) -> AlertStore: ...
    @property
    def workers(self) -> WorkerStore: ...
    @property
    def support(self) -> SupportStore: ...
    @property
    def usage(self) -> UsageStore: ...
    @property
    def history(self) -> HistoryStore: ...
    @property
    def dashboard(self) -> DashboardStore: ...
    @property
    def nodes(self) -> NodeStore | None:
        """The cluster's nodes; None for a backend only one process may use (SQLite)."""
        ...

    def open(self) -> None:
        """Connect, create the schema or apply pending migrations (each recorded with
        its name in the same transaction as its change), and start writing. Raises
        `StoreUnavailable` for a database it cannot use, having written nothing to it."""
        ...

    def close(self) -> None: ...

    def migrations(self) -> list[str]:
        """The names of the applied migrations, in the order they were applied."""
        ...

    def healthy(self) -> bool:
        """Whether the store is open and able to write (cheap: `/status` asks often)."""
        ...

    @property
    def location(self) -> str:
        """Where the data lives: a file path, or a URL without its password."""
        ...

    def on_commit(self, listener: Callable[[list[Deadline]], None]) -> None:
        """Call `listener` with the deadlines of every committed transaction."""
        ...

    def on_batch(self, listener: Callable[[int, float], None]) -> None:
        """Call `listener(operations, seconds)` after each commit, on the thread that
        committed (for metrics: how many writes one commit carried, how long it took)."""
        ...

    async def transact(self, work: Callable[[Tx], T], urgent: bool = False) -> T:
        """Run `work(tx)` in one transaction and commit; its return value is returned.

        If `work` raises, nothing it wrote is kept and the exception propagates. `work`
        runs on a thread of the store's choosing and must do nothing but call `tx` and
        compute (no awaiting, no I/O of its own): PostgreSQL runs it again from the
        start when it aborted the transaction to break a deadlock. `urgent` work (a fire
        that is due now) goes before writes still waiting, where the store queues them,
        and its commit does not wait for them either.
        """
        ...

    async def shift_deadlines(self, delta_ms: int) -> None:
        """Move every relative deadline by `delta_ms` (after the wall clock jumped back):
        retries, leases, outcome deadlines, unclaimed waits, missed-window starts and
        unsent alerts keep the time they had left. Cue fire times are wall-clock
        instants and stay."""
        ...
