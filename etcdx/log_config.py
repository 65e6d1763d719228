"""etcd 3.5's checks of the logging flags (--logger, --log-outputs, --enable-log-rotation,
--log-rotation-config-json), with its error texts, and the rotation settings they give.

The rotation JSON has lumberjack's fields: maxsize (MB before a file is rotated; 0: 100), maxage (days a
backup is kept; 0: no limit), maxbackups (backups kept; 0: all), localtime (backup names in local time rather
than UTC) and compress (gzip the backups).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

STREAM_OUTPUTS = frozenset({"default", "stderr", "stdout"})
_ROTATION_OUTPUT_ERROR = "--log-outputs requires a single file path when --log-rotate-config-json is defined"
_INT_FIELDS = ("maxsize", "maxage", "maxbackups")
_BOOL_FIELDS = ("localtime", "compress")


class LogFlagError(ValueError):
    """A logging flag etcd refuses; the message is etcd's."""


@dataclass(frozen=True)
class LogRotation:
    max_size_mb: int = 100
    max_age_days: int = 0
    max_backups: int = 0
    local_time: bool = False
    compress: bool = False


def check_logger(logger: str) -> None:
    if logger == "capnslog":
        raise LogFlagError("--logger=capnslog is removed in v3.5")
    if logger != "zap":
        raise LogFlagError(f'unknown logger option "{logger}"')


def rotation_settings(outputs: tuple[str, ...], config_json: str) -> LogRotation:
    """The rotation --enable-log-rotation asks for: one file output (streams may be listed beside it, but
    not alone), and a JSON object whose fields have lumberjack's types."""
    files = [output for output in outputs if output not in STREAM_OUTPUTS]
    if (len(outputs) == 1 and not files) or len(files) > 1:
        raise LogFlagError(_ROTATION_OUTPUT_ERROR)
    try:
        fields = json.loads(config_json)
    except json.JSONDecodeError as exc:
        raise LogFlagError(f"improperly formatted log rotation config: {_go_syntax_error(config_json, exc)}") from None
    if not isinstance(fields, dict):
        raise LogFlagError(
            f"invalid log rotation config: json: cannot unmarshal {_json_kind(fields)} into Go value of type "
            "embed.logRotationConfig"
        )
    for name in _INT_FIELDS + _BOOL_FIELDS:
        value = fields.get(name)
        wanted = int if name in _INT_FIELDS else bool
        if value is None:
            continue
        if isinstance(value, bool) != (wanted is bool) or not isinstance(value, wanted):
            raise LogFlagError(
                f"invalid log rotation config: json: cannot unmarshal {_json_kind(value)} into Go struct field "
                f"logRotationConfig.{name} of type {'int' if wanted is int else 'bool'}"
            )
    return LogRotation(
        max_size_mb=fields.get("maxsize") or 100,
        max_age_days=fields.get("maxage") or 0,
        max_backups=fields.get("maxbackups") or 0,
        local_time=bool(fields.get("localtime")),
        compress=bool(fields.get("compress")),
    )


def _json_kind(value: object) -> str:
    """encoding/json's name for a JSON value's kind in its UnmarshalTypeError."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _go_syntax_error(text: str, exc: json.JSONDecodeError) -> str:
    """encoding/json's SyntaxError text for the common cases; Python's otherwise."""
    if exc.pos >= len(text):
        return "unexpected end of JSON input"
    char = text[exc.pos]
    if "property name" in exc.msg:
        return f"invalid character '{char}' looking for beginning of object key string"
    if exc.msg == "Expecting value":
        return f"invalid character '{char}' looking for beginning of value"
    return exc.msg
