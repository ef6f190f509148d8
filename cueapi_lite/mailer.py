"""Sending email: the magic link of a device login (E32) and alert notifications.

`Mailer` is the seam (tests inject a fake). Without an SMTP host a magic link is logged
at WARNING, so the operator of a self-hosted server can open it (CONTRACT §9.2); alert
email is then recorded as skipped in the alert outbox.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import smtplib
import ssl
from email.message import EmailMessage
from typing import Protocol

from .config import Settings

__all__ = ["LogMailer", "Mailer", "SmtpMailer", "mailer_for", "smtp_mailer"]

log = logging.getLogger(__name__)


class Mailer(Protocol):
    async def send(self, to: str, subject: str, body: str) -> None: ...


class LogMailer:
    """No SMTP server: the message goes to the server's log."""

    async def send(self, to: str, subject: str, body: str) -> None:
        log.warning("No SMTP server configured; email to %s (%s):\n%s", to, subject, body)


@dataclasses.dataclass(frozen=True, slots=True)
class SmtpMailer:
    """Email through an SMTP server (smtplib in a thread: off the event loop)."""

    host: str
    port: int = 25
    sender: str = "cueapi-lite@localhost"
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    starttls: bool = False
    timeout_s: float = 30.0

    async def send(self, to: str, subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        await asyncio.to_thread(self._send, message)

    def _send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(message)


def mailer_for(settings: Settings) -> Mailer:
    """The SMTP mailer the settings name, else one that writes to the log."""
    return smtp_mailer(settings) or LogMailer()


def smtp_mailer(settings: Settings) -> SmtpMailer | None:
    """The SMTP mailer the settings name, if they name one."""
    if not settings.smtp_host:
        return None
    return SmtpMailer(
        settings.smtp_host, settings.smtp_port, settings.smtp_from, settings.smtp_username,
        settings.smtp_password, settings.smtp_starttls,
    )  # fmt: skip
