"""The auth core is pure: no I/O, clock or concurrency imports, and nothing from the layers above it."""

from __future__ import annotations

import ast
import pathlib

import etcdx.auth

FORBIDDEN = {"trio", "socket", "time", "os", "threading", "asyncio", "subprocess", "datetime"}
FORBIDDEN_PREFIXES = ("etcdx.server", "etcdx.api", "etcdx.net", "etcdx.cli", "etcdx.mvcc", "etcdx.wal")


def imported_modules(path: pathlib.Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_auth_modules_import_nothing_impure():
    files = sorted(pathlib.Path(etcdx.auth.__file__).parent.glob("*.py"))
    assert len(files) >= 10
    for path in files:
        for name in imported_modules(path):
            assert name.split(".")[0] not in FORBIDDEN, (path.name, name)
            assert not name.startswith(FORBIDDEN_PREFIXES), (path.name, name)
