"""The records and typed results that cross the store boundary, for every backend.

Rows come back as these records (or as `models` records); a compare-and-set that changed
nothing says why with a `Refusal`; a limit checked inside a transaction raises one of the
exceptions here. Nothing in this module knows SQL.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any, NamedTuple

from ..models import Alert, Alerts, Delivery, Execution, OnFailure, Outcome, User

__all__ = [
    "LOGIN_TOKEN",
    "SESSION_TOKEN",
    "AlertFilters",
    "AttemptResult",
    "Claimable",
    "CueAfterRun",
    "CueHealthRow",
    "CueLimitReached",
    "CueState",
    "Deadline",
    "DeviceCode",
    "DuplicateName",
    "EvidenceRejected",
    "ExecutionFilters",
    "ExecutionRef",
    "Finished",
    "FirePlan",
    "KeyLimitReached",
    "KeyMatch",
    "KeyRecord",
    "LastActiveKey",
    "LeaseCheck",
    "NewCredentials",
    "NodeRecord",
    "OutboxItem",
    "OutcomeCount",
    "Preferences",
    "RecentExecution",
    "Refusal",
    "SessionMatch",
    "StoreUnavailable",
    "Ticket",
    "TicketLimitReached",
    "Watched",
    "WorkerRecord",
    "refuse_unknown_migrations",
]


# The kinds of `auth_tokens` rows: a one-time login token, a session token.
LOGIN_TOKEN = "login"  # noqa: S105 - a kind, not a secret
SESSION_TOKEN = "session"  # noqa: S105


# (cue id, cron, time zone, window start ms, missed-window multiplier)
Watched = tuple[str, str, str, int, int]


class Refusal(StrEnum):
    """Why a write changed nothing. The services turn each into one API error."""

    MISSING = "missing"  # no such row (for this user)
    NOT_CLAIMING = "not_claiming"  # the execution is not under a worker claim
    NOT_OWNER = "not_owner"  # another worker holds the claim
    OUTCOME_EXISTS = "outcome_exists"  # write-once: an outcome is already recorded
    NO_OUTCOME = "no_outcome"  # nothing recorded yet to change
    INVALID_STATE = "invalid_state"  # the outcome is not in a state that allows this
    EXPIRED = "expired"  # a device code past its expiry
    NOT_PENDING = "not_pending"  # a device code already approved or claimed
    EXISTS = "exists"  # a new row's key is taken
    FULL = "full"  # too many rows of this kind are waiting


class Deadline(NamedTuple):
    """A moment something must happen, published after the transaction that set it
    commits: `kind` names the handler (the scheduler's kinds), `key` its row."""

    kind: str
    key: str
    at_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class ExecutionRef:
    """Who a finished execution belongs to and which occurrence it was."""

    id: str
    cue_id: str
    triggered_by: str
    scheduled_for_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class CueState:
    """The columns of a cue that the rules inside a transaction read."""

    id: str
    user_id: str
    name: str
    status: str
    schedule_type: str
    on_failure: OnFailure
    alerts: Alerts
    delivery: Delivery
    next_fire_at_ms: int | None
    last_run_ms: int | None
    watch_from_ms: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class CueAfterRun:
    """The cue columns a finished execution sets (its run is counted as well)."""

    last_run_ms: int
    watch_from_ms: int | None
    status: str
    next_fire_at_ms: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class ExecutionFilters:
    cue_id: str | None = None
    status: str | None = None
    outcome_state: str | None = None
    triggered_by: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Finished:
    """What a finished execution did to its cue."""

    cue_id: str
    status: str
    cue_status: str


@dataclasses.dataclass(slots=True)  # not frozen: built per execution (see models)
class AttemptResult:
    """The end of one webhook attempt (see `Tx.finish_attempt`)."""

    execution_id: str
    attempt: int
    delivered: bool
    http_status: int | None
    error_message: str | None
    response_body: str | None
    retry_at_ms: int | None = None
    outcome: Outcome | None = None
    outcome_state: str | None = None
    outcome_deadline_ms: int | None = None


@dataclasses.dataclass(slots=True)  # not frozen: built per execution (see models)
class FirePlan:
    """What one scheduled fire writes: executions, and the cue's next fire instant.

    Applied only if the cue is still active and its `next_fire_at_ms` still equals
    `expected_next_ms` (nobody paused, edited or fired it meanwhile).
    """

    cue_id: str
    expected_next_ms: int
    new_next_ms: int | None
    executions: Sequence[Execution]
    new_status: str | None = None  # e.g. a `once` cue whose only occurrence was skipped


@dataclasses.dataclass(frozen=True, slots=True)
class NodeRecord:
    """A node of a cluster: where it runs, when it started (its clock) and whether its
    lease still holds (the database's clock)."""

    id: str
    host: str
    pid: int
    started_at_ms: int
    lease_expires_ms: int
    alive: bool


@dataclasses.dataclass(slots=True)
class OutboxItem:
    id: int
    channel: str
    target: str
    attempts: int
    alert: Alert


@dataclasses.dataclass(slots=True)
class AlertFilters:
    alert_type: str | None = None
    cue_id: str | None = None
    acknowledged: bool | None = None
    since_ms: int | None = None


@dataclasses.dataclass(slots=True)
class LeaseCheck:
    """What the lease-expiry check needs to know about one claimed execution."""

    execution: Execution
    max_attempts: int
    worker_last_heartbeat_ms: int | None


@dataclasses.dataclass(slots=True)
class Claimable:
    """One item of claimable work: only what a worker needs (a poll lists hundreds)."""

    execution_id: str
    cue_id: str
    cue_name: str
    scheduled_for_ms: int
    payload: dict[str, Any]
    attempts: int


class CueLimitReached(Exception):
    """The user already has the most `active` + `paused` cues allowed (`counted`)."""

    def __init__(self, counted: int) -> None:
        super().__init__(counted)
        self.counted = counted


class DuplicateName(Exception):
    """Another cue of the same user already has this name."""


@dataclasses.dataclass(frozen=True, slots=True)
class NewCredentials:
    """Hashes to store when a poll claims an approved code (plaintexts stay in memory)."""

    api_key: str
    key_hash: str
    label: str
    login_token_hash: str
    login_expires_at_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class DeviceCode:
    code: str
    status: str
    user_id: str | None
    email: str | None  # the approved user's email
    approved_via: str | None
    magic_token_hash: str | None
    magic_email: str | None
    requested_ip: str | None
    created_at_ms: int
    expires_at_ms: int
    approved_at_ms: int | None
    claimed_at_ms: int | None

    def expired(self, now_ms: int) -> bool:
        return now_ms >= self.expires_at_ms


class EvidenceRejected(ValueError):
    """Evidence that, merged with what is stored, would pass a size limit."""


@dataclasses.dataclass(frozen=True, slots=True)
class SessionMatch:
    user: User
    expires_at_ms: int
    retired: bool


class TicketLimitReached(Exception):
    """The user filed the most tickets allowed in the window; `oldest_ms` is when the
    oldest of them was filed (the window frees a slot when it ages out)."""

    def __init__(self, oldest_ms: int) -> None:
        super().__init__(oldest_ms)
        self.oldest_ms = oldest_ms


@dataclasses.dataclass(frozen=True, slots=True)
class Ticket:
    id: int
    user_id: str
    subject: str
    message: str
    severity: str
    type: str
    status: str
    created_at_ms: int
    updated_at_ms: int


class KeyLimitReached(Exception):
    """The user already has the most active keys allowed."""


class StoreUnavailable(Exception):
    """`Store.open` cannot use the database: a file that is not a cueapi-lite database
    (or not a database at all), or a PostgreSQL server that does not answer. The message
    names the database (without a password) and says why; nothing was written to it."""


def refuse_unknown_migrations(applied: Iterable[str], known: Iterable[str]) -> None:
    """Raise `StoreUnavailable` when the database has migrations this version does not
    know: a newer version wrote it, and this one would misread or damage what it added."""
    unknown = sorted(set(applied) - set(known))
    if unknown:
        raise StoreUnavailable(
            f"it was written by a newer cueapi-lite (migration {', '.join(unknown)});"
            " run that version or a newer one (pip install -U cueapi-lite)"
        )


class LastActiveKey(Exception):
    """Revoking this key would leave its user without an active key."""


@dataclasses.dataclass(frozen=True, slots=True)
class Preferences:
    alert_webhook_url: str | None
    email_alerts: bool


@dataclasses.dataclass(frozen=True, slots=True)
class KeyRecord:
    """What may be shown of a key: never its plaintext or hash."""

    id: str
    user_id: str
    label: str
    prefix: str
    status: str
    created_at_ms: int
    last_used_at_ms: int | None
    revoked_at_ms: int | None
    replaced_by: str | None


class KeyMatch(NamedTuple):
    user: User
    key_id: str
    status: str
    prefix: str = ""
    label: str = ""


@dataclasses.dataclass(slots=True)
class WorkerRecord:
    worker_id: str
    handlers: list[str]
    registered_at_ms: int
    last_heartbeat_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class CueHealthRow:
    """A cue's status and the state of its newest finished execution (if any)."""

    id: str
    status: str
    last_status: str | None
    last_outcome_state: str | None


class RecentExecution(NamedTuple):  # a tuple: a page of cues reads 1,500 of them
    id: str
    cue_id: str
    status: str
    outcome_state: str | None
    missed_reason: str | None
    scheduled_for_ms: int
    started_at_ms: int | None
    delivered_at_ms: int | None
    attempts: int
    http_status: int | None
    triggered_by: str


@dataclasses.dataclass(frozen=True, slots=True)
class OutcomeCount:
    bucket: int
    status: str
    outcome_state: str | None
    count: int
