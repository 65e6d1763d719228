"""CPU time a process has used so far, from /proc/<pid>/stat (Linux): user + system, all its threads."""

from __future__ import annotations

import os

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    """Fields 3.. of /proc/<pid>/stat (the command name, field 2, is in parentheses and may hold spaces)."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    return stat[stat.rindex(")") + 2 :].split()


def process_cpu_seconds(pid: int) -> float:
    fields = _stat_fields(pid)
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / CLOCK_TICKS


def child_pids(pid: int) -> list[int]:
    """The live processes whose parent is ``pid`` (etcdx's read workers, for a member)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(_stat_fields(int(entry))[1])  # field 4 of proc(5)
            except OSError:
                continue  # gone meanwhile
            if parent == pid:
                found.append(int(entry))
    return found


def server_cpu_seconds(pid: int) -> float:
    """A server's CPU so far: process ``pid`` plus its live children (a member with read workers is several
    processes; a child that ended meanwhile is not counted)."""
    total = process_cpu_seconds(pid)
    for child in child_pids(pid):
        try:
            total += process_cpu_seconds(child)
        except OSError:
            continue
    return total
