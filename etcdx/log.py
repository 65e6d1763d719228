"""Structured logs in the shape of etcd 3.5's zap JSON lines:
{"level":"info","ts":"2026-11-25T05:32:19.465Z","caller":"server/server.py:71","msg":"...", <fields>}.

``ts`` is zap's ISO8601 encoder: local time, milliseconds, "Z" in UTC and "+hhmm" elsewhere. The stdlib logging
module carries the records; ``configure`` routes them to etcd's --log-outputs at its --log-level, and with
--enable-log-rotation the file output rotates (log_rotation.py).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import sys
from typing import Any

from etcdx.log_config import LogFlagError, LogRotation
from etcdx.log_rotation import LumberjackFileHandler

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


def _iso8601(created: float) -> str:
    ts = datetime.datetime.fromtimestamp(created).astimezone()
    offset = ts.strftime("%z")
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}" + ("Z" if offset == "+0000" else offset)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "level": _NAMES.get(record.levelno, "fatal"),
            "ts": _iso8601(record.created),
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


def configure(
    level: str = "info", outputs: tuple[str, ...] = ("default",), rotation: LogRotation | None = None
) -> None:
    """Routes every etcdx logger to ``outputs`` (default/stderr, stdout, or file paths, appended to) at ``level``;
    with ``rotation`` the file output rotates. Raises LogFlagError, with etcd's text, for a file that cannot be
    opened (nothing changes then)."""
    handlers: list[logging.Handler] = []
    for output in dict.fromkeys(outputs):
        if output in ("default", "stderr"):
            handler: logging.Handler = logging.StreamHandler(sys.stderr)
        elif output == "stdout":
            handler = logging.StreamHandler(sys.stdout)
        else:
            try:
                if rotation is not None:
                    handler = LumberjackFileHandler(output, rotation)
                else:
                    handler = logging.FileHandler(output, encoding="utf-8")
            except OSError as exc:
                for opened in handlers:
                    opened.close()
                raise LogFlagError(f'couldn\'t open sink "{output}": open {output}: {_go_errno(exc)}') from None
        handler.setFormatter(_JsonFormatter())
        handlers.append(handler)
    root = logging.getLogger("etcdx")
    for old in root.handlers:
        old.close()
    root.handlers = handlers
    root.setLevel(_LEVELS[level])
    root.propagate = False


def _go_errno(exc: OSError) -> str:
    """Go's text for an errno ("no such file or directory"): the C library's, lower-cased as Go's table has it."""
    return (exc.strerror or str(exc)).lower()


configure()
