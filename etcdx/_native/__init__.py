"""Native hot paths and their pure-Python twins.

Every Cython module ``_native/_<name>.pyx`` has a twin ``_native/<name>_py.py`` with the same API;
the twin is the readable specification. ``load(name)`` returns the compiled module unless
ETCDX_NO_EXTENSIONS is set to a non-empty value other than "0", or the extension was not built
(then the twin, and ``extensions_active()`` says so; ETCDX_REQUIRE_EXTENSIONS=1 makes a missing
build an error instead).
"""

from __future__ import annotations

import importlib
import os
import types

_DISABLED = os.environ.get("ETCDX_NO_EXTENSIONS", "") not in ("", "0")
_REQUIRED = os.environ.get("ETCDX_REQUIRE_EXTENSIONS", "") not in ("", "0")
_loaded: dict[str, bool] = {}


def load(name: str) -> types.ModuleType:
    """The module implementing ``name``: compiled ``_<name>`` or the twin ``<name>_py``."""
    if not _DISABLED:
        try:
            module = importlib.import_module(f"etcdx._native._{name}")
        except ImportError:
            if _REQUIRED:
                raise
        else:
            _loaded[name] = True
            return module
    _loaded[name] = False
    return importlib.import_module(f"etcdx._native.{name}_py")


def extensions_active() -> dict[str, bool]:
    """Which loaded modules are compiled (True) or pure-Python twins (False)."""
    return dict(_loaded)
