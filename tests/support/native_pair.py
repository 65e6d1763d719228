"""The compiled module and the twin of one native piece, for tests that hold them against each other."""

from __future__ import annotations

import importlib
import os
import types

import pytest


def compiled_and_twin(name: str) -> tuple[types.ModuleType, types.ModuleType]:
    """(``etcdx._native._<name>``, ``etcdx._native.<name>_py``). Where the extension was not built the test is
    skipped, unless ETCDX_REQUIRE_EXTENSIONS is set (as README's test command and CI set it): then it fails."""
    twin = importlib.import_module(f"etcdx._native.{name}_py")
    try:
        compiled = importlib.import_module(f"etcdx._native._{name}")
    except ImportError:
        if os.environ.get("ETCDX_REQUIRE_EXTENSIONS", "") not in ("", "0"):
            raise
        pytest.skip(f"the _{name} extension is not built")
    return compiled, twin
