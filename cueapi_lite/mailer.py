"""Sending the magic-link email of a device login (E32): by SMTP, or into the log.

`Mailer` is the seam (tests inject a fake). Without an SMTP host the message is logged at
WARNING, so the operator of a self-hosted server can open the link (CONTRACT §9.2).
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from email.message import EmailMessage
from typing import Protocol

from .config import Settings

__all__ = ["LogMailer", "Mailer", "SmtpMailer", "mailer_for"]

log = logging.getLogger(__name__)
SMTP_TIMEOUT_S = 20.0


class Mailer(Protocol):
    async def send(self, to: str, subject: str, text: str) -> None:
        """Deliver one plain-text message; raises OSError (or smtplib's errors) on failure."""
        ...


class LogMailer:
    """No SMTP server: the message goes to the server's log."""

    async def send(self, to: str, subject: str, text: str) -> None:
        log.warning("No SMTP server configured; email to %s (%s):\n%s", to, subject, text)


class SmtpMailer:
    """Plain SMTP with STARTTLS (default), implicit TLS (`ssl`) or neither (`none`)."""

    def __init__(self, settings: Settings) -> None:
        assert settings.smtp_host
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.security = settings.smtp_security
        self.user = settings.smtp_user
        self.password = settings.smtp_password
        self.sender = settings.smtp_from

    async def send(self, to: str, subject: str, text: str) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message.set_content(text)
        # smtplib blocks: keep it off the event loop.
        await asyncio.to_thread(self._send, message)

    def _send(self, message: EmailMessage) -> None:
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.security == "ssl":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=SMTP_TIMEOUT_S, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=SMTP_TIMEOUT_S)
        with smtp:
            if self.security == "starttls":
                smtp.starttls(context=context)
            if self.user:
                smtp.login(self.user, self.password or "")
            smtp.send_message(message)


def mailer_for(settings: Settings) -> Mailer:
    return SmtpMailer(settings) if settings.smtp_host else LogMailer()
