"""The peer transport between two members in one process, on loopback: MsgApp throughput and snapshot
streaming.

    python bench/peer_transport.py [--messages 50000] [--entry-bytes 256] [--batch 64] [--snapshot-mb 32]

Messages: --messages MsgApps of one --entry-bytes entry each, handed to send() --batch at a time (as a Ready
would), the sender yielding between batches whenever its queue holds more than 1,000; the figure is
messages (and entry MB) per second from the first send to the last on_message. Snapshot: --snapshot-mb of
random bytes (incompressible) and of repeated text (compressible), from send() to on_snapshot_status.
Wall-clock on a shared machine, with the CPU time of this process beside it: both sides run here.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import trio

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from etcdx.raft.messages import Entry, Message, MessageType, Snapshot  # noqa: E402
from tests.support.peer_members import connect_all, start_member, wait_until  # noqa: E402


async def bench_messages(nursery: trio.Nursery, count: int, entry_bytes: int, batch: int) -> None:
    a, b = await start_member(nursery, 1), await start_member(nursery, 2)
    connect_all([a, b])
    await wait_until(lambda: a.transport.is_active(2))
    payload = b"v" * entry_bytes
    messages = [
        Message(MessageType.APP, to=2, sender=1, term=2, index=i, commit=i, entries=(Entry(2, i + 1, data=payload),))
        for i in range(count)
    ]
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, count, batch):
        a.transport.send(messages[start : start + batch])
        while start + batch - len(b.received) > 1000:
            await trio.sleep(0)
    await wait_until(lambda: len(b.received) == count, timeout=600)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    dropped = sum(a.unreachable.values())
    print(
        f"MsgApp x{count} ({entry_bytes} B entry, {batch}/send): {count / wall:,.0f} msg/s,"
        f" {count * entry_bytes / wall / 1e6:.1f} MB/s of entries;"
        f" wall {wall:.2f} s, cpu {cpu:.2f} s; dropped {dropped}"
    )


async def bench_snapshot(nursery: trio.Nursery, label: str, data: bytes) -> None:
    a, b = await start_member(nursery, 1), await start_member(nursery, 2)
    connect_all([a, b])
    await wait_until(lambda: a.transport.is_active(2))
    wall, cpu = time.perf_counter(), time.process_time()
    a.transport.send([Message(MessageType.SNAP, to=2, sender=1, term=3, snapshot=Snapshot(10, 3, data=data))])
    await wait_until(lambda: a.snapshot_status, timeout=600)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert a.snapshot_status == [(2, False)] and b.received[-1].snapshot.data == data
    mb = len(data) / 1e6
    print(f"snapshot {mb:.0f} MB {label}: {mb / wall:.0f} MB/s; wall {wall:.2f} s, cpu {cpu:.2f} s")


async def main(args: argparse.Namespace) -> None:
    async with trio.open_nursery() as nursery:
        await bench_messages(nursery, args.messages, args.entry_bytes, args.batch)
        size = args.snapshot_mb * 1024 * 1024
        await bench_snapshot(nursery, "random", os.urandom(size))
        await bench_snapshot(nursery, "text", (b"/registry/pods/default/web-%d {json...}\n" * (size // 40 + 1))[:size])
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--entry-bytes", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--snapshot-mb", type=int, default=32)
    trio.run(main, parser.parse_args())
