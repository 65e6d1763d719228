"""The leader's side of snapshots: the backend image a lagging follower is sent, built when the core asks.

The raft storage (raft_storage.MemberStorage) holds snapshots without data until one is needed; then it
calls ``want`` and the core retries later. ``run`` builds the image off the event loop from a committed
read view of the backend (every applied entry committed first, so the view is the applied state) and
attaches it at the view's own consistent index and term, with the membership applied there: the image
and the snapshot's (index, term) cannot disagree. One image at a time; requests made while one is built
are answered by the next build.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import trio

from etcdx.log import get_logger
from etcdx.mvcc import backend_image, rows
from etcdx.mvcc import schema as meta
from etcdx.mvcc.tables import TableView
from etcdx.raft import ConfState
from etcdx.server.raft_storage import MemberStorage

log = get_logger("etcdx.server")


class SnapshotImages:
    def __init__(
        self,
        storage: MemberStorage,
        committed_view: Callable[[], AbstractAsyncContextManager[TableView]],
        conf_state: Callable[[], ConfState],
        on_attached: Callable[[], None],
    ) -> None:
        """``committed_view``: the server's (a read view of everything applied); ``conf_state``: the membership
        applied so far; ``on_attached``: called once an image is attached (the core may send it now)."""
        self._storage = storage
        self._committed_view = committed_view
        self._conf_state = conf_state
        self._on_attached = on_attached
        self._wanted = trio.Event()
        storage.on_image_wanted = self.want
        storage.current_conf = conf_state

    def want(self) -> None:
        self._wanted.set()

    async def run(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted = trio.Event()
            await self._build()

    async def _build(self) -> None:
        async with self._committed_view() as view:
            index = rows.get_meta_int(view, meta.META_CONSISTENT_INDEX, 0)
            term = rows.get_meta_int(view, meta.META_TERM, 0)
            conf = self._conf_state()  # read before any checkpoint: the membership applied up to ``index``
            image = await trio.to_thread.run_sync(backend_image.encode, view.scan)
        if self._storage.attach_image(index, term, conf, image):
            log.info("created snapshot image", snapshot_index=index, snapshot_term=term, size=len(image))
            self._on_attached()
