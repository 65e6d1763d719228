"""CPU time a process has used so far, from /proc/<pid>/stat (Linux): user + system, all its threads."""

from __future__ import annotations

import os

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # the command name (field 2) is in parentheses and may hold spaces: fields 3.. follow the last ")"
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / CLOCK_TICKS


def child_pids(pid: int) -> list[int]:
    """The live processes whose parent is ``pid`` (etcdx's read workers, for a member)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue  # gone meanwhile
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:  # field 4, the parent
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
