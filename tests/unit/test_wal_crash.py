"""The WAL under real crashes: kill -9 of a process between acknowledged syncs."""

from __future__ import annotations

import os
import pathlib
import random
import signal
import subprocess
import sys

import trio

from etcdx.wal.wal import WAL

# Appends one entry per sync and prints its index only once sync() returned: printed means acknowledged.
CHILD = """
import sys, trio
from etcdx.pb.etcdxpb.raft_pb2 import Entry, HardState
from etcdx.wal.wal import WAL

async def main(directory):
    wal, replay = await WAL.open(directory, segment_bytes=16384)
    index = replay.last_index
    while True:
        index += 1
        wal.append([Entry(term=1, index=index, data=b"v" * (index % 97))], HardState(term=1, commit=index))
        await wal.sync()
        print(index, flush=True)

trio.run(main, sys.argv[1])
"""


def test_every_acknowledged_index_survives_kill_9(tmp_path):
    directory = str(tmp_path / "wal")
    rng = random.Random(20261125)
    env = dict(os.environ, PYTHONPATH=str(pathlib.Path(__file__).resolve().parents[2]))
    acknowledged = 0
    for _ in range(20):
        child = subprocess.Popen([sys.executable, "-c", CHILD, directory], stdout=subprocess.PIPE, env=env, text=True)
        try:
            for _ in range(rng.randrange(1, 60)):
                line = child.stdout.readline()
                assert line, "the child stopped before it was killed"
                acknowledged = int(line)
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
        for line in child.stdout.readlines():  # printed before the kill: acknowledged too
            acknowledged = int(line)
        child.stdout.close()
        assert child.returncode == -signal.SIGKILL
        check_log(directory, acknowledged)


def check_log(directory: str, acknowledged: int) -> None:
    """Every acknowledged index is in the log, and the log is a gap-free prefix 1..n."""

    async def replay_indexes() -> list[int]:
        wal, replay = await WAL.open(directory)
        await wal.close()
        return [e.index for e in replay.entries]

    indexes = trio.run(replay_indexes)
    assert indexes[:acknowledged] == list(range(1, acknowledged + 1))
    assert indexes == list(range(1, len(indexes) + 1))
