"""Log output for `cueapi-lite serve`: one line per event, as text or as JSON objects.

`configure()` installs one stderr handler on the root logger (journald, launchd and log
shippers read stderr). JSON lines carry the event's fields (`event`, `execution_id`,
`status`, ...) that the domain passed as `extra`, so a shipper can filter on them.

`event()` logs one such line. While the handler `configure` installed is the only one a
record would reach, it writes the line straight to that handler: building a `LogRecord`
and passing it down logging's chain cost about two thirds of a line, and a burst logs two
lines per execution (`bench/telemetry_cost.py`). With any other handler, filter or
formatter in the way (an embedding application's, pytest's `caplog`), it goes through
`logging` as usual. Both ways write the same text.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any, TextIO, cast

__all__ = [
    "FORMATS",
    "JsonFormatter",
    "LoopFlushHandler",
    "TextFormatter",
    "configure",
    "event",
]

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Attributes every LogRecord has; anything else on a record came from `extra`.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class TextFormatter(logging.Formatter):
    """`time LEVEL logger message`, local time as logging prints it by default. The
    second's text is kept: a burst writes thousands of lines in the same second."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self._cached = (-1, "")  # one tuple, replaced whole: safe from any thread

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return self._time(record.created)

    def _time(self, created: float) -> str:
        second, text = self._cached
        if int(created) != second:
            second = int(created)
            text = time.strftime(self.default_time_format, self.converter(second))
            self._cached = (second, text)
        # The milliseconds as LogRecord computes `msecs`.
        return f"{text},{int((created - int(created)) * 1000):03d}"

    def event_line(
        self, created: float, level: str, name: str, message: str, fields: dict[str, Any]
    ) -> str:
        """The line `format` writes for a record with these attributes (TEXT_FORMAT)."""
        return f"{self._time(created)} {level} {name} {message}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, fields."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            key: value
            for key, value in record.__dict__.items()
            if key not in _STANDARD and not key.startswith("_")
        }
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return self.event_line(
            record.created, record.levelname, record.name, record.getMessage(), fields
        )

    def event_line(
        self, created: float, level: str, name: str, message: str, fields: dict[str, Any]
    ) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"),
            "level": level,
            "logger": name,
            "message": message,
            **fields,
        }
        return json.dumps(line, default=str, ensure_ascii=False)


class LoopFlushHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that flushes once per event-loop iteration, not once per line.

    A burst logs two lines per execution; a write per line is a system call that also
    hands the GIL to the database writer thread, which then commits smaller batches.
    Lines logged on the loop are flushed together right after the current callback (at
    most one loop iteration later); lines from other threads, or with no loop running
    (start-up, shutdown), are flushed at once. `logging.shutdown` flushes the rest.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._pending = False

    def flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            super().flush()
            return
        if not self._pending:
            self._pending = True
            loop.call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self._pending = False
        super().flush()

    def write_line(self, line: str) -> None:
        """Write one formatted line, as `emit` does with a record's."""
        with self.lock:  # type: ignore[union-attr]
            self.stream.write(line + self.terminator)
            self.flush()


def _direct(logger: logging.Logger, level: int) -> tuple[LoopFlushHandler, Any] | None:
    """The handler `configure` installed and its formatter, when a record of `logger` at
    `level` would reach that handler and nothing else: no other handler, no filter."""
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        if current.handlers:
            if len(current.handlers) > 1 or current.parent is not None:
                return None
            [handler] = current.handlers
            formatter = handler.formatter
            direct = (
                type(handler) is LoopFlushHandler
                and not handler.filters
                and level >= handler.level
                and type(formatter) in (TextFormatter, JsonFormatter)
            )
            return (cast(LoopFlushHandler, handler), formatter) if direct else None
        if not current.propagate:
            return None
        current = current.parent
    return None


def event(logger: logging.Logger, level: int, message: str, fields: dict[str, Any]) -> None:
    """Log `message` (already formatted) with the event's `fields`, as
    `logger.log(level, message, extra=fields)` would."""
    if not logger.isEnabledFor(level):
        return
    direct = _direct(logger, level)
    if direct is not None:
        handler, formatter = direct
        line = formatter.event_line(
            time.time(), logging.getLevelName(level), logger.name, message, fields
        )
        try:
            handler.write_line(line)
            return
        except Exception:  # noqa: S110 - logging's own path below reports it (handleError)
            pass
    logger.log(level, message, extra=fields)


def _stderr() -> TextIO:
    """stderr with a block buffer: `sys.stderr` is line-buffered, a write per line."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError):  # replaced by something without a descriptor
        return sys.stderr
    return open(
        fd, "w", buffering=1 << 16, encoding="utf-8", errors="backslashreplace", closefd=False
    )


def configure(level: str = "info", fmt: str = "text", stream: TextIO | None = None) -> None:
    """Send every log record at `level` or above to `stream` (stderr) in `fmt`."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}")
    # Neither format shows the caller's file and line, the thread or the process, so a
    # record need not look them up: the logging manual's own list of optimizations, and
    # about half of a record's cost on the burst path.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = LoopFlushHandler(stream or _stderr())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's own loggers go through the same handler and format.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
