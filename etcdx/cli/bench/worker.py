"""One load-generating process of `etcdx bench`: what it reports, and the choice of client.

Several of these run side by side (--processes) so that the tool is not the bottleneck; each reports
its own CPU time, which the report turns into the tool's CPU per request.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass, field


@dataclass
class WorkerResult:
    histogram: dict
    errors: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    cpu_seconds: float = 0.0
    elapsed: float = 0.0
    extra: dict = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)  # answers' labels from the scenario, summed by label


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(options, index: int, clients: int, total: int | None, queue) -> WorkerResult:
    """Runs ``clients`` clients sharing ``total`` requests (None: --duration) with --client's implementation."""
    if options.client == "native":
        from etcdx.cli.bench import native_worker as implementation
    else:
        from etcdx.cli.bench import grpcio_worker as implementation
    return implementation.run(options, index, clients, total, queue)
