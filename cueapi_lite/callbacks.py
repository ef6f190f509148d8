"""Which callback URLs a cue may deliver to (CONTRACT §7.6), and their one canonical form.

`canonical_url` rewrites a URL's host the way the HTTP client would (UTS #46 mapping, so
fullwidth and circled digits and the ideographic full stop become ASCII; every legacy
IPv4 spelling `inet_aton` accepts, such as `2130706433`, `0x7f000001`, `0177.0.0.1` and
`127.1`, becomes a dotted quad; a trailing dot goes). The policy decides on that form,
the canonical URL is what gets stored, and delivery connects to it, so the address
checked is the address connected to.

`local` (the default) allows http and https, loopback and private addresses, and blocks
link-local (cloud metadata), multicast, `0.0.0.0/8` and credentials in URLs. `public`
allows only https to public addresses. Names are not resolved when a cue is created:
delivery checks every resolved address with `address_allowed` at connect time.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

import idna

__all__ = ["CallbackPolicy", "CallbackRefused", "canonical_host", "canonical_url"]

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
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_VERDICTS_KEPT = 4096
_METADATA_NAMES = {"metadata", "metadata.google.internal", "metadata.goog", "instance-data"}
_ASCII_LABEL = re.compile(r"^[a-z0-9_-]{1,63}$")
_NUMBER = re.compile(r"^(?:0[xX][0-9a-fA-F]*|[0-9]+)$")


class CallbackRefused(ValueError):
    """The URL is malformed or points somewhere this server must not send to."""


def _unmapped(address: _Address) -> _Address:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64, compatible)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if int(address) >> 32 == 0 and int(address) > 1:  # ::a.b.c.d (IPv4-compatible)
        return ipaddress.IPv4Address(int(address))
    return address


def _ipv4_number(part: str) -> int:
    """One part of a legacy IPv4 spelling: decimal, `0x` hex or `0`-prefixed octal."""
    if part[:2] in ("0x", "0X"):
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8)  # ValueError for 8 or 9: inet_aton refuses those too
    return int(part, 10)


def _legacy_ipv4(labels: list[str]) -> ipaddress.IPv4Address:
    """The address `inet_aton` (and the WHATWG URL parser) reads from these labels."""
    if len(labels) > 4 or not all(_NUMBER.match(label) for label in labels):
        raise ValueError("not an IPv4 address")
    numbers = [_ipv4_number(label) for label in labels]
    *leading, last = numbers
    if any(n > 255 for n in leading) or last >= 256 ** (5 - len(numbers)):
        raise ValueError("an IPv4 part is out of range")
    value = last
    for index, n in enumerate(leading):
        value += n << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def canonical_host(host: str) -> str:
    """The one spelling of a URL host: ASCII, lower case, no trailing dot, IPv4 as a
    dotted quad and IPv6 compressed (without brackets). Raises CallbackRefused."""
    if ":" in host:
        if "%" in host:
            raise CallbackRefused("callback URL must not carry an IPv6 zone")
        try:
            return ipaddress.IPv6Address(host).compressed
        except ValueError:
            raise CallbackRefused("callback URL host is not a valid IPv6 address") from None
    try:
        mapped = idna.uts46_remap(host, std3_rules=False, transitional=False)
    except (idna.IDNAError, ValueError):
        raise CallbackRefused("callback URL host is not a valid host name") from None
    if mapped.endswith("."):
        mapped = mapped[:-1]
    labels = mapped.split(".")
    if _NUMBER.match(labels[-1]):
        # A host ending in a number is an IPv4 address to every URL parser and to
        # inet_aton, whatever its spelling; one that does not parse is refused.
        try:
            return str(_legacy_ipv4(labels))
        except ValueError:
            raise CallbackRefused("callback URL host is not a valid IPv4 address") from None
    ascii_labels = []
    for label in labels:
        if not label.isascii():
            try:
                label = idna.alabel(label).decode("ascii")
            except (idna.IDNAError, UnicodeError, ValueError):
                raise CallbackRefused("callback URL host is not a valid host name") from None
        if not _ASCII_LABEL.match(label):
            raise CallbackRefused("callback URL host is not a valid host name")
        ascii_labels.append(label)
    name = ".".join(ascii_labels)
    if len(name) > 253:
        raise CallbackRefused("callback URL host name is too long")
    return name


def canonical_url(url: object) -> str:
    """The URL with its canonical host and port; raises CallbackRefused for a URL that
    is not an absolute http(s) URL without credentials."""
    if not isinstance(url, str) or not url:
        raise CallbackRefused("callback URL must be a non-empty string")
    if len(url) > MAX_URL_CHARS:
        raise CallbackRefused(f"callback URL must be at most {MAX_URL_CHARS} characters")
    if any(ch.isspace() or ord(ch) < 32 or ch == "\\" for ch in url):
        raise CallbackRefused(
            "callback URL must not contain spaces, backslashes or control characters"
        )
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise CallbackRefused(f"callback URL is not valid: {exc}") from None
    if parts.scheme not in {"http", "https"}:
        raise CallbackRefused("callback URL must start with http:// or https://")
    if "@" in parts.netloc:
        raise CallbackRefused("callback URL must not carry credentials")
    if not parts.hostname:
        raise CallbackRefused("callback URL has no host")
    host = canonical_host(parts.hostname)
    authority = f"[{host}]" if ":" in host else host
    tail = parts.netloc[parts.netloc.find("]") + 1 :]  # after an IPv6 literal's bracket
    port_text = tail.partition(":")[2]
    if port_text:
        if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise CallbackRefused("callback URL has an invalid port")
        authority += f":{int(port_text)}"
    rest = parts.path
    if parts.query:
        rest += "?" + parts.query
    if parts.fragment:
        rest += "#" + parts.fragment
    return f"{parts.scheme}://{authority}{rest}"


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

    def check(self, url: object) -> str:
        """The canonical form of the URL if this policy accepts it (without DNS);
        raises CallbackRefused. Verdicts are remembered: delivery asks before every
        attempt."""
        if not isinstance(url, str):
            raise CallbackRefused("callback URL must be a non-empty string")
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
        canonical = canonical_url(url)
        if self.is_own_echo(canonical):
            return canonical
        parts = urlsplit(canonical)
        if self.mode == "public" and parts.scheme != "https":
            raise CallbackRefused("callback URL must use https")
        host = parts.hostname or ""
        if host in _METADATA_NAMES:
            raise CallbackRefused("callback URL points at a cloud metadata service")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return canonical  # a name: resolved and checked when connecting
        if not self.address_allowed(host):
            raise CallbackRefused(f"callback URL points at a blocked address ({host})")
        return canonical
