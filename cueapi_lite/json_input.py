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


class JsonInputError(BadRequest):
    """Raised for a body or answer that is not JSON this server accepts (400 `invalid_json`)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        text = f"{field}: {message}" if field else message
        details = [{"field": field, "message": message}] if field else None
        super().__init__(f"Request body is not valid JSON: {text}", "invalid_json", details=details)
        self.field = field
        self.reason = message


class _Refused:
    """Stands in for a number the decoder refuses until the walk finds where it was."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def field_path(parts: tuple[str | int, ...]) -> str:
    """`("payload", "items", 3)` -> `payload.items[3]`; `()` -> `body`."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part[:64]}" if text else part[:64]
    return text or "body"


def decode_json_body(raw: bytes | str) -> Any:
    """The JSON value in `raw`; raises JsonInputError naming the offending field."""
    refused = False

    def refuse(text: str) -> _Refused:
        nonlocal refused
        refused = True
        return _Refused(f"the number {text[:40]} is out of range")

    def parse_float(text: str) -> Any:
        value = float(text)
        return value if math.isfinite(value) else refuse(text)

    def parse_int(text: str) -> Any:
        if len(text) > 20:  # far beyond 64 bits; int() of thousands of digits is slow
            return refuse(text)
        value = int(text)
        return value if MIN_INT <= value <= MAX_INT else refuse(text)

    def parse_constant(text: str) -> Any:
        raise JsonInputError(f"{text} is not a JSON number")

    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise JsonInputError("the body is not UTF-8") from None
    try:
        value = json.loads(
            text, parse_float=parse_float, parse_int=parse_int, parse_constant=parse_constant
        )
    except RecursionError:
        raise JsonInputError(f"nested more than {MAX_DEPTH} levels deep") from None
    except JsonInputError:
        raise
    except ValueError as exc:
        raise JsonInputError(str(exc)) from None
    # The walk costs a visit per node, so it runs only when a cheap scan says it may
    # find something: a refused number, a surrogate escape, or enough brackets to nest.
    deep = text.count("[") + text.count("{") > MAX_DEPTH
    if refused or deep or _SURROGATE_ESCAPE.search(text):
        _walk(value)
    return value


def _walk(value: Any) -> None:
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if len(path) > MAX_DEPTH:
            # Name the top-level field: the full path would be MAX_DEPTH parts long.
            where = field_path(path[:1])
            raise JsonInputError(f"nested more than {MAX_DEPTH} levels deep", where)
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
        elif isinstance(node, _Refused):
            raise JsonInputError(node.reason, field_path(path))
