"""lincheck: our own linearizability checker for etcd-style KV histories (no I/O, no clock).

- ``history``: the operation format (client, call, return or unknown, request, response);
- ``model``: a sequential model of etcd's KV store and leases, revisions included;
- ``search``: the WGL/porcupine depth-first search with memoised (linearized set, state) pairs;
- ``check``: the entry point, ``check(history) -> CheckResult``; its docstring states exactly what is
  checked (linearizability with revisions, a weaker rule for serializable reads, outcome-unknown writes)
  and what cannot be seen;
- ``generate``: random histories around a real linearization, with optional planted faults, for tests
  and the benchmark.
"""

from tests.support.lincheck.check import PER_KEY, CheckResult, check
from tests.support.lincheck.search import LINEARIZABLE, UNKNOWN, VIOLATION

__all__ = ["LINEARIZABLE", "PER_KEY", "UNKNOWN", "VIOLATION", "CheckResult", "check"]
