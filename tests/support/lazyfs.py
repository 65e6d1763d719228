"""A FUSE test filesystem that loses what was not fsynced at a simulated power cut (after Jepsen's LazyFS).

Run as its own process (``python -m tests.support.lazyfs STORE MOUNTPOINT [--keep-fraction F] [--seed S]``)
or through ``LazyFSMount``. The mount behaves as a local filesystem for one machine's processes, but:

- **File data** written by ``write`` lives in this process's memory, per 4 KiB page, until ``fsync`` or
  ``fdatasync`` of that file (or a write through an O_SYNC/O_DSYNC handle) copies the file's dirty pages and
  size into the store. Truncations are held the same way.
- **Directory entries** (create, mkdir, rename, link, unlink, rmdir) change only the live tree; they become
  durable when that directory is fsynced (its whole entry list at that moment becomes the durable list).
  An fsynced file whose name was never made durable is lost at a cut, as on a disk.
- **Slow fsync** (optional, ``--fsync-delay-file PATH``): before each fsync, fdatasync, directory fsync or
  O_SYNC/O_DSYNC write is made durable, the filesystem waits the number of seconds written in PATH (read at
  each call; a missing or empty file means no wait), as a stalled disk would. The file can be changed while
  mounted, so a test makes the disk slow and fast again.
- **A power cut** (SIGUSR1 or SIGTERM) unmounts and exits without writing anything more, except that with
  ``--keep-fraction F > 0`` each unsynced dirty page survives independently with probability F (seeded), as
  a disk's write-back cache may have written any subset of them. Unsynced directory changes never survive.

STORE holds only durable state: ``tree.json`` (the durable directory tree: inode -> kind, mode, entries) and
``data/<inode>`` (each file's durable bytes). The next mount on the same STORE starts from exactly that state;
files no durable entry reaches are deleted then. The store itself is written without fsync: it models the
disk across simulated cuts of this filesystem, not across a crash of the real machine.
Invariant: every byte at or past a file's live size reads as zero (a truncation zeroes the rest of its page).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import random
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field

PAGE = 4096
_SYNC_FLAGS = os.O_SYNC | os.O_DSYNC


@dataclass
class _Node:
    ino: int
    kind: str  # "dir" or "file"
    mode: int
    nlink: int = 1
    entries: dict[bytes, int] = field(default_factory=dict)  # live directory entries
    synced_entries: dict[bytes, int] = field(default_factory=dict)  # durable directory entries
    size: int = 0  # live size of a file
    dirty: dict[int, bytes] = field(default_factory=dict)  # page number -> live page, not yet durable
    zero_from: int | None = None  # unsynced truncation: non-dirty pages from here on read as zeros
    mtime_ns: int = 0


class _Store:
    """The durable side: the directory tree as JSON and each file's durable bytes in data/<inode>."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.data_dir = os.path.join(root, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self._fds: dict[int, int] = {}

    def fd(self, ino: int) -> int:
        if ino not in self._fds:
            self._fds[ino] = os.open(os.path.join(self.data_dir, str(ino)), os.O_RDWR | os.O_CREAT, 0o600)
        return self._fds[ino]

    def durable_size(self, ino: int) -> int:
        try:
            return os.fstat(self.fd(ino)).st_size
        except OSError:
            return 0

    def load_tree(self) -> dict:
        try:
            with open(os.path.join(self.root, "tree.json")) as f:
                return json.load(f)
        except FileNotFoundError:
            return {"1": {"kind": "dir", "mode": stat.S_IFDIR | 0o755, "entries": {}}}

    def save_tree(self, tree: dict) -> None:
        tmp = os.path.join(self.root, "tree.json.tmp")
        with open(tmp, "w") as f:
            json.dump(tree, f)
        os.replace(tmp, os.path.join(self.root, "tree.json"))

    def collect_garbage(self, live: set[int]) -> None:
        for name in os.listdir(self.data_dir):
            if int(name) not in live:
                os.unlink(os.path.join(self.data_dir, name))


def _ceil_page(offset: int) -> int:
    return -(-offset // PAGE) * PAGE


def _build_ops():  # pyfuse3 is imported only in the filesystem's own process
    import pyfuse3
    import trio

    class LazyFS(pyfuse3.Operations):
        def __init__(self, store: _Store, keep_fraction: float, seed: int, fsync_delay_file: str | None) -> None:
            super().__init__()
            self.store = store
            self.fsync_delay_file = fsync_delay_file
            self.keep_fraction = keep_fraction
            self.rng = random.Random(seed)
            self.nodes: dict[int, _Node] = {}
            self.handles: dict[int, tuple[int, bool]] = {}  # fh -> (inode, writes are synchronous)
            self.next_fh = 1
            self.cut_done = False
            tree = store.load_tree()
            self._load(tree, pyfuse3.ROOT_INODE)
            store.collect_garbage({ino for ino, node in self.nodes.items() if node.kind == "file"})
            numbers = [int(n) for n in os.listdir(store.data_dir)] + list(self.nodes)
            self.next_ino = max(numbers) + 1

        # -- durable tree ------------------------------------------------------------------

        def _load(self, tree: dict, ino: int) -> None:
            if ino in self.nodes:
                self.nodes[ino].nlink += 1
                return
            info = tree[str(ino)]
            entries = {os.fsencode(name): child for name, child in info["entries"].items()}
            node = _Node(ino, info["kind"], info["mode"], entries=dict(entries), synced_entries=dict(entries))
            if node.kind == "file":
                node.size = self.store.durable_size(ino)
            self.nodes[ino] = node
            for child in entries.values():
                self._load(tree, child)

        def _save_tree(self) -> None:
            tree: dict[str, dict] = {}
            todo = [pyfuse3.ROOT_INODE]
            while todo:
                ino = todo.pop()
                if str(ino) in tree:
                    continue
                node = self.nodes[ino]
                tree[str(ino)] = {
                    "kind": node.kind,
                    "mode": node.mode,
                    "entries": {os.fsdecode(name): child for name, child in node.synced_entries.items()},
                }
                todo.extend(node.synced_entries.values())
            self.store.save_tree(tree)

        # -- file contents -----------------------------------------------------------------

        def _page(self, node: _Node, number: int) -> bytes:
            if number in node.dirty:
                return node.dirty[number]
            start = number * PAGE
            if node.zero_from is not None and start >= node.zero_from:
                return bytes(PAGE)
            data = os.pread(self.store.fd(node.ino), PAGE, start)
            return data + bytes(PAGE - len(data))

        def _persist(self, node: _Node, pages: list[int], size: int, truncate: bool) -> None:
            fd = self.store.fd(node.ino)
            if truncate and node.zero_from is not None:
                os.ftruncate(fd, min(os.fstat(fd).st_size, node.zero_from))
            for number in pages:
                start = number * PAGE
                if start < size:
                    os.pwrite(fd, node.dirty[number][: size - start], start)
            if truncate:
                os.ftruncate(fd, size)

        def _sync_file(self, node: _Node) -> None:
            if self.cut_done:
                raise pyfuse3.FUSEError(errno.EIO)
            self._persist(node, sorted(node.dirty), node.size, truncate=True)
            node.dirty.clear()
            node.zero_from = None

        def power_cut(self) -> None:
            """Drops every unsynced change, except a seeded random subset of dirty pages if keep_fraction > 0."""
            if self.keep_fraction > 0:
                for ino in sorted(self.nodes):
                    node = self.nodes[ino]
                    kept = [n for n in sorted(node.dirty) if self.rng.random() < self.keep_fraction]
                    if kept:
                        durable = self.store.durable_size(ino)
                        end = max(durable, min(node.size, (kept[-1] + 1) * PAGE))
                        self._persist(node, kept, end, truncate=False)
            self.cut_done = True

        # -- attributes --------------------------------------------------------------------

        def _attr(self, node: _Node) -> pyfuse3.EntryAttributes:
            attr = pyfuse3.EntryAttributes()
            attr.st_ino = node.ino
            attr.st_mode = node.mode
            attr.st_nlink = node.nlink
            attr.st_size = node.size if node.kind == "file" else 4096
            attr.st_blksize = PAGE
            attr.st_blocks = _ceil_page(attr.st_size) // 512
            attr.st_atime_ns = attr.st_ctime_ns = attr.st_mtime_ns = node.mtime_ns
            attr.st_uid = os.getuid()
            attr.st_gid = os.getgid()
            attr.entry_timeout = 1.0
            attr.attr_timeout = 1.0
            return attr

        def _node(self, ino: int) -> _Node:
            try:
                return self.nodes[ino]
            except KeyError:
                raise pyfuse3.FUSEError(errno.ENOENT) from None

        def _child(self, parent: int, name: bytes) -> _Node:
            ino = self._node(parent).entries.get(name)
            if ino is None:
                raise pyfuse3.FUSEError(errno.ENOENT)
            return self.nodes[ino]

        async def lookup(self, parent_inode, name, ctx=None):
            return self._attr(self._child(parent_inode, name))

        async def getattr(self, inode, ctx=None):
            return self._attr(self._node(inode))

        async def setattr(self, inode, attr, fields, fh, ctx):
            node = self._node(inode)
            if fields.update_mode:
                node.mode = (node.mode & ~0o7777) | (attr.st_mode & 0o7777)
            if fields.update_mtime:
                node.mtime_ns = attr.st_mtime_ns
            if fields.update_size:
                self._truncate(node, attr.st_size)
            return self._attr(node)

        def _truncate(self, node: _Node, size: int) -> None:
            if size < node.size:
                keep_pages = _ceil_page(size) // PAGE
                node.dirty = {n: p for n, p in node.dirty.items() if n < keep_pages}
                if size % PAGE:
                    number = size // PAGE
                    page = self._page(node, number)
                    node.dirty[number] = page[: size % PAGE] + bytes(PAGE - size % PAGE)
                zero_from = keep_pages * PAGE
                node.zero_from = zero_from if node.zero_from is None else min(node.zero_from, zero_from)
            node.size = size
            node.mtime_ns = time.time_ns()

        async def statfs(self, ctx):
            stats = pyfuse3.StatvfsData()
            stats.f_bsize = stats.f_frsize = PAGE
            stats.f_blocks = stats.f_bfree = stats.f_bavail = 1 << 24
            stats.f_files = stats.f_ffree = stats.f_favail = 1 << 20
            stats.f_namemax = 255
            return stats

        # -- namespace ---------------------------------------------------------------------

        def _new_node(self, parent: int, name: bytes, kind: str, mode: int) -> _Node:
            directory = self._node(parent)
            if name in directory.entries:
                raise pyfuse3.FUSEError(errno.EEXIST)
            node = _Node(self.next_ino, kind, mode, nlink=2 if kind == "dir" else 1, mtime_ns=time.time_ns())
            self.next_ino += 1
            self.nodes[node.ino] = node
            directory.entries[name] = node.ino
            return node

        async def mkdir(self, parent_inode, name, mode, ctx):
            return self._attr(self._new_node(parent_inode, name, "dir", stat.S_IFDIR | (mode & 0o7777)))

        async def create(self, parent_inode, name, mode, flags, ctx):
            node = self._new_node(parent_inode, name, "file", stat.S_IFREG | (mode & 0o7777))
            return pyfuse3.FileInfo(fh=self._open_handle(node.ino, flags)), self._attr(node)

        async def mknod(self, parent_inode, name, mode, rdev, ctx):
            raise pyfuse3.FUSEError(errno.EPERM)

        async def link(self, inode, new_parent_inode, new_name, ctx):
            node = self._node(inode)
            directory = self._node(new_parent_inode)
            if new_name in directory.entries:
                raise pyfuse3.FUSEError(errno.EEXIST)
            directory.entries[new_name] = inode
            node.nlink += 1
            return self._attr(node)

        async def unlink(self, parent_inode, name, ctx):
            node = self._child(parent_inode, name)
            if node.kind == "dir":
                raise pyfuse3.FUSEError(errno.EISDIR)
            del self.nodes[parent_inode].entries[name]
            node.nlink -= 1

        async def rmdir(self, parent_inode, name, ctx):
            node = self._child(parent_inode, name)
            if node.kind != "dir":
                raise pyfuse3.FUSEError(errno.ENOTDIR)
            if node.entries:
                raise pyfuse3.FUSEError(errno.ENOTEMPTY)
            del self.nodes[parent_inode].entries[name]

        async def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx):
            if flags:
                raise pyfuse3.FUSEError(errno.EINVAL)
            node = self._child(parent_inode_old, name_old)
            target_dir = self._node(parent_inode_new)
            replaced = target_dir.entries.get(name_new)
            if replaced is not None:
                old = self.nodes[replaced]
                if old.kind == "dir" and old.entries:
                    raise pyfuse3.FUSEError(errno.ENOTEMPTY)
                old.nlink -= 1
            del self.nodes[parent_inode_old].entries[name_old]
            target_dir.entries[name_new] = node.ino

        async def opendir(self, inode, ctx):
            if self._node(inode).kind != "dir":
                raise pyfuse3.FUSEError(errno.ENOTDIR)
            return inode

        async def readdir(self, fh, start_id, token):
            entries = sorted(self.nodes[fh].entries.items())
            for index in range(start_id, len(entries)):
                name, ino = entries[index]
                if not pyfuse3.readdir_reply(token, name, self._attr(self.nodes[ino]), index + 1):
                    return

        async def releasedir(self, fh):
            pass

        async def _stall(self) -> None:
            """Waits the delay the delay file holds (slow fsync mode), if any."""
            if self.fsync_delay_file is None:
                return
            try:
                with open(self.fsync_delay_file) as f:
                    delay = float(f.read().strip() or 0)
            except (OSError, ValueError):
                return
            if delay > 0:
                await trio.sleep(delay)

        async def fsyncdir(self, fh, datasync):
            if self.cut_done:
                raise pyfuse3.FUSEError(errno.EIO)
            await self._stall()
            node = self._node(fh)
            node.synced_entries = dict(node.entries)
            self._save_tree()

        # -- files -------------------------------------------------------------------------

        def _open_handle(self, ino: int, flags: int) -> int:
            fh = self.next_fh
            self.next_fh += 1
            self.handles[fh] = (ino, bool(flags & _SYNC_FLAGS))
            return fh

        async def open(self, inode, flags, ctx):
            node = self._node(inode)
            if node.kind != "file":
                raise pyfuse3.FUSEError(errno.EISDIR)
            if flags & os.O_TRUNC:
                self._truncate(node, 0)
            return pyfuse3.FileInfo(fh=self._open_handle(inode, flags))

        async def read(self, fh, off, size):
            node = self.nodes[self.handles[fh][0]]
            end = min(off + size, node.size)
            if off >= end:
                return b""
            chunks = [self._page(node, n) for n in range(off // PAGE, (end - 1) // PAGE + 1)]
            start = off - (off // PAGE) * PAGE
            return b"".join(chunks)[start : start + end - off]

        async def write(self, fh, off, buf):
            ino, synchronous = self.handles[fh]
            node = self.nodes[ino]
            view = memoryview(buf)
            position = off
            while view:
                number, within = divmod(position, PAGE)
                take = min(PAGE - within, len(view))
                page = self._page(node, number)
                node.dirty[number] = page[:within] + bytes(view[:take]) + page[within + take :]
                view = view[take:]
                position += take
            node.size = max(node.size, off + len(buf))
            node.mtime_ns = time.time_ns()
            if synchronous:
                await self._stall()
                self._sync_file(node)
            return len(buf)

        async def fsync(self, fh, datasync):
            await self._stall()
            self._sync_file(self.nodes[self.handles[fh][0]])

        async def flush(self, fh):
            pass

        async def release(self, fh):
            self.handles.pop(fh, None)

        async def forget(self, inode_list):
            pass

        async def access(self, inode, mode, ctx):
            return True

    return pyfuse3, LazyFS


def serve(
    store_dir: str, mountpoint: str, keep_fraction: float, seed: int, fsync_delay_file: str | None = None
) -> None:
    """Mounts, serves until SIGUSR1 or SIGTERM, then cuts the power: unmounts and drops what was not synced."""
    import trio

    pyfuse3, lazyfs_class = _build_ops()
    operations = lazyfs_class(_Store(store_dir), keep_fraction, seed, fsync_delay_file)
    options = set(pyfuse3.default_options)
    options.add("fsname=lazyfs")
    pyfuse3.init(operations, mountpoint, options)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pyfuse3.main)
            with trio.open_signal_receiver(signal.SIGUSR1, signal.SIGTERM) as signals:
                async for _ in signals:
                    operations.power_cut()
                    nursery.cancel_scope.cancel()
                    return

    try:
        trio.run(main)
    finally:
        pyfuse3.close(unmount=True)


class LazyFSMount:
    """A LazyFS process over ``store_dir`` mounted at ``mountpoint``; ``power_cut`` ends it (by PID).

    Stop every process using the mount before ``power_cut`` (a power cut stops them all at once).
    """

    def __init__(
        self,
        store_dir: str,
        mountpoint: str,
        keep_fraction: float = 0.0,
        seed: int = 0,
        fsync_delay_file: str | None = None,
    ) -> None:
        self.store_dir = store_dir
        self.fsync_delay_file = fsync_delay_file
        self.mountpoint = mountpoint
        self.keep_fraction = keep_fraction
        self.seed = seed
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> LazyFSMount:
        os.makedirs(self.store_dir, exist_ok=True)
        os.makedirs(self.mountpoint, exist_ok=True)
        argv = [sys.executable, "-m", "tests.support.lazyfs", self.store_dir, self.mountpoint]
        argv += ["--keep-fraction", str(self.keep_fraction), "--seed", str(self.seed)]
        if self.fsync_delay_file is not None:
            argv += ["--fsync-delay-file", self.fsync_delay_file]
        log = open(os.path.join(self.store_dir, "..", "lazyfs.log"), "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while not os.path.ismount(self.mountpoint):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.power_cut()
                raise RuntimeError(f"lazyfs did not mount {self.mountpoint} (exit {self.proc.returncode})")
            time.sleep(0.02)
        return self

    def power_cut(self) -> None:
        """Drops what was not synced (keeping the configured random subset), then unmounts."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if os.path.ismount(self.mountpoint):
            subprocess.run(["fusermount3", "-u", "-z", self.mountpoint], check=False, capture_output=True)
        self.proc = None

    def __enter__(self) -> LazyFSMount:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.power_cut()


def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("mountpoint")
    parser.add_argument("--keep-fraction", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fsync-delay-file", default=None)
    args = parser.parse_args()
    serve(args.store, args.mountpoint, args.keep_fraction, args.seed, args.fsync_delay_file)


if __name__ == "__main__":
    _main()
