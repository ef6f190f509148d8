"""The magic-link mailer: plain SMTP against a tiny local SMTP server, the log without one,
and the account settings' environment variables."""

from __future__ import annotations

import asyncio
import logging

import pytest

from cueapi_lite import Settings
from cueapi_lite.mailer import LogMailer, SmtpMailer, mailer_for


class SmtpSink:
    """Just enough SMTP to accept one message on 127.0.0.1 (no STARTTLS, no auth)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], str]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sender, recipients, data = "", [], []

        async def reply(line: str) -> None:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        await reply("220 sink ESMTP")
        while line := (await reader.readline()).decode().rstrip("\r\n"):
            verb = line.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                await reply("250 sink")
            elif verb == "MAIL":
                sender = line.split(":", 1)[1].strip("<> ")
                await reply("250 OK")
            elif verb == "RCPT":
                recipients.append(line.split(":", 1)[1].strip("<> "))
                await reply("250 OK")
            elif verb == "DATA":
                await reply("354 go on")
                while (body := (await reader.readline()).decode()) != ".\r\n":
                    data.append(body)
                self.messages.append((sender, recipients, "".join(data)))
                await reply("250 queued")
            elif verb == "QUIT":
                await reply("221 bye")
                break
            else:
                await reply("250 OK")
        writer.close()


async def test_smtp_mailer_sends_the_message() -> None:
    sink = SmtpSink()
    server = await asyncio.start_server(sink.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = Settings(smtp_host="127.0.0.1", smtp_port=port, smtp_from="cues@example.com")
    mailer = mailer_for(settings)
    assert isinstance(mailer, SmtpMailer)
    async with server:
        await mailer.send("me@example.com", "cueapi-lite login code ABCD", "open http://x/y")
    [(sender, recipients, data)] = sink.messages
    assert sender == "cues@example.com"
    assert recipients == ["me@example.com"]
    assert "Subject: cueapi-lite login code ABCD" in data
    assert "open http://x/y" in data


async def test_without_smtp_the_link_goes_to_the_log(caplog: pytest.LogCaptureFixture) -> None:
    mailer = mailer_for(Settings())
    assert isinstance(mailer, LogMailer)
    with caplog.at_level(logging.WARNING, logger="cueapi_lite.mailer"):
        await mailer.send("me@example.com", "subject", "the link: http://x/v1/auth/verify")
    assert "http://x/v1/auth/verify" in caplog.text
    assert "me@example.com" in caplog.text


def test_account_settings_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "CUEAPI_LITE_REGISTRATION": "off",
            "CUEAPI_LITE_AUTO_APPROVE": "true",
            "CUEAPI_LITE_AUTO_APPROVE_EMAIL": "me@example.com",
            "CUEAPI_LITE_ADMIN_TOKEN": "s3cret-admin-token",
            "CUEAPI_LITE_RATE_LIMIT_PER_MINUTE": "120",
            "CUEAPI_LITE_CUE_LIMIT": "10",
            "CUEAPI_LITE_MONTHLY_EXECUTION_LIMIT": "300",
            "CUEAPI_LITE_SMTP_HOST": "mail.example.com",
        }
    )
    assert settings.registration_open is False
    assert settings.auto_approve is True
    assert settings.admin_token == "s3cret-admin-token"
    assert "s3cret" not in repr(settings)
    assert (settings.rate_limit_per_minute, settings.cue_limit) == (120, 10)
    assert settings.monthly_execution_limit == 300
    assert settings.smtp_host == "mail.example.com"


@pytest.mark.parametrize(
    "change",
    [
        {"registration": "maybe"},
        {"cue_limit": -1},
        {"rate_limit_per_minute": -5},
        {"session_ttl_s": 5},
        {"auto_approve_email": "nobody"},
        {"plan": ""},
        {"admin_token": "short"},
    ],
)
def test_bad_account_settings_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(change))):
        Settings(**change)  # type: ignore[arg-type]
