"""The server's log: plain text or one JSON object per line, at a level from kmipd.toml.

``[log] level`` and ``[log] format`` in kmipd.toml choose them; ``kmipd serve --log-level`` and
``--log-format`` override the file (and keep overriding it when SIGHUP re-reads the file).
A JSON line holds ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message`` and, for a
logged exception, ``exception``; it carries nothing the text format does not.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from dataclasses import dataclass

from kmipd.config import ConfigError, LogSettings

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Overrides:
    """What the command line set; None leaves the setting to kmipd.toml."""

    level: str | None = None
    format: str | None = None


_overrides = Overrides()
_handler: logging.Handler | None = None


def check(settings: LogSettings) -> None:
    """ConfigError naming the setting when ``[log]`` holds a value kmipd does not know."""
    if settings.level not in LEVELS:
        raise ConfigError(f"log.level must be one of {', '.join(LEVELS)}, got {settings.level!r}")
    if settings.format not in FORMATS:
        raise ConfigError(
            f"log.format must be one of {', '.join(FORMATS)}, got {settings.format!r}"
        )


def configure(settings: LogSettings, overrides: Overrides | None = None) -> None:
    """Set up the root logger (stderr) once, at start; remembers the command line's choices."""
    global _overrides
    _overrides = overrides or Overrides()
    apply(settings)


def apply(settings: LogSettings) -> None:
    """Apply ``settings`` (again, on SIGHUP), the command line's overrides winning."""
    global _handler
    check(settings)
    level = _overrides.level or settings.level
    form = _overrides.format or settings.format
    root = logging.getLogger()
    if _handler is None:
        _handler = logging.StreamHandler(sys.stderr)
        root.addHandler(_handler)
    _handler.setFormatter(JsonFormatter() if form == "json" else logging.Formatter(TEXT_FORMAT))
    root.setLevel(level.upper())


def json_lines() -> bool:
    """Whether the log is being written as JSON lines."""
    return _handler is not None and isinstance(_handler.formatter, JsonFormatter)
