"""Command-line flags for the proxy commands, in the syntax of etcd's (cobra/pflag) commands:
``--name=value``, ``--name value``, a bare ``--name`` for a boolean, ``-h``/``--help``."""

from __future__ import annotations

from dataclasses import dataclass

from etcdx.config import ConfigError, parse_duration


class FlagError(Exception):
    pass


@dataclass(frozen=True)
class Flag:
    name: str
    kind: str  # "string" | "bool" | "duration" | "int"
    default: object
    usage: str


def parse(flags: list[Flag], argv: list[str]) -> dict[str, object] | None:
    """Values by flag name (underscored), defaults filled in; None when help was asked for."""
    by_name = {flag.name: flag for flag in flags}
    values = {flag.name.replace("-", "_"): flag.default for flag in flags}
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg in ("-h", "--help"):
            return None
        if not arg.startswith("-"):
            raise FlagError(f"unexpected argument {arg!r}")
        name, has_value, value = arg.lstrip("-").partition("=")
        flag = by_name.get(name)
        if flag is None:
            raise FlagError(f"unknown flag: --{name}")
        if not has_value:
            if flag.kind == "bool":
                value = "true"
            elif i < len(argv):
                value, i = argv[i], i + 1
            else:
                raise FlagError(f"flag needs an argument: --{name}")
        values[flag.name.replace("-", "_")] = _convert(flag, value)
    return values


def _convert(flag: Flag, value: str) -> object:
    try:
        if flag.kind == "bool":
            if value.lower() not in ("true", "false", "1", "0", "t", "f"):
                raise ValueError(value)
            return value.lower() in ("true", "1", "t")
        if flag.kind == "duration":
            return parse_duration(flag.name, value)
        if flag.kind == "int":
            return int(value)
    except (ValueError, ConfigError):
        raise FlagError(f'invalid argument "{value}" for "--{flag.name}" flag') from None
    return value


def usage(command: str, summary: str, flags: list[Flag]) -> str:
    lines = [summary, "", "Usage:", f"  etcdx {command} [flags]", "", "Flags:"]
    for flag in sorted(flags, key=lambda f: f.name):
        shown = go_duration(float(flag.default)) if flag.kind == "duration" else flag.default
        default = f" (default {shown})" if flag.default not in ("", False, 0) else ""
        lines.append(f"      --{flag.name:<38} {flag.usage}{default}")
    lines.append("  -h, --help                                 help for start")
    return "\n".join(lines) + "\n"


def go_duration(seconds: float) -> str:
    """Whole seconds as Go prints a time.Duration: 60 -> "1m0s", 7200 -> "2h0m0s", 5 -> "5s"."""
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
