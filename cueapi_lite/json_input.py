"""The one JSON decoder for what clients and webhook receivers send.

`decode_json_body(raw)` returns the parsed value or raises `JsonInputError` (a 400
`invalid_json` naming the field) for anything the rest of the system could not store,
render or sign: invalid UTF-8, nesting deeper than `MAX_DEPTH`, `NaN`/`Infinity`, numbers
that overflow (`1e400`), integers outside 64 bits, and lone UTF-16 surrogates (`"\\ud800"`).
Pure: no I/O, no knowledge of routes.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from .errors import BadRequest

__all__ = ["MAX_DEPTH", "JsonInputError", "decode_json_body", "field_path"]

MAX_DEPTH = 128  # the nesting serde_json allows by default; no real body comes close
MIN_INT, MAX_INT = -(2**63), 2**63 - 1  # what SQLite and the clients hold exactly
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_INNERMOST = re.compile(r"\[\]|\{\}")
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


class JsonInputError(BadRequest):
    """Raised for a body or answer that is not JSON this server accepts (400 `invalid_json`)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        text = f"{field}: {message}" if field else message
        details = [{"field": field, "message": message}] if field else None
        super().__init__(f"Request body is not valid JSON: {text}", "invalid_json", details=details)
        self.field = field
        self.reason = message


def field_path(parts: tuple[str | int, ...]) -> str:
    """`("payload", "items", 3)` -> `payload.items[3]`; `()` -> `body`."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part[:64]}" if text else part[:64]
    return text or "body"


class _Refused(ValueError):
    """A number the decoder refuses; the value is read again to find where it was."""


class _Constant:
    """`NaN` or `Infinity` where `_PLAIN` read it, so the walk can name the field."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _refuse_constant(text: str) -> Any:
    raise _Refused(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 overflows to infinity
        raise _Refused(text)
    return value


def _bounded_int(text: str) -> int:
    if len(text) > 20:  # far beyond 64 bits; int() of thousands of digits is slow
        raise _Refused(text)
    value = int(text)
    if not MIN_INT <= value <= MAX_INT:
        raise _Refused(text)
    return value


# Built once (`json.loads` with any keyword builds a decoder per call). `_PLAIN` reads a
# refused body again, without the number checks, to find the field to name.
_DECODER = json.JSONDecoder(
    parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_bounded_int
)
_PLAIN = json.JSONDecoder(parse_constant=_Constant)


def decode_json_body(raw: bytes | str) -> Any:
    """The JSON value in `raw`; raises JsonInputError naming the offending field."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise JsonInputError("the body is not UTF-8") from None
    try:
        value = _DECODER.decode(text)
    except _Refused:
        _walk(_decode_plain(text))
        raise JsonInputError("a number is out of range") from None
    except RecursionError:
        where = _deep_field(text)
        raise JsonInputError(f"nested more than {MAX_DEPTH} levels deep", where) from None
    except JsonInputError:
        raise
    except ValueError as exc:
        raise JsonInputError(str(exc)) from None
    # The walk visits every node, so it runs only when a cheap look at the text says it
    # may find something: most bodies cost one parse and two scans.
    deep = text.count("[") + text.count("{") > MAX_DEPTH and _too_deep(text)
    if deep or _SURROGATE_ESCAPE.search(text):
        _walk(value)
    return value


def _decode_plain(text: str) -> Any:
    try:
        return _PLAIN.decode(text)
    except (ValueError, RecursionError):  # thousands of digits, or nested too deeply
        raise JsonInputError("a number is out of range") from None


def _deep_field(text: str) -> str | None:
    """The top-level key under which `text` (too deep to parse) passes MAX_DEPTH.

    Reads tokens only until the depth is passed: a value always follows its key, so the
    last string read at depth 1 of an object is the key."""
    depth, key = 0, None
    for match in _TOKEN.finditer(text):
        part = match.group()
        if part in ("[", "{"):
            depth += 1
            if depth > MAX_DEPTH:
                return key if text.lstrip().startswith("{") else None
        elif part in ("]", "}"):
            depth -= 1
        elif depth == 1:
            try:
                key = json.loads(part)[:64]
            except ValueError:  # not reached by the parser; name no field
                key = None
    return None


def _too_deep(text: str) -> bool:
    """Whether valid JSON `text` nests more than MAX_DEPTH containers, found with C-speed
    string operations: drop the strings, keep the brackets, and remove the innermost
    pairs once per level."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    for _ in range(MAX_DEPTH):
        if not brackets:
            return False
        brackets = _INNERMOST.sub("", brackets)
    return bool(brackets)


def _walk(value: Any) -> None:
    """Find the first thing this decoder refuses, with its path (raises JsonInputError)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if len(path) >= MAX_DEPTH and isinstance(node, dict | list):
            # Name the top-level field: the full path would be MAX_DEPTH parts long.
            raise JsonInputError(f"nested more than {MAX_DEPTH} levels deep", field_path(path[:1]))
        if isinstance(node, dict):
            for key, item in node.items():
                if _SURROGATE.search(key):
                    raise JsonInputError("a key holds a lone UTF-16 surrogate", field_path(path))
                stack.append((item, (*path, key)))
        elif isinstance(node, list):
            stack.extend((item, (*path, index)) for index, item in enumerate(node))
        elif isinstance(node, str):
            if _SURROGATE.search(node):
                raise JsonInputError("holds a lone UTF-16 surrogate", field_path(path))
        elif isinstance(node, int | float) and not _number_fits(node):
            raise JsonInputError("the number is out of range", field_path(path))
        elif isinstance(node, _Constant):
            raise JsonInputError(f"{node.text} is not a JSON number", field_path(path))


def _number_fits(number: float) -> bool:
    if isinstance(number, float):
        return math.isfinite(number)
    return MIN_INT <= number <= MAX_INT
