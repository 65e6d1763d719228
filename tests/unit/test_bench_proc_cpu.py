"""The bench tool's server CPU counts a member's child processes (read workers) too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from etcdx.cli.bench.proc_cpu import child_pids, process_cpu_seconds, server_cpu_seconds

_SPIN = "import time\nend = time.monotonic() + 20\nwhile time.monotonic() < end: pass"
# A parent that starts a child spinning on the CPU, then sleeps: its own CPU stays near zero.
_PARENT = f"""
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", {_SPIN!r}])
print(child.pid, flush=True)
time.sleep(20)
"""


def test_a_busy_child_counts_in_the_servers_cpu():
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], stdout=subprocess.PIPE, text=True)
    child = 0
    try:
        child = int(parent.stdout.readline())
        assert child_pids(parent.pid) == [child]
        time.sleep(0.6)  # the child spins meanwhile
        own, total = process_cpu_seconds(parent.pid), server_cpu_seconds(parent.pid)
        assert total - own >= 0.3, (own, total)
    finally:
        if child:
            os.kill(child, signal.SIGKILL)
        parent.kill()
        parent.wait()
