"""The store, its storage interface, the memory backend and the applier are pure: the simulation runs them
without an event loop, a clock or a disk. Neither they nor anything they import pulls in trio, and their own
imports name none of trio, socket, time, os or lmdb."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import etcdx

PURE = [
    "mvcc/kvstore.py",
    "mvcc/write_txn.py",
    "mvcc/txn.py",
    "mvcc/tables.py",
    "mvcc/rows.py",
    "mvcc/backend_image.py",
    "mvcc/memory_backend.py",
    "server/apply.py",
]
FORBIDDEN = {"trio", "socket", "time", "os", "lmdb"}


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", PURE)
def test_a_pure_module_imports_no_io(module):
    assert imported_modules(Path(etcdx.__file__).parent / module) & FORBIDDEN == set()


def test_the_applier_on_a_memory_backend_loads_no_trio():
    code = (
        "import sys\n"
        "from etcdx.server.apply import Applier\n"
        "from etcdx.mvcc.memory_backend import MemoryBackend\n"
        "print(sorted(m for m in ('trio', 'lmdb') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
