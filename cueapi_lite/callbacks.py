"""Which callback URLs a cue may deliver to (CONTRACT §7.6).

`local` (the default) allows http and https, loopback and private addresses, and blocks
link-local (cloud metadata), multicast, `0.0.0.0/8` and credentials in URLs; it does no
DNS lookup when a cue is created. `public` allows only https to public addresses and
checks DNS both when a cue is created and when it is delivered. Delivery re-checks every
resolved address with `address_allowed`, so a name that later points somewhere blocked
is refused at connect time.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

__all__ = ["CallbackPolicy", "CallbackRefused"]

MAX_URL_CHARS = 2048
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_ALWAYS_BLOCKED = [
    ipaddress.ip_network(n)
    for n in ("0.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "255.255.255.255/32",
              "fe80::/10", "ff00::/8", "::/128")
]  # fmt: skip
_PRIVATE = [
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
              "198.18.0.0/15", "::1/128", "fc00::/7")
]  # fmt: skip
_VERDICTS_KEPT = 4096
_METADATA_NAMES = {"metadata", "metadata.google.internal", "metadata.goog", "instance-data"}


class CallbackRefused(ValueError):
    """The URL is malformed or points somewhere this server must not send to."""


def _unmapped(address: _Address) -> _Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class CallbackPolicy:
    def __init__(self, mode: str = "local", own_origin: str | None = None) -> None:
        if mode not in {"local", "public"}:
            raise ValueError("callback policy must be 'local' or 'public'")
        self.mode = mode
        self.own_origin = own_origin.rstrip("/") if own_origin else None
        self._verdicts: dict[str, str | CallbackRefused] = {}

    def is_own_echo(self, url: str) -> bool:
        """The server's own quickstart echo endpoint is always reachable."""
        return self.own_origin is not None and url.startswith(self.own_origin + "/v1/echo/")

    def address_allowed(self, address: str) -> bool:
        try:
            ip = _unmapped(ipaddress.ip_address(address.split("%", 1)[0]))
        except ValueError:
            return False
        blocked = _ALWAYS_BLOCKED + (_PRIVATE if self.mode == "public" else [])
        return not any(ip in network for network in blocked)

    def check(self, url: str) -> str:
        """The URL, if this policy accepts it without DNS; raises CallbackRefused.

        Verdicts are remembered: delivery asks again before every attempt.
        """
        verdict = self._verdicts.get(url)
        if verdict is None:
            try:
                verdict = self._check(url)
            except CallbackRefused as exc:
                verdict = exc
            if len(self._verdicts) >= _VERDICTS_KEPT:
                self._verdicts.clear()
            self._verdicts[url] = verdict
        if isinstance(verdict, CallbackRefused):
            raise CallbackRefused(str(verdict))
        return verdict

    def _check(self, url: str) -> str:
        if not isinstance(url, str) or not url:
            raise CallbackRefused("callback URL must be a non-empty string")
        if len(url) > MAX_URL_CHARS:
            raise CallbackRefused(f"callback URL must be at most {MAX_URL_CHARS} characters")
        if any(ch.isspace() or ord(ch) < 32 for ch in url):
            raise CallbackRefused("callback URL must not contain spaces or control characters")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise CallbackRefused(f"callback URL is not valid: {exc}") from None
        if parts.scheme not in {"http", "https"}:
            raise CallbackRefused("callback URL must start with http:// or https://")
        if not parts.hostname:
            raise CallbackRefused("callback URL has no host")
        if parts.username is not None or parts.password is not None:
            raise CallbackRefused("callback URL must not carry credentials")
        if port == 0:
            raise CallbackRefused("callback URL has an invalid port")
        if self.is_own_echo(url):
            return url
        if self.mode == "public" and parts.scheme != "https":
            raise CallbackRefused("callback URL must use https")
        host = parts.hostname.rstrip(".").lower()
        if host in _METADATA_NAMES:
            raise CallbackRefused("callback URL points at a cloud metadata service")
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return url  # a name: resolved and checked when connecting
        if not self.address_allowed(host):
            raise CallbackRefused(f"callback URL points at a blocked address ({host})")
        return url

    def check_resolved(self, url: str) -> None:
        """`public` mode: every address the host resolves to must be allowed."""
        if self.mode != "public" or self.is_own_echo(url):
            return
        host = urlsplit(url).hostname or ""
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except OSError as exc:
            raise CallbackRefused(f"callback host {host!r} does not resolve") from exc
        for info in infos:
            if not self.address_allowed(str(info[4][0])):
                raise CallbackRefused(f"callback host {host!r} resolves to a blocked address")
