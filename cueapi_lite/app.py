"""`CueApiLite`: the one object that owns a running instance and wires its parts.

`cueapi-lite serve` runs it under uvicorn; tests and embedders build it with a
`ManualClock` and a fake `Deliverer`, call `start()`, talk to it through `client()`,
advance the clock and `settle()`. It holds no logic of its own beyond wiring and lifecycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from .alerts import AlertService
from .callbacks import CallbackPolicy
from .clock import Clock, SystemClock
from .cluster import Cluster
from .config import Settings
from .delivery import DeliveryService
from .edge import Edge, LeanStarlette
from .firing import Firing
from .leases import LeaseService
from .mailer import Mailer, mailer_for, smtp_mailer
from .mcp import McpEndpoint
from .metrics import HttpStats, MetricsCollector, metrics_routes
from .models import MissedReason, iso
from .read_cache import ReadCache
from .retention import Retention
from .routes.alerts import alert_routes
from .routes.auth import auth_routes
from .routes.billing import billing_routes
from .routes.cues import cue_routes
from .routes.device_login import device_login_routes
from .routes.docs import docs_routes
from .routes.echo import echo_routes
from .routes.executions import execution_routes
from .routes.health import health_routes
from .routes.support import support_routes
from .routes.workers import worker_routes
from .routing import IndexedRouter
from .scheduler import Kind, Scheduler
from .services.accounts import AccountService, NewKey
from .services.cues import CueService
from .services.devices import DeviceService
from .services.echo import EchoService
from .services.executions import ExecutionService
from .services.limits import LimitService
from .services.support import SupportService
from .store import Deadline, Store, is_postgres, store_for
from .store.lock import ServerLock
from .telemetry import Telemetry
from .web import dashboard_routes
from .webhooks import Deliverer, HttpDeliverer

if TYPE_CHECKING:  # httpx (and its TLS stack) loads only when a client is asked for
    import httpx

__all__ = ["CueApiLite"]

log = logging.getLogger(__name__)
BOOTSTRAP_EMAIL = "admin@local"
SETTLE_ROUNDS = 10_000


class CueApiLite:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clock: Clock | None = None,
        deliverer: Deliverer | None = None,
        mailer: Mailer | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.clock: Clock = clock or SystemClock()
        self.store: Store = store_for(self.settings.db, self.settings.synchronous)
        # One running instance per SQLite file: two would both plan every deadline. Nodes
        # sharing a PostgreSQL database coordinate instead (`cluster`).
        self._lock = None if is_postgres(self.settings.db) else ServerLock(self.settings.db)
        self.telemetry = Telemetry()
        if self.settings.metrics:
            self.store.on_batch(self.telemetry.committed)
        self.policy = CallbackPolicy(self.settings.callback_policy, self.settings.base_url)
        self.deliverer: Deliverer = deliverer or HttpDeliverer(self.policy)
        self.scheduler = Scheduler(self.clock)
        self.store.on_commit(self._committed)
        self.delivery = DeliveryService(
            self.store, self.scheduler, self.clock, self.deliverer,
            self.settings.delivery_concurrency, self.telemetry,
        )  # fmt: skip
        self.firing = Firing(
            self.store, self.scheduler, self.clock, self.settings, self.delivery, self.telemetry
        )
        self.leases = LeaseService(
            self.store, self.scheduler, self.clock, self.settings.lease_s,
            self.settings.worker_timeout_s, self.settings.unclaimed_expiry_s, self.telemetry,
        )  # fmt: skip
        self.alerts = AlertService(
            self.store, self.scheduler, self.clock, self.deliverer, self.policy,
            mailer or smtp_mailer(self.settings), self.telemetry,
        )  # fmt: skip
        self.retention = Retention(
            self.store, self.scheduler, self.clock, self.settings.history_retention_days,
            self.telemetry,
        )  # fmt: skip
        self.scheduler.on_clock_change(self._clock_changed)
        self.cluster: Cluster | None = None
        if self.store.nodes is not None:
            self.cluster = Cluster(
                self.store.nodes, self.store, self.scheduler, self.clock,
                self.settings.node_lease_s, self.firing, self.delivery, self.leases,
                self.alerts, self._committed,
            )  # fmt: skip
        self.accounts = AccountService(
            self.store, self.clock, self.settings, on_secret_changed=self.delivery.secret_changed,
            policy=self.policy,
        )  # fmt: skip
        self.limits = LimitService(self.store, self.clock, self.settings)
        if self.limits.execution_limit is not None:
            self.firing.budgets = self.limits.budgets  # no limit: no lookups when firing
        self.cues = CueService(
            self.store, self.firing, self.clock, self.settings, self.policy, self.leases,
            limits=self.limits,
        )  # fmt: skip
        self.executions = ExecutionService(
            self.store, self.clock, self.firing, self.limits, self.telemetry
        )
        self.devices = DeviceService(
            self.store, self.clock, self.settings, self.accounts,
            mailer or mailer_for(self.settings),
        )  # fmt: skip
        self.support = SupportService(self.store, self.clock, self.settings)
        self.echoes = EchoService(self.store, self.clock)
        self.mcp = McpEndpoint(self)
        self._loop_task: asyncio.Task[None] | None = None
        self.started = False
        self.http_stats = HttpStats()
        self.metrics = MetricsCollector(
            self.telemetry, self.http_stats, self.settings.db, self._metrics_state
        )
        # SQLite's data version moves with every commit; PostgreSQL offers no such number
        # (a node cannot tell when another node's transaction commits), so none is kept.
        self.reads = ReadCache(
            None if is_postgres(self.settings.db) else self.store.dashboard.data_version
        )
        operations: list[Route] = []
        if self.settings.metrics:
            operations = metrics_routes(self.metrics, self.settings.metrics_token)
        self.asgi = LeanStarlette(
            routes=[
                *health_routes(self._checks, self.clock.now_ms),
                *operations,
                *cue_routes(self.cues, self.accounts, self.reads),
                # Literal paths (/v1/executions/claimable, /claim) before /{execution_id}.
                *worker_routes(self.leases, self.accounts, self.clock),
                *execution_routes(self.executions, self.accounts, self.reads),
                *alert_routes(self.alerts, self.accounts),
                *auth_routes(self.accounts, self.limits, self.reads),
                *device_login_routes(self.devices, self.accounts, self.settings, self.clock),
                *billing_routes(self.accounts, self.limits, self.clock, self.reads),
                *support_routes(self.support, self.accounts),
                *echo_routes(self.echoes, self.accounts),
                *docs_routes(),
                Route("/mcp", self.mcp),
                # The dashboard, at / (its paths never start with /v1).
                *dashboard_routes(
                    self.cues,
                    self.executions,
                    self.alerts,
                    self.leases,
                    self.accounts,
                    self.store.dashboard,
                    self.clock,
                    self.settings,
                ),
            ],
            middleware=[
                Middleware(
                    Edge,
                    max_body_bytes=self.settings.max_body_bytes,
                    stats=self.http_stats if self.settings.metrics else None,
                ),
            ],
            lifespan=self._lifespan,
        )
        self.asgi.router = IndexedRouter(
            self.asgi.router.routes, lifespan=self._lifespan, redirect_slashes=False
        )

    # --- wiring ---------------------------------------------------------------------

    def _committed(self, deadlines: list[Deadline]) -> None:
        """Every deadline a committed transaction set goes on the heap (the one place
        that turns committed changes into wake-ups)."""
        push = self.scheduler.push
        for kind, key, at_ms in deadlines:
            push(at_ms, Kind(kind), key)

    async def _plan(self) -> None:
        """Put every deadline the database holds on the heap."""
        await self.firing.load()
        await self.leases.load()
        await self.alerts.load()
        self.retention.load()

    async def _clock_changed(self, reason: str, gap_ms: int, now_ms: int) -> None:
        """The host slept or the clock moved (seen at a wake-up). Forward: everything now
        overdue runs at once, and occurrences the gap swallowed are recorded with this
        reason. Backward: relative deadlines keep the time they had left."""
        log.warning("clock change detected (%s): wall clock moved %+d ms", reason, gap_ms)
        if gap_ms > 0:
            self.firing.missed_reason = MissedReason(reason)
            return
        # Nodes sharing a database (and a host's clock) shift the shared rows once.
        if self.cluster is None or await self.cluster.is_oldest():
            await self.store.shift_deadlines(gap_ms)
        self.scheduler.clear()
        await self._plan()
        await self.delivery.plan_retries()

    def _metrics_state(self) -> dict[str, Any]:
        return {
            "heap": len(self.scheduler),
            "next_due_ms": self.scheduler.next_due_ms(),
            "in_flight": self.delivery.in_flight,
            "queued": self.delivery.queued,
        }

    def _checks(self) -> dict[str, bool]:
        loop_alive = self._loop_task is not None and not self._loop_task.done()
        return {
            "database": self.started and self.store.healthy(),
            "scheduler": loop_alive,
            "delivery": self.started,
        }

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Open the database, reload deadlines, resume unfinished deliveries, run.

        Raises `AlreadyRunning` when another instance runs on the same SQLite file; on
        PostgreSQL it joins the nodes sharing the database.
        """
        if self.started:
            return
        await self.open_offline()
        self.started = True
        now_ms = self.clock.now_ms()
        self.firing.started_ms = now_ms
        if self.cluster is not None:
            await self.cluster.listen()
        await self._plan()
        if self.cluster is not None:
            await self.cluster.join(now_ms)  # resumes what no live node is sending
        else:
            await self.delivery.resume(now_ms)
        self._loop_task = asyncio.create_task(self.scheduler.run(), name="cueapi-lite-scheduler")

    async def aclose(self) -> None:
        if not self.started:
            return
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        await self.mcp.aclose()
        await self.firing.aclose()
        await self.delivery.aclose()
        if self.cluster is not None:
            await self.cluster.leave()
        await self.deliverer.close()
        await self.close_offline()
        self.started = False

    async def open_offline(self) -> None:
        """Open the database for an admin command (import): on SQLite the server lock is
        held, so no server runs on the file meanwhile, and nothing is scheduled or
        delivered. Raises `AlreadyRunning` when a server runs on it."""
        if self._lock is not None:
            self._lock.acquire(iso(self.clock.now_ms()) or "")
        try:
            await asyncio.to_thread(self.store.open)
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise

    async def close_offline(self) -> None:
        await asyncio.to_thread(self.store.close)
        if self._lock is not None:
            self._lock.release()

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.aclose()

    async def settle(self) -> None:
        """Run everything due at the clock's current time until nothing is left to do:
        fires, retries, deliveries. Tests call this after advancing a ManualClock."""
        for _ in range(SETTLE_ROUNDS):
            await self.scheduler.check_clock()
            ran = await self.scheduler.tick(self.clock.now_ms())
            busy = self.firing.busy or self.delivery.busy
            await self.firing.drain()
            await self.delivery.drain()
            if not ran and not busy and not self.scheduler.has_due(self.clock.now_ms()):
                return
        raise RuntimeError("cueapi-lite did not settle")

    async def bootstrap(self, email: str = BOOTSTRAP_EMAIL) -> NewKey | None:
        """On an empty database: create the first user and key (shown once)."""
        if await self.store.users.count():
            return None
        return await self.accounts.mint_key(email, label="bootstrap")

    def client(self, api_key: str | None = None) -> httpx.AsyncClient:
        """An httpx client that calls this instance in-process (no sockets)."""
        import httpx

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.asgi),
            base_url="http://cueapi-lite.test",
            headers=headers,
        )
