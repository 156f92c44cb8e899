"""Structured logging for every Loom process.

Log calls name the objects they are about as keyword fields::

    log = get_logger(__name__)
    log.info("port plugged", port_id=pid, host=host, ofport=7)

and come out as one line of ``key=value`` pairs, so `grep port_id=...` follows
a port through the controller and its agent.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

_RESERVED = frozenset(
    ("exc_info", "stack_info", "stacklevel", "extra"),
)


def _quote(value: object) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class KeyValueFormatter(logging.Formatter):
    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        fields: Mapping[str, Any] = getattr(record, "fields", {}) or {}
        ts = self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}"
        parts = [ts, record.levelname.lower(), self.component, record.name, _quote(record.getMessage())]
        parts.extend(f"{k}={_quote(v)}" for k, v in fields.items())
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class StructuredLogger(logging.LoggerAdapter):
    """A logger whose keyword arguments become structured fields."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        fields = {k: kwargs.pop(k) for k in list(kwargs) if k not in _RESERVED}
        if self.extra:
            fields = {**self.extra, **fields}
        extra = dict(kwargs.get("extra") or {})
        extra["fields"] = fields
        kwargs["extra"] = extra
        return msg, kwargs

    def bind(self, **fields: Any) -> StructuredLogger:
        """A logger that adds ``fields`` to every line (e.g. host=...)."""
        return StructuredLogger(self.logger, {**(self.extra or {}), **fields})


def get_logger(name: str, **fields: Any) -> StructuredLogger:
    return StructuredLogger(logging.getLogger(name), fields)


def setup_logging(component: str, level: str | None = None) -> None:
    """Send key=value lines to stderr; level from LOOM_LOG_LEVEL by default."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter(component))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("LOOM_LOG_LEVEL", "INFO")).upper())
