"""Many nodes on one PostgreSQL database: this node's lease, taking over the work of a
node that stopped, and the fire instants other nodes publish.

Every node plans every cue's fire; the one that takes the cue first fires it (the
others skip it, see `firing.apply_fires`). Deliveries belong to the node that sends
them: when a node's lease runs out, a survivor removes it, adopts its open deliveries
and re-reads the deadlines only that node had on its heap (claims, outcome deadlines,
missed windows, the alert outbox).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable

from .alerts import AlertService
from .clock import Clock
from .delivery import DeliveryJob, DeliveryService
from .firing import Firing
from .leases import LeaseService
from .models import ExecutionStatus
from .scheduler import Kind, Scheduler
from .store import Deadline, NodeStore, Store

__all__ = ["Cluster"]

log = logging.getLogger(__name__)
# After the wake-up connection failed: wait this long, listen again, re-read the fires.
RELISTEN_AFTER_S = 1.0


class Cluster:
    def __init__(
        self,
        nodes: NodeStore,
        store: Store,
        scheduler: Scheduler,
        clock: Clock,
        lease_s: int,
        firing: Firing,
        delivery: DeliveryService,
        leases: LeaseService,
        alerts: AlertService,
        publish: Callable[[list[Deadline]], None],
    ) -> None:
        self.nodes = nodes
        self.store = store
        self.scheduler = scheduler
        self.clock = clock
        self.lease_ms = lease_s * 1000
        self.firing = firing
        self.delivery = delivery
        self.leases = leases
        self.alerts = alerts
        self.publish = publish
        self.started_ms = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._known: set[str] = set()

    async def listen(self) -> None:
        """Start taking other nodes' fire instants; returns once listening (before the
        heap is planned, so no cue created meanwhile is missed)."""
        listening = asyncio.Event()
        self._tasks.append(asyncio.create_task(self._listen(listening), name="cueapi-lite-wakeups"))
        await listening.wait()

    async def join(self, started_ms: int) -> None:
        """Register this node, adopt work no live node owns, and keep the lease."""
        self.started_ms = started_ms
        cluster_started = await self.nodes.join(
            socket.gethostname(), os.getpid(), started_ms, self.lease_ms
        )
        # An occurrence due before this node started, while other nodes ran, was not
        # missed because a server was down: only the cluster's start counts.
        self.firing.started_ms = cluster_started
        self._known = {n.id for n in await self.nodes.nodes()}
        await self._adopt()
        self._tasks.append(asyncio.create_task(self._keep(), name="cueapi-lite-node-lease"))

    async def leave(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        try:
            await self.nodes.leave()
        except Exception:
            log.exception("could not remove this node's row; the others wait for its lease")

    async def is_oldest(self) -> bool:
        """Whether this is the longest-running live node (the one that moves shared
        deadlines after the clock jumped back)."""
        live = [n for n in await self.nodes.nodes() if n.alive]
        return not live or live[0].id == self.nodes.node_id

    # --- the lease ------------------------------------------------------------------

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self.lease_ms / 3000)
            try:
                await self.tick()
            except Exception:
                log.exception("renewing this node's lease failed; trying again")

    async def tick(self) -> None:
        """Renew this node's lease, remove nodes whose lease ran out, and take over the
        work of any node that left or was removed."""
        if not await self.nodes.renew(self.lease_ms):
            # Silent too long (a pause, a lost connection): others took its deliveries
            # over; an attempt it still finishes may be sent twice (at least once).
            log.warning("this node's lease ran out and its work was taken over; joining again")
            await self.nodes.join(socket.gethostname(), os.getpid(), self.started_ms, self.lease_ms)
        removed = await self.nodes.remove_expired()
        for node_id in removed:
            log.warning("node %s stopped renewing its lease: taking over its work", node_id)
        known = {n.id for n in await self.nodes.nodes()}
        if removed or self._known - known:
            await self._adopt()
            await self.leases.load()
            await self.alerts.load()
        self._known = known

    async def _adopt(self) -> None:
        adopted = await self.nodes.adopt(self.clock.now_ms())
        if not adopted:
            return
        cues = {c.id: c for c in await self.store.cues.get_many(
            sorted({e.cue_id for e in adopted}))}  # fmt: skip
        for execution in adopted:
            cue = cues.get(execution.cue_id)
            if cue is None:
                continue
            if execution.status == ExecutionStatus.RETRYING and execution.next_retry_ms:
                self.scheduler.push(execution.next_retry_ms, Kind.RETRY, execution.id)
            else:
                self.delivery.submit(DeliveryJob.of(cue, execution))
        log.info("took over %d open deliveries", len(adopted))

    # --- wake-ups -------------------------------------------------------------------

    async def _listen(self, listening: asyncio.Event) -> None:
        again = False
        while True:
            try:
                async for deadlines in self.nodes.wakeups():
                    if deadlines:
                        self.publish(deadlines)
                        continue
                    if again:  # whatever was published while nobody listened
                        await self.firing.load()
                    listening.set()
            except Exception:
                log.exception("listening for other nodes' fires failed; listening again")
            again = True
            await asyncio.sleep(RELISTEN_AFTER_S)
