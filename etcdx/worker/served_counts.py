"""The Range calls read workers answered themselves, counted for the member's /metrics.

Every call a worker passes on reaches the member, whose gRPC server or link counts it as it counts its own
clients' calls. A Range a worker answers from the file never reaches the member: the worker counts it here, once,
when it answers it (its answer or its error), and the member adds these counts to its gRPC series
(grpc_server_started_total, grpc_server_handled_total, grpc_server_msg_received_total and _sent_total,
etcd_server_client_requests_total) when /metrics is scraped. So each call is counted once, in whichever process
answered it.

The file ``<member dir>/served.counts`` holds one region of SLOTS words per worker, written by that worker alone
and only read by the member: the calls started per client-api-version metadata (VERSIONS; a Range naming
another version is passed on to the member, which counts it under its own name), then the calls handled per
gRPC status code. The member creates the file zeroed when it starts its workers; a restarted worker continues
from its region's values, so every count only grows while the member runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from etcdx.errors import StatusCode
from etcdx.worker.shared_words import SharedWords

COUNTS_NAME = "served.counts"
RANGE_PATH = "/etcdserverpb.KV/Range"
# "unknown" is what the member records for a call without client-api-version metadata (net/grpc_server.py).
VERSIONS = ("unknown", "3.0", "3.1", "3.2", "3.3", "3.4", "3.5", "3.6", "3.7")
CODES = tuple(StatusCode)
SLOTS = len(VERSIONS) + len(CODES)
_VERSION_SLOT = {version: slot for slot, version in enumerate(VERSIONS)}
_CODE_SLOT = {code: len(VERSIONS) + slot for slot, code in enumerate(CODES)}


def counts_path(socket_path: str) -> str:
    """The counts' file, beside the member's private socket ``socket_path``."""
    return os.path.join(os.path.dirname(socket_path), COUNTS_NAME)


def code_slot(code: StatusCode) -> int:
    """Where a Range answered with ``code`` is counted, within a worker's region."""
    return _CODE_SLOT[code]


def version_slot(metadata: dict[str, str]) -> int | None:
    """Where a call with ``metadata`` is counted as started (None: a version this file has no slot for)."""
    return _VERSION_SLOT.get(metadata.get("client-api-version", "unknown"))


class WorkerCounts:
    """One worker's region: it counts the Ranges it answers."""

    def __init__(self, path: str, index: int) -> None:
        self._shared = SharedWords.open(path, SLOTS * (index + 1), writable=True)
        self._words = self._shared.words
        self._base = SLOTS * index

    def answered(self, started_slot: int, code: int) -> None:
        """One Range answered with status ``code``, started with the version of ``started_slot``."""
        words, base = self._words, self._base
        words[base + started_slot] += 1
        words[base + _CODE_SLOT[code]] += 1

    def close(self) -> None:
        self._words = None
        self._shared.close()


class MemberCounts:
    """The member's view: every worker's counts, summed."""

    def __init__(self, path: str, workers: int) -> None:
        self.path = path
        self._shared = SharedWords.create(path, SLOTS * workers)
        self._workers = workers

    def started(self) -> Iterator[tuple[tuple[str, str], int]]:
        """((path, version), count) of the Ranges the workers answered, per client-api-version."""
        return self._summed(_VERSION_SLOT)

    def handled(self) -> Iterator[tuple[tuple[str, int], int]]:
        """((path, status code), count) of the Ranges the workers answered."""
        return self._summed({int(code): slot for code, slot in _CODE_SLOT.items()})

    def _summed(self, slots: dict) -> Iterator:
        """((RANGE_PATH, label), count) for each label of ``slots`` that some worker counted."""
        words = self._shared.words
        for label, slot in slots.items():
            count = sum(words[SLOTS * worker + slot] for worker in range(self._workers))
            if count:
                yield (RANGE_PATH, label), count

    def close(self) -> None:
        self._shared.close()
