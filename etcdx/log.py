"""Structured logs in the shape of etcd 3.5's zap JSON lines:
{"level":"info","ts":"2026-11-25T05:32:19.465Z","caller":"server/server.py:71","msg":"...", <fields>}.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import sys
from typing import Any

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "dpanic": logging.CRITICAL,
    "panic": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}
_NAMES = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn", logging.ERROR: "error"}


def _short_path(path: str) -> str:
    """The file's package directory and name, as zap's short caller: "server/server.py"."""
    return f"{os.path.basename(os.path.dirname(path))}/{os.path.basename(path)}"


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        line: dict[str, Any] = {
            "level": _NAMES.get(record.levelno, "fatal"),
            "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
            "caller": f"{_short_path(record.pathname)}:{record.lineno}",
            "msg": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


class StructuredLogger:
    """info / warning / error / debug(msg, **fields): one JSON line per call."""

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(name)

    def _log(self, level: int, msg: str, fields: dict[str, Any], exc_info: bool = False) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, msg, extra={"fields": fields}, stacklevel=3, exc_info=exc_info)

    def debug(self, msg: str, **fields: Any) -> None:
        self._log(logging.DEBUG, msg, fields)

    def info(self, msg: str, **fields: Any) -> None:
        self._log(logging.INFO, msg, fields)

    def warning(self, msg: str, **fields: Any) -> None:
        self._log(logging.WARNING, msg, fields)

    def error(self, msg: str, **fields: Any) -> None:
        self._log(logging.ERROR, msg, fields)

    def exception(self, msg: str, **fields: Any) -> None:
        self._log(logging.ERROR, msg, fields, exc_info=True)


def get_logger(name: str) -> StructuredLogger:
    return StructuredLogger(name)


def configure(level: str = "info", outputs: tuple[str, ...] = ("default",)) -> None:
    """Routes every etcdx logger to ``outputs`` (default/stderr, stdout, or file paths) at ``level``."""
    root = logging.getLogger("etcdx")
    root.handlers.clear()
    root.setLevel(_LEVELS[level])
    root.propagate = False
    for output in outputs:
        if output in ("default", "stderr"):
            handler: logging.Handler = logging.StreamHandler(sys.stderr)
        elif output == "stdout":
            handler = logging.StreamHandler(sys.stdout)
        else:
            handler = logging.FileHandler(output)
        handler.setFormatter(_JsonFormatter())
        root.addHandler(handler)


configure()
