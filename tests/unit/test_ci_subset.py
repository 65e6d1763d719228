"""The list of test files CI runs once, compiled (tests/conftest.py): a renamed or removed file must leave it, or a
file would silently run on both or the list would name nothing."""

from __future__ import annotations

from tests.conftest import _COMPILED_ONCE, _ROOT


def test_every_file_run_once_exists() -> None:
    missing = sorted(name for name in _COMPILED_ONCE if not (_ROOT / name).is_file())
    assert not missing
