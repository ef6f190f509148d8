"""Support tickets kept on this server (E41-E43), with the API document's rules:
subject >= 10 characters, message >= 30, severity low|medium|high, type
bug|feature-request, 5 tickets per hour per user; the eligibility rule (account older
than an hour, at least one cue) only when the operator turns it on."""

from __future__ import annotations

from typing import Any

from ..clock import Clock
from ..config import Settings
from ..errors import Forbidden, NotFound, TooManyRequests, Unprocessable
from ..models import User
from ..request_shapes import SupportTicket, load, shortest
from ..store import Store, Ticket, TicketLimitReached

__all__ = ["SupportService"]

TICKETS_PER_HOUR = 5
HOUR_MS = 3_600_000
_SHORTEST = {name: shortest(SupportTicket, name) for name in ("subject", "message")}


def ticket_not_found() -> NotFound:
    return NotFound("Ticket not found", "ticket_not_found")


def _read_ticket(body: dict[str, Any]) -> dict[str, str]:
    """The four fields; surrounding blanks do not count towards the shortest lengths."""
    ticket = load(body, SupportTicket)
    values = {name: getattr(ticket, name) for name in SupportTicket.__struct_fields__}
    for name, least in _SHORTEST.items():
        values[name] = values[name].strip()
        if len(values[name]) < least:
            message = f"must have at least {least} characters besides blanks"
            raise Unprocessable(f"{name}: {message}", details=[{"field": name, "message": message}])
    return values


class SupportService:
    def __init__(self, store: Store, clock: Clock, settings: Settings) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings

    async def file(self, user: User, body: dict[str, Any]) -> Ticket:
        values = _read_ticket(body)
        now_ms = self.clock.now_ms()
        if self.settings.support_eligibility:
            await self._check_eligible(user, now_ms)
        ticket = Ticket(
            id=0, user_id=user.id, subject=values["subject"], message=values["message"],
            severity=values["severity"], type=values["type"], status="open",
            created_at_ms=now_ms, updated_at_ms=now_ms,
        )  # fmt: skip
        try:
            return await self.store.support.create(ticket, now_ms - HOUR_MS + 1, TICKETS_PER_HOUR)
        except TicketLimitReached as exc:
            retry_after_s = max(1, -(-(exc.oldest_ms + HOUR_MS - now_ms) // 1000))
            raise TooManyRequests(
                f"At most {TICKETS_PER_HOUR} tickets per hour; try again in {retry_after_s} s",
                retry_after_s,
            ) from None

    async def _check_eligible(self, user: User, now_ms: int) -> None:
        cues = await self.store.usage.cues_by_status(user.id)
        if now_ms - user.created_at_ms < HOUR_MS or not sum(cues.values()):
            raise Forbidden(
                "Support tickets need an account older than an hour with at least one cue",
                "support_not_eligible",
            )

    async def get(self, user: User, ticket_id: str) -> Ticket:
        if not (ticket_id.isascii() and ticket_id.isdigit()) or len(ticket_id) > 18:
            raise ticket_not_found()
        ticket = await self.store.support.get(user.id, int(ticket_id))
        if ticket is None:
            raise ticket_not_found()
        return ticket

    async def page(self, user: User, limit: int, offset: int) -> tuple[list[Ticket], int]:
        return await self.store.support.page(user.id, limit, offset)
