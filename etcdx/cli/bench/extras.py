"""The bench tool's optional dependencies: a scenario that needs one says which extra brings it.

A plain ``pip install etcdx`` runs every request scenario with the native client; grpcio (the watch
scenarios, --client grpcio, compare and recovery) and matplotlib (compare's plots) come with
``pip install 'etcdx[bench]'``.
"""

from __future__ import annotations

import importlib.util

# import name -> the PyPI distribution that provides it
_DISTRIBUTIONS = {"grpc": "grpcio", "matplotlib": "matplotlib"}


class MissingExtra(Exception):
    """A bench feature was asked for without the optional package it needs."""


def require(feature: str, *modules: str) -> None:
    """Raises MissingExtra naming ``feature`` and the extra to install when a module is not importable."""
    missing = [_DISTRIBUTIONS.get(m, m) for m in modules if not _importable(m)]
    if missing:
        raise MissingExtra(
            f"etcdx bench: {feature} needs {' and '.join(missing)}; install the bench extra: pip install 'etcdx[bench]'"
        )


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # sys.modules[module] is None: the import is blocked
        return False
